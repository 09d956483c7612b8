#include "identity/nmi/azure_fetcher.hpp"

#include "azure/aad_token_source.hpp"
#include "azure/certificate.hpp"
#include "azure/imds_token_source.hpp"

namespace aad::identity::nmi {

using namespace std::chrono;
using azure::Error;

AzureTokenFetcher::AzureTokenFetcher(http::Client& client, azure::Clock& clock, SecretReader& secrets,
                                     ImdsLimiter& limiter, NmiMetrics* metrics, AzureFetcherOptions options)
    : client_(client), clock_(clock), secrets_(secrets), limiter_(limiter), metrics_(metrics),
      options_(std::move(options)) {}

void AzureTokenFetcher::record(const char* op, bool ok, double seconds) {
  if (!metrics_) return;
  if (ok) metrics_->imds_duration.with({op}).observe(seconds);
  else metrics_->imds_errors.with({op}).inc();
}

boost::asio::awaitable<azure::Result<std::vector<azure::Token>>> AzureTokenFetcher::fetch(
    const kube::AzureIdentity& identity, const std::string& resource, const azure::Cancellation& cancel) {
  if (identity.type == 0) {
    auto r = co_await managed_identity(identity, resource, cancel);
    co_return r;
  }
  if (identity.type == 1 || identity.type == 2) {
    auto r = co_await service_principal(identity, resource, cancel);
    co_return r;
  }
  co_return azure::local_error(Error::Kind::config, "unsupported_identity_type",
                               "unsupported identity type " + std::to_string(identity.type));
}

boost::asio::awaitable<azure::Result<std::vector<azure::Token>>> AzureTokenFetcher::managed_identity(
    const kube::AzureIdentity& identity, const std::string& resource, const azure::Cancellation& cancel) {
  auto permit = co_await limiter_.acquire(cancel);
  if (!permit) co_return azure::local_error(Error::Kind::cancelled, "cancelled", "token request cancelled");
  // As the original: by the AzureIdentity's client ID (its resource ID when no client ID is set).
  auto mi = identity.client_id.empty() ? azure::ManagedIdentity::resource_id(identity.resource_id)
                                       : azure::ManagedIdentity::client_id(identity.client_id);
  azure::ImdsOptions o;
  o.base_url = options_.imds_endpoint;
  azure::ImdsTokenSource source(client_, clock_, mi, o);
  auto start = steady_clock::now();
  auto r = co_await source.get_token(resource, cancel);
  record("adal_token_msi_userassignedid", bool(r), duration<double>(steady_clock::now() - start).count());
  if (!r) co_return r.error();
  co_return std::vector<azure::Token>{std::move(*r)};
}

boost::asio::awaitable<azure::Result<std::vector<azure::Token>>> AzureTokenFetcher::service_principal(
    const kube::AzureIdentity& identity, const std::string& resource, const azure::Cancellation& cancel) {
  if (!identity.client_password || identity.client_password->name.empty())
    co_return azure::local_error(Error::Kind::config, "invalid_identity",
                                 "AzureIdentity " + identity.meta.name + " has no clientPassword secret reference");
  const auto& ref = *identity.client_password;
  auto secret = co_await secrets_.read(ref.ns, ref.name);
  if (!secret) {
    if (metrics_) metrics_->kube_errors.with({"get_secret"}).inc();
    co_return azure::local_error(Error::Kind::config, "secret_unavailable",
                                 "cannot read secret " + ref.ns + "/" + ref.name + ": " + secret.error().describe());
  }
  azure::AadOptions o;
  o.authority_host = identity.ad_endpoint.empty() ? options_.default_authority : identity.ad_endpoint;
  if (!o.authority_host.ends_with('/')) o.authority_host += '/';
  std::unique_ptr<azure::AadTokenSource> source;
  if (identity.type == 1) {
    auto value = client_secret_of(*secret);
    if (!value) co_return value.error();
    o.auxiliary_tenants = identity.auxiliary_tenant_ids;
    source = azure::AadTokenSource::with_secret(client_, clock_, identity.tenant_id, identity.client_id,
                                                std::move(*value), o);
  } else {
    auto material = certificate_of(*secret);
    if (!material) co_return material.error();
    auto cert = azure::ClientCertificate::load(material->certificate, material->password);
    if (!cert) co_return cert.error();
    source = azure::AadTokenSource::with_certificate(client_, clock_, identity.tenant_id, identity.client_id,
                                                     std::move(*cert), o);
  }
  auto start = steady_clock::now();
  auto r = co_await source->get_tokens(resource, cancel);
  record("adal_token", bool(r), duration<double>(steady_clock::now() - start).count());
  co_return r;
}

}  // namespace aad::identity::nmi
