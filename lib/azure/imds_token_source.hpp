#pragma once
// Managed identity tokens from IMDS: GET {imds}/metadata/identity/oauth2/token?api-version=...
// &resource=...[&client_id=|&msi_res_id=|&object_id=] with `Metadata: true`; retries 404, 408,
// 410, 429, 5xx and transport errors within a bounded, cancellable budget.
#include <string>

#include "azure/retry.hpp"
#include "azure/token.hpp"
#include "core/http_client.hpp"

namespace aad::azure {

struct ManagedIdentity {
  enum class By { system, client_id, resource_id, object_id };
  By by = By::system;
  std::string value;

  static ManagedIdentity system_assigned() { return {}; }
  static ManagedIdentity client_id(std::string id) { return {By::client_id, std::move(id)}; }
  static ManagedIdentity resource_id(std::string id) { return {By::resource_id, std::move(id)}; }
  static ManagedIdentity object_id(std::string id) { return {By::object_id, std::move(id)}; }
};

struct ImdsOptions {
  std::string base_url = "http://169.254.169.254";
  std::string api_version = "2018-02-01";
  Millis attempt_timeout{5000};
  RetryPolicy retry;
};

class ImdsTokenSource final : public TokenSource {
 public:
  ImdsTokenSource(http::Client& client, Clock& clock, ManagedIdentity identity, ImdsOptions options = {});
  boost::asio::awaitable<Result<Token>> get_token(const std::string& resource,
                                                  const Cancellation& cancel = Cancellation::none()) override;
  std::string describe() const override;

  // The request URL for one attempt (exposed for tests).
  std::string token_url(const std::string& resource) const;

 private:
  boost::asio::awaitable<Result<Token>> attempt(const std::string& resource, const Cancellation& cancel);
  http::Client& client_;
  Clock& clock_;
  ManagedIdentity identity_;
  ImdsOptions options_;
};

}  // namespace aad::azure
