#pragma once
// TokenFetcher over lib/azure: type 0 from IMDS with the identity's client ID (through the
// node's IMDS limiter), type 1 from AAD with the referenced Secret's client secret (auxiliary
// tenants: one token per tenant), type 2 from AAD with the Secret's certificate. Any other
// type is an error (503, as the original).
#include <string>

#include "azure/clock.hpp"
#include "core/http_client.hpp"
#include "identity/nmi/imds_limiter.hpp"
#include "identity/nmi/nmi_metrics.hpp"
#include "identity/nmi/secret_reader.hpp"
#include "identity/nmi/token_fetcher.hpp"

namespace aad::identity::nmi {

struct AzureFetcherOptions {
  std::string imds_endpoint = "http://169.254.169.254";  // --imds-endpoint
  std::string default_authority = "https://login.microsoftonline.com/";
};

class AzureTokenFetcher final : public TokenFetcher {
 public:
  AzureTokenFetcher(http::Client& client, azure::Clock& clock, SecretReader& secrets, ImdsLimiter& limiter,
                    NmiMetrics* metrics, AzureFetcherOptions options);
  boost::asio::awaitable<azure::Result<std::vector<azure::Token>>> fetch(const kube::AzureIdentity& identity,
                                                                         const std::string& resource,
                                                                         const azure::Cancellation& cancel) override;

 private:
  boost::asio::awaitable<azure::Result<std::vector<azure::Token>>> managed_identity(const kube::AzureIdentity& identity,
                                                                                    const std::string& resource,
                                                                                    const azure::Cancellation& cancel);
  boost::asio::awaitable<azure::Result<std::vector<azure::Token>>> service_principal(
      const kube::AzureIdentity& identity, const std::string& resource, const azure::Cancellation& cancel);
  void record(const char* op, bool ok, double seconds);

  http::Client& client_;
  azure::Clock& clock_;
  SecretReader& secrets_;
  ImdsLimiter& limiter_;
  NmiMetrics* metrics_;
  AzureFetcherOptions options_;
};

}  // namespace aad::identity::nmi
