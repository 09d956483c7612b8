#include "azure/aad_token_source.hpp"

#include "azure/transport.hpp"

namespace aad::azure {

AadTokenSource::AadTokenSource(http::Client& client, Clock& clock, std::string tenant, std::string client_id,
                               AadOptions options)
    : client_(client), clock_(clock), tenant_(std::move(tenant)), client_id_(std::move(client_id)),
      options_(std::move(options)) {
  if (!options_.authority_host.empty() && options_.authority_host.back() != '/') options_.authority_host += '/';
}

std::unique_ptr<AadTokenSource> AadTokenSource::with_secret(http::Client& client, Clock& clock, std::string tenant,
                                                            std::string client_id, std::string secret,
                                                            AadOptions options) {
  std::unique_ptr<AadTokenSource> s(
      new AadTokenSource(client, clock, std::move(tenant), std::move(client_id), std::move(options)));
  s->secret_ = std::move(secret);
  return s;
}

std::unique_ptr<AadTokenSource> AadTokenSource::with_certificate(http::Client& client, Clock& clock,
                                                                 std::string tenant, std::string client_id,
                                                                 ClientCertificate certificate,
                                                                 AadOptions options) {
  std::unique_ptr<AadTokenSource> s(
      new AadTokenSource(client, clock, std::move(tenant), std::move(client_id), std::move(options)));
  s->certificate_ = std::move(certificate);
  return s;
}

std::string AadTokenSource::token_url(const std::string& tenant) const {
  return options_.authority_host + url_encode(tenant) + "/oauth2/token?api-version=1.0";
}

std::string AadTokenSource::describe() const {
  return std::string(certificate_ ? "aad:certificate" : "aad:secret") + " client_id=" + client_id_ +
         " tenant=" + tenant_;
}

boost::asio::awaitable<Result<Token>> AadTokenSource::attempt(const std::string& tenant,
                                                              const std::string& resource,
                                                              const Cancellation& cancel) {
  std::string url = token_url(tenant);
  std::vector<std::pair<std::string, std::string>> form = {
      {"grant_type", "client_credentials"}, {"client_id", client_id_}, {"resource", resource}};
  if (certificate_) {
    auto assertion = certificate_->make_assertion({url, client_id_, clock_.now()}, options_.algorithm);
    if (!assertion) co_return assertion.error();
    form.emplace_back("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    form.emplace_back("client_assertion", *assertion);
  } else {
    form.emplace_back("client_secret", secret_);
  }
  http::ClientRequest req;
  req.method = boost::beast::http::verb::post;
  req.url = url;
  req.headers = {{"Content-Type", "application/x-www-form-urlencoded"}, {"Accept", "application/json"}};
  req.body = form_encode(form);
  req.timeout = options_.attempt_timeout;
  auto res = co_await send_request(client_, std::move(req), cancel);
  if (!res) co_return res.error();
  if (res->status != 200)
    co_return token_http_error(Upstream::aad, res->status, res->body, res->header("Retry-After"), clock_.now());
  co_return parse_token_response(res->body, clock_.now());
}

boost::asio::awaitable<Result<Token>> AadTokenSource::token_for_tenant(const std::string& tenant,
                                                                       const std::string& resource,
                                                                       const Cancellation& cancel) {
  // Two statements: GCC 12 destroys by-value arguments twice in `co_return co_await f(...)`.
  auto result = co_await retry_token(options_.retry, clock_, cancel,
                                     [&]() { return attempt(tenant, resource, cancel); });
  co_return result;
}

boost::asio::awaitable<Result<Token>> AadTokenSource::get_token(const std::string& requested,
                                                                const Cancellation& cancel) {
  const std::string resource = resource_from_scope(requested);
  if (resource.empty())
    co_return local_error(Error::Kind::config, "invalid_request", "resource must not be empty");
  auto result = co_await token_for_tenant(tenant_, resource, cancel);
  co_return result;
}

boost::asio::awaitable<Result<std::vector<Token>>> AadTokenSource::get_tokens(const std::string& requested,
                                                                               const Cancellation& cancel) {
  const std::string resource = resource_from_scope(requested);
  if (resource.empty())
    co_return local_error(Error::Kind::config, "invalid_request", "resource must not be empty");
  std::vector<Token> out;
  auto primary = co_await token_for_tenant(tenant_, resource, cancel);
  if (!primary) co_return primary.error();
  out.push_back(std::move(*primary));
  for (const auto& aux : options_.auxiliary_tenants) {
    auto t = co_await token_for_tenant(aux, resource, cancel);
    if (!t) {
      Error e = t.error();
      e.message = "auxiliary tenant " + aux + ": " + e.message;
      co_return e;
    }
    out.push_back(std::move(*t));
  }
  co_return out;
}

}  // namespace aad::azure
