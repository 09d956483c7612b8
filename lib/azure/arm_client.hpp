#pragma once
// ARM compute: GET and PATCH of virtualMachines / virtualMachineScaleSets identity. Bearer token
// from a TokenSource for the cloud's ARM audience; long-running PATCHes followed through
// Azure-AsyncOperation or Location; a 429's Retry-After blocks further calls in that direction
// (reads = GET, writes = PATCH) until it expires, without touching the network.
#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>
#include <vector>

#include "azure/cancel.hpp"
#include "azure/clock.hpp"
#include "azure/error.hpp"
#include "azure/identity_delta.hpp"
#include "azure/provider_id.hpp"
#include "azure/token.hpp"
#include "core/http_client.hpp"

namespace aad::azure {

struct UserAssignedIdentity {
  std::string resource_id;  // as ARM returned it
  std::string principal_id, client_id;
};

struct ComputeIdentity {
  std::string type;
  std::string principal_id, tenant_id;  // system-assigned identity, if any
  std::vector<UserAssignedIdentity> user_assigned;
  CurrentIdentity current() const;
};

struct ComputeResource {
  std::string id, name, location;
  std::string provisioning_state;
  std::optional<ComputeIdentity> identity;  // nullopt: no identity block
  CurrentIdentity current_identity() const;
};

// Parses a VM / VMSS GET body.
Result<ComputeResource> parse_compute_resource(std::string_view body);
// Parses an ARM error body ({"error":{code,message}} or unwrapped) into an Error.
Error arm_http_error(unsigned status, std::string_view body, std::string_view retry_after, SystemTime now);

class ComputeClient {
 public:
  virtual ~ComputeClient() = default;
  virtual boost::asio::awaitable<Result<ComputeResource>> get(const ComputeRef& ref,
                                                              const Cancellation& cancel = Cancellation::none()) = 0;
  // PATCH {"identity": ...} and wait for the long-running operation to finish.
  virtual boost::asio::awaitable<Result<void>> patch_identity(const ComputeRef& ref, const IdentityPatch& patch,
                                                              const Cancellation& cancel = Cancellation::none()) = 0;
};

struct ArmOptions {
  std::string base_url = "https://management.azure.com/";
  std::string audience = "https://management.azure.com/";  // token resource
  std::string api_version = "2019-12-01";
  Millis request_timeout{30000};
  Millis default_poll_delay{5000};   // when a poll response has no Retry-After
  Millis max_poll_duration{15 * 60 * 1000};
  std::chrono::seconds token_refresh_margin{300};
};

struct ArmStats {
  unsigned gets = 0, patches = 0, polls = 0, token_fetches = 0, throttled_locally = 0;
};

class ArmComputeClient final : public ComputeClient {
 public:
  enum class Direction { read, write };

  ArmComputeClient(http::Client& client, TokenSource& tokens, Clock& clock, ArmOptions options = {});
  boost::asio::awaitable<Result<ComputeResource>> get(const ComputeRef& ref,
                                                      const Cancellation& cancel = Cancellation::none()) override;
  boost::asio::awaitable<Result<void>> patch_identity(const ComputeRef& ref, const IdentityPatch& patch,
                                                      const Cancellation& cancel = Cancellation::none()) override;

  // Until when calls in that direction are refused locally (epoch when not throttled).
  SystemTime throttled_until(Direction d) const { return d == Direction::read ? read_until_ : write_until_; }
  const ArmStats& stats() const { return stats_; }
  std::string resource_url(const ComputeRef& ref) const;

 private:
  boost::asio::awaitable<Result<std::string>> bearer(const Cancellation& cancel);
  boost::asio::awaitable<Result<http::ClientResponse>> call(boost::beast::http::verb method, const std::string& url,
                                                           const std::string& body, const Cancellation& cancel);
  std::optional<Error> throttle_check(Direction d);
  void remember_throttle(Direction d, const Error& e);
  boost::asio::awaitable<Result<void>> wait_for_operation(const http::ClientResponse& initial,
                                                          const std::string& resource_url,
                                                          const Cancellation& cancel);

  http::Client& client_;
  TokenSource& tokens_;
  Clock& clock_;
  ArmOptions options_;
  std::optional<Token> token_;
  SystemTime read_until_{}, write_until_{};
  ArmStats stats_;
};

}  // namespace aad::azure
