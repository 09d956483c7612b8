#include "identity/nmi/handler.hpp"

#include <boost/json/parse.hpp>
#include <fmt/format.h>

#include "core/log.hpp"
#include "identity/nmi/caller.hpp"
#include "identity/nmi/request.hpp"
#include "identity/nmi/token_response.hpp"

namespace aad::identity::nmi {

using namespace std::chrono;
using http::Status;

namespace {

constexpr std::string_view kTokenPath = "/metadata/identity/oauth2/token";
constexpr std::string_view kHostTokenPath = "/host/token";

bool metadata_header_ok(const http::Request& req) {
  auto it = req.find("Metadata");
  return it != req.end() && it->value() == "true";
}

std::string_view route_name(Route r) {
  switch (r) {
    case Route::token: return "token";
    case Route::malformed_token: return "malformed_token";
    case Route::host_token: return "host_token";
    case Route::blocked_instance: return "blocked_instance";
    case Route::proxy: return "proxy";
    case Route::invalid_path: return "invalid_path";
  }
  return "unknown";
}

}  // namespace

struct Handler::Outcome {
  std::string peer;      // the connection's ip:port, for every line about this request
  std::string ns;        // caller pod's namespace, once known
  std::string pod;       // caller pod's namespace/name, once known
  std::string resource;  // the query's resource, once parsed
  std::string error;     // NMI's own error answer: its code ...
  std::string reason;    // ... and description, as fail() built them
  bool relayed = false;  // the answer is IMDS's, passed on
};

namespace {

// An IMDS-shaped error answer, remembered for the request's log line.
http::Response fail(Handler::Outcome& out, const http::Request& req, Status status, std::string code,
                    std::string description, std::optional<int> retry_after = std::nullopt) {
  out.error = code;
  out.reason = description;
  return error_response(req, Error{status, std::move(code), std::move(description), retry_after});
}

http::Response metadata_header_missing(Handler::Outcome& out, const http::Request& req) {
  // Byte for byte what IMDS (and the original) answer: SDK probes rely on it.
  return fail(out, req, Status::bad_request, "invalid_request", "Required metadata header not specified");
}

// "10.0.0.7:40000", "[fd00::7]:40000".
std::string peer_of(const boost::asio::ip::tcp::endpoint& peer) {
  auto ip = peer.address();
  if (ip.is_v6() && !ip.to_v6().is_v4_mapped()) return fmt::format("[{}]:{}", ip.to_string(), peer.port());
  return fmt::format("{}:{}", caller_ip(ip), peer.port());
}

// Request input in a log line: bounded (the log escapes control characters itself).
std::string clip(std::string_view s, std::size_t limit = 200) {
  if (s.size() <= limit) return std::string(s);
  return std::string(s.substr(0, limit)) + "...";
}

// The `error` and `error_description` of IMDS's JSON error answer, relayed.
std::pair<std::string, std::string> relayed_error_fields(const http::Response& res) {
  if (res.body().size() > 8192) return {};
  boost::system::error_code ec;
  auto value = boost::json::parse(res.body(), ec);
  if (ec || !value.is_object()) return {};
  auto text = [&](std::string_view key) {
    const auto* v = value.as_object().if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  return {text("error"), text("error_description")};
}

void log_request(int verbosity, const http::Request& req, Route route, std::string_view path,
                 const Handler::Outcome& out, const http::Response& res, steady_clock::duration elapsed) {
  // Never the query (it may name identities) nor the body (it holds the token).
  log::KV ms{"duration_ms", fmt::format("{:.3f}", duration<double, std::milli>(elapsed).count())};
  ms.quoted = false;
  int status = res.result_int();
  auto write = [&](log::Fields fields) {
    if (verbosity == 0) log::info("request", fields);
    else log::debug(verbosity, "request", fields);
  };
  if (status < 400) {
    write({{"route", route_name(route)}, {"method", clip(req.method_string(), 32)}, {"path", clip(path)},
           {"peer", out.peer}, {"pod", out.pod}, {"status", status}, ms});
    return;
  }
  auto [code, reason] = out.relayed ? relayed_error_fields(res) : std::pair{out.error, out.reason};
  write({{"route", route_name(route)}, {"method", clip(req.method_string(), 32)}, {"path", clip(path)},
         {"peer", out.peer}, {"pod", out.pod}, {"status", status}, ms, {"error", clip(code, 64)},
         {"reason", clip(reason)}});
}

}  // namespace

Handler::Handler(NodeState& state, Resolver& resolver, TokenService& tokens, Upstream& imds, ImdsLimiter& limiter,
                 azure::Clock& clock, NmiMetrics* metrics, HandlerOptions options)
    : state_(state), resolver_(resolver), tokens_(tokens), imds_(imds), limiter_(limiter), clock_(clock),
      metrics_(metrics), options_(std::move(options)) {}

http::Handler Handler::as_http_handler() {
  return [this](http::Request& req, const http::RequestContext& ctx) { return handle(req, ctx); };
}

boost::asio::awaitable<http::Response> Handler::handle(http::Request& req, const http::RequestContext& ctx) {
  auto start = steady_clock::now();
  // RFC 9112 3.2.2: an absolute-form target is served (and forwarded) as its origin form.
  if (auto origin = origin_form(req.target())) req.target(*origin);
  auto [path, query] = split_target(req.target());
  auto problem = path_problem(path);
  auto route = problem.empty() ? classify(path, options_.block_instance_metadata) : Route::invalid_path;
  Outcome out;
  out.peer = peer_of(ctx.peer);
  http::Response res;
  switch (route) {
    case Route::token: res = co_await token(req, ctx, query, out); break;
    case Route::host_token: res = co_await host_token(req, ctx, query, out); break;
    case Route::malformed_token: res = fail(out, req, Status::bad_request, "invalid_request", "Invalid request"); break;
    case Route::blocked_instance:
      res = fail(out, req, Status::forbidden, "forbidden", "Request blocked by AAD Pod Identity NMI");
      break;
    case Route::proxy: res = co_await proxy(req, query, out); break;
    case Route::invalid_path:
      res = fail(out, req, Status::bad_request, "invalid_request", "invalid request path: " + std::string(problem));
      break;
  }
  auto elapsed = steady_clock::now() - start;
  bool token_route = route == Route::token || route == Route::host_token;
  // One line per token request, as the original; everything else only at -v=2.
  if (token_route || log::enabled(2)) log_request(token_route ? 0 : 2, req, route, path, out, res, elapsed);
  if (metrics_) {
    double seconds = duration<double>(elapsed).count();
    auto code = std::to_string(res.result_int());
    metrics_->request_duration.with({std::string(route_name(route)), code}).observe(seconds);
    if (token_route) {
      // Any caller can invent resources; only ones that earned a token are labelled, and few.
      auto resource = res.result() == Status::ok ? metrics_->resources.admit(out.resource) : std::string();
      metrics_->operations
          .with({std::string(route == Route::token ? kTokenPath : kHostTokenPath), code, out.ns, std::move(resource)})
          .observe(seconds);
    }
  }
  co_return res;
}

boost::asio::awaitable<http::Response> Handler::token(const http::Request& req, const http::RequestContext& ctx,
                                                      std::string_view query, Outcome& out) {
  if (options_.metadata_header_required && !metadata_header_ok(req)) co_return metadata_header_missing(out, req);
  QueryError qe;
  auto q = parse_token_query(query, qe);
  if (!q) co_return fail(out, req, Status::bad_request, "invalid_request", qe.description);
  if (q->resource.empty()) co_return fail(out, req, Status::bad_request, "invalid_request", "parameter resource cannot be empty");
  out.resource = q->resource;
  auto ip = caller_ip(ctx.peer.address());
  auto caller = co_await find_caller(state_, ip, options_.pod_wait);
  if (!caller) {
    if (metrics_) metrics_->kube_errors.with({"get_pod_list"}).inc();
    if (caller.error().kind == CallerError::Kind::ambiguous)
      co_return fail(out, req, Status::internal_server_error, "internal_error", caller.error().description);
    co_return fail(out, req, Status::not_found, "pod_not_found", caller.error().description);
  }
  const kube::Pod& pod = **caller;
  out.ns = pod.meta.ns;
  out.pod = pod.key();
  auto exceptions = state_.exceptions(pod.meta.ns);
  if (is_excepted(pod, raw_pointers(exceptions)) || is_mic_pod(pod, options_.mic_namespace)) {
    log::debug(2, "excepted pod: token request goes straight to IMDS", {{"peer", out.peer}, {"pod", pod.key()}});
    auto res = co_await excepted_token(req, out);
    co_return res;
  }
  if (!q->object_id.empty())
    co_return fail(out, req, Status::bad_request, "invalid_request",
                   "object_id is not supported by AAD Pod Identity; use client_id, msi_res_id or mi_res_id");
  IdentityRequest wanted{q->client_id, q->resource_id};
  auto res = co_await answer(req, pod, q->resource, wanted, false, out);
  co_return res;
}

boost::asio::awaitable<http::Response> Handler::host_token(const http::Request& req, const http::RequestContext& ctx,
                                                           std::string_view query, Outcome& out) {
  auto name = req.find("podname");
  auto ns = req.find("podns");
  if (name == req.end() || ns == req.end() || name->value().empty() || ns->value().empty())
    co_return fail(out, req, Status::bad_request, "invalid_request", "missing 'podname' and 'podns' from request header");
  // As the original: only 127.0.0.1 (and ::1) count as the host itself.
  auto peer = caller_ip(ctx.peer.address());
  if (peer != "127.0.0.1" && peer != "::1")
    co_return fail(out, req, Status::internal_server_error, "internal_error", "request remote address is not from a host");
  QueryError qe;
  auto q = parse_token_query(query, qe);
  if (!q) co_return fail(out, req, Status::bad_request, "invalid_request", qe.description);
  if (q->resource.empty()) co_return fail(out, req, Status::bad_request, "invalid_request", "parameter resource cannot be empty");
  out.resource = q->resource;
  auto pod = state_.pod(std::string(ns->value()), std::string(name->value()));
  if (!pod || !can_call(*pod))
    co_return fail(out, req, Status::not_found, "pod_not_found",
                   fmt::format("pod {}/{} not found on this node", std::string(ns->value()), std::string(name->value())));
  out.pod = pod->key();
  out.ns = pod->meta.ns;  // a label from the pod, not from the header (bounded by the pods)
  IdentityRequest wanted{q->client_id, q->resource_id};
  auto res = co_await answer(req, *pod, q->resource, wanted, true, out);
  co_return res;
}

boost::asio::awaitable<http::Response> Handler::answer(const http::Request& req, const kube::Pod& pod,
                                                       const std::string& resource, const IdentityRequest& wanted,
                                                       bool host_shape, Outcome& out) {
  auto resolution = co_await resolver_.resolve(pod, wanted);
  if (!resolution.identity) {
    log::debug(1, "no identity for request", {{"peer", out.peer}, {"pod", pod.key()}, {"reason", resolution.reason}});
    if (options_.set_retry_after_header && !host_shape)
      co_return fail(out, req, Status::service_unavailable, "identity_not_found", resolution.reason, 20);
    co_return fail(out, req, Status::not_found, "identity_not_found", resolution.reason);
  }
  const auto& identity = *resolution.identity;
  auto tokens = co_await tokens_.get(identity, resource);
  if (!tokens || tokens->empty()) {
    auto e = tokens ? azure::local_error(azure::Error::Kind::parse, "no_token", "upstream returned no token")
                    : tokens.error();
    log::warning("token request failed", {{"peer", out.peer},
                                          {"pod", pod.key()},
                                          {"identity", identity.meta.ns + "/" + identity.meta.name},
                                          {"error", e.describe()}});
    // An answer from IMDS/AAD refusing the token is final (403); anything else may pass (503).
    bool refused = e.kind == azure::Error::Kind::http || e.kind == azure::Error::Kind::parse;
    if (refused)
      co_return fail(out, req, Status::forbidden, e.code.empty() ? "token_request_failed" : e.code, e.describe());
    co_return fail(out, req, Status::service_unavailable, "service_unavailable", e.describe());
  }
  auto now = clock_.now();
  std::string body = host_shape
                         ? host_token_body(tokens->front(), identity.client_id, resource, now)
                         : token_body(*tokens, identity.type == 1 && !identity.auxiliary_tenant_ids.empty(), resource, now);
  co_return http::make_response(req, Status::ok, std::move(body), "application/json");
}

boost::asio::awaitable<http::Response> Handler::excepted_token(const http::Request& req, Outcome& out) {
  auto permit = co_await limiter_.acquire();
  auto start = steady_clock::now();
  auto res = co_await imds_.forward(req, out.peer);
  out.relayed = true;
  if (metrics_) {
    auto [path, query] = split_target(req.target());
    QueryError qe;
    auto q = parse_token_query(query, qe);
    std::string op = q && (!q->client_id.empty() || !q->resource_id.empty() || !q->object_id.empty())
                         ? "adal_token_msi_userassignedid"
                         : "adal_token_msi";
    if (res.result_int() == 200)
      metrics_->imds_duration.with({op}).observe(duration<double>(steady_clock::now() - start).count());
    else
      metrics_->imds_errors.with({op}).inc();
  }
  co_return res;
}

boost::asio::awaitable<http::Response> Handler::proxy(const http::Request& req, std::string_view query,
                                                      Outcome& out) {
  if (options_.metadata_header_required && !metadata_header_ok(req)) co_return metadata_header_missing(out, req);
  if (query_has_control_characters(query))
    co_return fail(out, req, Status::bad_request, "invalid_request",
                   "malformed query string: control characters are not allowed in query parameters");
  if (req.method() == http::Verb::unknown)
    co_return fail(out, req, Status::method_not_allowed, "invalid_request", "unsupported HTTP method");
  auto res = co_await imds_.forward(req, out.peer);
  out.relayed = true;
  co_return res;
}

}  // namespace aad::identity::nmi
