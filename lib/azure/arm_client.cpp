#include "azure/arm_client.hpp"

#include <fmt/format.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "azure/transport.hpp"

namespace aad::azure {

namespace json = boost::json;
using verb = boost::beast::http::verb;

namespace {

std::string str(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return {};
  return std::string(it->value().as_string());
}

const json::object* obj(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_object()) return nullptr;
  return &it->value().as_object();
}

const std::string kNoBody;

bool terminal(std::string_view state) {
  return iequals(state, "Succeeded") || iequals(state, "Failed") || iequals(state, "Canceled");
}

Error operation_failed(const json::object& body, std::string_view state) {
  Error e;
  e.kind = Error::Kind::http;
  e.status = 200;
  e.code = "OperationFailed";
  e.message = fmt::format("long-running operation ended {}", state);
  const json::object* err = obj(body, "error");
  if (!err) {
    if (const auto* props = obj(body, "properties")) err = obj(*props, "error");
  }
  if (err) {
    if (auto c = str(*err, "code"); !c.empty()) e.code = c;
    if (auto m = str(*err, "message"); !m.empty()) e.message = m;
  }
  e.body = json::serialize(body);
  return e;
}

}  // namespace

CurrentIdentity ComputeIdentity::current() const {
  CurrentIdentity c;
  c.type = type;
  for (const auto& u : user_assigned) c.user_assigned.push_back(u.resource_id);
  return c;
}

CurrentIdentity ComputeResource::current_identity() const {
  return identity ? identity->current() : CurrentIdentity{};
}

Result<ComputeResource> parse_compute_resource(std::string_view body) {
  boost::system::error_code ec;
  auto doc = json::parse(body, ec);
  if (ec || !doc.is_object())
    return local_error(Error::Kind::parse, "InvalidResponse", "compute resource is not a JSON object");
  const auto& o = doc.as_object();
  ComputeResource r;
  r.id = str(o, "id");
  r.name = str(o, "name");
  r.location = str(o, "location");
  if (const auto* props = obj(o, "properties")) r.provisioning_state = str(*props, "provisioningState");
  if (const auto* id = obj(o, "identity")) {
    ComputeIdentity ci;
    ci.type = str(*id, "type");
    ci.principal_id = str(*id, "principalId");
    ci.tenant_id = str(*id, "tenantId");
    if (const auto* map = obj(*id, "userAssignedIdentities")) {
      for (const auto& kv : *map) {
        UserAssignedIdentity u;
        u.resource_id = std::string(kv.key());
        if (kv.value().is_object()) {
          u.principal_id = str(kv.value().as_object(), "principalId");
          u.client_id = str(kv.value().as_object(), "clientId");
        }
        ci.user_assigned.push_back(std::move(u));
      }
    }
    r.identity = std::move(ci);
  }
  return r;
}

Error arm_http_error(unsigned status, std::string_view body, std::string_view retry_after, SystemTime now) {
  Error e;
  e.kind = Error::Kind::http;
  e.status = status;
  e.body = std::string(body.substr(0, 64 * 1024));
  e.retry_after = parse_retry_after(retry_after, now);
  boost::system::error_code ec;
  auto doc = json::parse(body, ec);
  if (!ec && doc.is_object()) {
    const json::object* err = obj(doc.as_object(), "error");
    if (!err) err = &doc.as_object();
    e.code = str(*err, "code");
    e.message = str(*err, "message");
  }
  if (e.code.empty() && e.message.empty())
    e.message = body.empty() ? "empty error body" : std::string(body.substr(0, 512));
  e.retryable = status == 408 || status == 429 || status >= 500 ||
                e.code.find("LinkedAuthorizationFailed") != std::string::npos ||
                e.code.find("FailedIdentityOperation") != std::string::npos;
  return e;
}

ArmComputeClient::ArmComputeClient(http::Client& client, TokenSource& tokens, Clock& clock, ArmOptions options)
    : client_(client), tokens_(tokens), clock_(clock), options_(std::move(options)) {
  if (!options_.base_url.empty() && options_.base_url.back() != '/') options_.base_url += '/';
}

std::string ArmComputeClient::resource_url(const ComputeRef& ref) const {
  return join_url(options_.base_url, ref.arm_path()) + "?api-version=" + url_encode(options_.api_version);
}

boost::asio::awaitable<Result<std::string>> ArmComputeClient::bearer(const Cancellation& cancel) {
  if (!token_ || token_->expires_on - options_.token_refresh_margin <= clock_.now()) {
    ++stats_.token_fetches;
    auto t = co_await tokens_.get_token(options_.audience, cancel);
    if (!t) co_return t.error();
    token_ = std::move(*t);
  }
  co_return "Bearer " + token_->access_token;
}

boost::asio::awaitable<Result<http::ClientResponse>> ArmComputeClient::call(verb method, const std::string& url,
                                                                           const std::string& body,
                                                                           const Cancellation& cancel) {
  // A cached token ARM refuses (401: revoked, clock skew) is replaced once and the call repeated.
  for (int attempt = 0;; ++attempt) {
    const unsigned fetches = stats_.token_fetches;
    auto auth = co_await bearer(cancel);
    if (!auth) co_return auth.error();
    const bool cached = stats_.token_fetches == fetches;
    http::ClientRequest req;
    req.method = method;
    req.url = url;
    req.headers = {{"Authorization", *auth}, {"Accept", "application/json"}};
    if (!body.empty()) req.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
    req.body = body;
    req.timeout = options_.request_timeout;
    auto res = co_await send_request(client_, std::move(req), cancel);
    if (!res || res->status != 401) co_return res;
    token_.reset();
    if (!cached || attempt > 0) co_return res;
  }
}

std::optional<Error> ArmComputeClient::throttle_check(Direction d) {
  auto until = throttled_until(d);
  auto now = clock_.now();
  if (now >= until) return std::nullopt;
  ++stats_.throttled_locally;
  Error e = local_error(Error::Kind::throttled, "ClientThrottled",
                        fmt::format("client throttled for {}, retry after {} s",
                                    d == Direction::read ? "reads" : "writes",
                                    std::chrono::ceil<std::chrono::seconds>(until - now).count()),
                        true);
  e.retry_after = std::chrono::ceil<std::chrono::seconds>(until - now);
  return e;
}

void ArmComputeClient::remember_throttle(Direction d, const Error& e) {
  if (!e.retry_after) return;
  auto until = std::chrono::time_point_cast<SystemTime::duration>(clock_.now() + *e.retry_after);
  auto& slot = d == Direction::read ? read_until_ : write_until_;
  slot = std::max(slot, until);
}

boost::asio::awaitable<Result<ComputeResource>> ArmComputeClient::get(const ComputeRef& ref,
                                                                      const Cancellation& cancel) {
  if (auto e = throttle_check(Direction::read)) co_return *e;
  ++stats_.gets;
  const std::string url = resource_url(ref);
  auto res = co_await call(verb::get, url, kNoBody, cancel);
  if (!res) co_return res.error();
  if (res->status != 200) {
    Error e = arm_http_error(res->status, res->body, res->header("Retry-After"), clock_.now());
    remember_throttle(Direction::read, e);
    co_return e;
  }
  co_return parse_compute_resource(res->body);
}

boost::asio::awaitable<Result<void>> ArmComputeClient::patch_identity(const ComputeRef& ref,
                                                                      const IdentityPatch& patch,
                                                                      const Cancellation& cancel) {
  if (auto e = throttle_check(Direction::write)) co_return *e;
  ++stats_.patches;
  std::string url = resource_url(ref);
  const std::string body = patch.to_json();
  auto res = co_await call(verb::patch, url, body, cancel);
  if (!res) co_return res.error();
  if (res->status != 200 && res->status != 201 && res->status != 202 && res->status != 204) {
    Error e = arm_http_error(res->status, res->body, res->header("Retry-After"), clock_.now());
    remember_throttle(Direction::write, e);
    co_return e;
  }
  auto done = co_await wait_for_operation(*res, url, cancel);
  co_return done;
}

boost::asio::awaitable<Result<void>> ArmComputeClient::wait_for_operation(const http::ClientResponse& initial,
                                                                          const std::string& resource_url,
                                                                          const Cancellation& cancel) {
  // What the initial answer says (go-autorest's PATCH tracker rules).
  std::string async_url = initial.header("Azure-AsyncOperation");
  std::string location = initial.header("Location");
  if (initial.status == 204) co_return Result<void>{};
  if (initial.status == 200 || initial.status == 201) {
    boost::system::error_code ec;
    auto doc = json::parse(initial.body, ec);
    std::string state;
    if (!ec && doc.is_object())
      if (const auto* props = obj(doc.as_object(), "properties")) state = str(*props, "provisioningState");
    if (initial.status == 200 && state.empty()) state = "Succeeded";
    if (terminal(state)) {
      if (iequals(state, "Succeeded")) co_return Result<void>{};
      co_return operation_failed(doc.is_object() ? doc.as_object() : json::object{}, state);
    }
  }
  enum class Mode { async_operation, location, resource } mode;
  std::string poll_url;
  if (!async_url.empty()) {
    mode = Mode::async_operation;
    poll_url = async_url;
  } else if (!location.empty()) {
    mode = Mode::location;
    poll_url = location;
  } else if (initial.status == 202) {
    co_return local_error(Error::Kind::parse, "InvalidResponse",
                          "202 Accepted without Azure-AsyncOperation or Location header");
  } else {
    mode = Mode::resource;
    poll_url = resource_url;
  }

  const auto deadline = clock_.now() + options_.max_poll_duration;
  std::string retry_after = initial.header("Retry-After");
  for (;;) {
    Millis delay = options_.default_poll_delay;
    if (auto ra = parse_retry_after(retry_after, clock_.now())) delay = std::chrono::duration_cast<Millis>(*ra);
    if (clock_.now() + delay > deadline)
      co_return local_error(Error::Kind::transport, "OperationTimeout",
                            "long-running operation did not finish within the polling deadline", true);
    if (!co_await clock_.sleep(delay, cancel))
      co_return local_error(Error::Kind::cancelled, "Cancelled", "request cancelled");
    ++stats_.polls;
    auto res = co_await call(verb::get, poll_url, kNoBody, cancel);
    if (!res) co_return res.error();
    retry_after = res->header("Retry-After");
    if (res->status == 429 || res->status >= 500) continue;  // transient: keep polling
    if (res->status != 200 && res->status != 201 && res->status != 202 && res->status != 204)
      co_return arm_http_error(res->status, res->body, retry_after, clock_.now());
    if (mode == Mode::location) {
      if (res->status == 202) continue;
      co_return Result<void>{};
    }
    boost::system::error_code ec;
    auto doc = json::parse(res->body, ec);
    if (ec || !doc.is_object())
      co_return local_error(Error::Kind::parse, "InvalidResponse", "operation status is not a JSON object");
    std::string state;
    if (mode == Mode::async_operation) {
      state = str(doc.as_object(), "status");
      if (state.empty())
        co_return local_error(Error::Kind::parse, "InvalidResponse", "operation status has no status property");
    } else if (const auto* props = obj(doc.as_object(), "properties")) {
      state = str(*props, "provisioningState");
    }
    if (!terminal(state)) continue;
    if (iequals(state, "Succeeded")) co_return Result<void>{};
    co_return operation_failed(doc.as_object(), state);
  }
}

}  // namespace aad::azure
