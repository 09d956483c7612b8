#include "azure/imds_token_source.hpp"

#include "azure/transport.hpp"

namespace aad::azure {

ImdsTokenSource::ImdsTokenSource(http::Client& client, Clock& clock, ManagedIdentity identity,
                                 ImdsOptions options)
    : client_(client), clock_(clock), identity_(std::move(identity)), options_(std::move(options)) {
  while (!options_.base_url.empty() && options_.base_url.back() == '/') options_.base_url.pop_back();
}

std::string ImdsTokenSource::token_url(const std::string& resource) const {
  std::string url = options_.base_url + "/metadata/identity/oauth2/token?api-version=" +
                    url_encode(options_.api_version) + "&resource=" + url_encode(resource);
  switch (identity_.by) {
    case ManagedIdentity::By::system: break;
    case ManagedIdentity::By::client_id: url += "&client_id=" + url_encode(identity_.value); break;
    case ManagedIdentity::By::resource_id: url += "&msi_res_id=" + url_encode(identity_.value); break;
    case ManagedIdentity::By::object_id: url += "&object_id=" + url_encode(identity_.value); break;
  }
  return url;
}

std::string ImdsTokenSource::describe() const {
  switch (identity_.by) {
    case ManagedIdentity::By::system: return "imds:system-assigned";
    case ManagedIdentity::By::client_id: return "imds:client_id=" + identity_.value;
    case ManagedIdentity::By::resource_id: return "imds:msi_res_id=" + identity_.value;
    case ManagedIdentity::By::object_id: return "imds:object_id=" + identity_.value;
  }
  return "imds";
}

boost::asio::awaitable<Result<Token>> ImdsTokenSource::attempt(const std::string& resource,
                                                               const Cancellation& cancel) {
  http::ClientRequest req;
  req.url = token_url(resource);
  req.headers = {{"Metadata", "true"}};
  req.timeout = options_.attempt_timeout;
  auto res = co_await send_request(client_, std::move(req), cancel);
  if (!res) co_return res.error();
  if (res->status != 200)
    co_return token_http_error(Upstream::imds, res->status, res->body, res->header("Retry-After"),
                               clock_.now());
  co_return parse_token_response(res->body, clock_.now());
}

boost::asio::awaitable<Result<Token>> ImdsTokenSource::get_token(const std::string& requested,
                                                                 const Cancellation& cancel) {
  const std::string resource = resource_from_scope(requested);
  if (resource.empty())
    co_return local_error(Error::Kind::config, "invalid_request", "resource must not be empty");
  // Two statements: GCC 12 destroys by-value arguments twice in `co_return co_await f(...)`.
  auto result = co_await retry_token(options_.retry, clock_, cancel,
                                     [&]() { return attempt(resource, cancel); });
  co_return result;
}

}  // namespace aad::azure
