#pragma once
// Service-principal tokens from AAD's v1 endpoint, as the original: POST
// {authority}{tenant}/oauth2/token?api-version=1.0 with grant_type=client_credentials, client_id,
// resource and either client_secret or a signed client assertion. Auxiliary tenants give a
// multi-tenant result: the primary token first, then one per auxiliary tenant.
#include <optional>
#include <string>
#include <vector>

#include "azure/certificate.hpp"
#include "azure/retry.hpp"
#include "azure/token.hpp"
#include "core/http_client.hpp"

namespace aad::azure {

struct AadOptions {
  std::string authority_host = "https://login.microsoftonline.com/";
  Millis attempt_timeout{10000};
  RetryPolicy retry = [] {
    RetryPolicy p;
    p.max_attempts = 3;
    return p;
  }();
  std::vector<std::string> auxiliary_tenants;
  AssertionAlgorithm algorithm = AssertionAlgorithm::automatic;  // certificate credentials only
};

class AadTokenSource : public TokenSource {
 public:
  // Secret credential.
  static std::unique_ptr<AadTokenSource> with_secret(http::Client& client, Clock& clock, std::string tenant,
                                                     std::string client_id, std::string secret,
                                                     AadOptions options = {});
  // Certificate credential (client assertion JWT).
  static std::unique_ptr<AadTokenSource> with_certificate(http::Client& client, Clock& clock,
                                                          std::string tenant, std::string client_id,
                                                          ClientCertificate certificate,
                                                          AadOptions options = {});

  boost::asio::awaitable<Result<Token>> get_token(const std::string& resource,
                                                  const Cancellation& cancel = Cancellation::none()) override;
  boost::asio::awaitable<Result<std::vector<Token>>> get_tokens(
      const std::string& resource, const Cancellation& cancel = Cancellation::none()) override;
  std::string describe() const override;

  std::string token_url(const std::string& tenant) const;

 private:
  AadTokenSource(http::Client& client, Clock& clock, std::string tenant, std::string client_id,
                 AadOptions options);
  boost::asio::awaitable<Result<Token>> token_for_tenant(const std::string& tenant, const std::string& resource,
                                                         const Cancellation& cancel);
  boost::asio::awaitable<Result<Token>> attempt(const std::string& tenant, const std::string& resource,
                                                const Cancellation& cancel);

  http::Client& client_;
  Clock& clock_;
  std::string tenant_, client_id_;
  AadOptions options_;
  std::string secret_;
  std::optional<ClientCertificate> certificate_;
};

}  // namespace aad::azure
