#pragma once
// The real NMI request path (Handler -> caller lookup -> Resolver -> TokenService) over the
// in-memory fakes, driven on one io_context: synchronous calls, and concurrent ones that can be
// cancelled like a client disconnect.
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <memory>
#include <optional>

#include "azure/fake_clock.hpp"
#include "identity/nmi/handler.hpp"
#include "nmi/nmi_fakes.hpp"
#include "nmi/nmi_objects.hpp"
#include "support/async.hpp"

namespace aad::test {

namespace nmi = identity::nmi;
using namespace std::chrono_literals;

// An answer's JSON body, and the fields of NMI's IMDS-style error body.
inline boost::json::object body_of(const http::Response& r) { return boost::json::parse(r.body()).as_object(); }
inline std::string error_of(const http::Response& r) { return std::string(body_of(r).at("error").as_string()); }
inline std::string description_of(const http::Response& r) {
  return std::string(body_of(r).at("error_description").as_string());
}

struct Call {
  http::Request req;
  http::RequestContext ctx;
  boost::asio::cancellation_signal cancel;
  std::optional<http::Response> res;
  bool done = false;
  bool aborted = false;
};

struct NmiHarness {
  boost::asio::io_context io;
  FakeClock clock;
  MemoryNodeState state;
  FakeFetcher fetcher{clock};
  FakeUpstream upstream;
  nmi::ImdsLimiter limiter;
  metrics::Registry registry;
  nmi::NmiMetrics metrics{registry};
  nmi::ResolverOptions resolver_options;
  nmi::HandlerOptions handler_options;
  nmi::TokenServiceOptions token_options;
  std::unique_ptr<nmi::TokenService> tokens;
  std::unique_ptr<nmi::Resolver> resolver;
  std::unique_ptr<nmi::Handler> handler;

  NmiHarness() {
    // Long waits by default: a test that wrongly waits fails by the run limit, never by timing.
    resolver_options.created_wait = 1h;
    resolver_options.assigned_wait = 1h;
    handler_options.pod_wait = 50ms;
  }

  nmi::Handler& h() {
    if (!handler) {
      tokens = std::make_unique<nmi::TokenService>(io.get_executor(), fetcher, clock, token_options);
      resolver = std::make_unique<nmi::Resolver>(state, resolver_options);
      handler = std::make_unique<nmi::Handler>(state, *resolver, *tokens, upstream, limiter, clock, &metrics,
                                               handler_options);
    }
    return *handler;
  }

  nmi::TokenService& token_service() {
    h();
    return *tokens;
  }

  static std::unique_ptr<Call> make_call(const std::string& target, const std::string& ip,
                                         std::vector<std::pair<std::string, std::string>> headers,
                                         http::Verb verb = http::Verb::get, std::string body = {}) {
    auto c = std::make_unique<Call>();
    c->req.method(verb);
    c->req.target(target);
    c->req.version(11);
    c->req.set(http::bhttp::field::host, "169.254.169.254");
    for (const auto& [k, v] : headers) c->req.set(k, v);
    c->req.body() = std::move(body);
    c->req.prepare_payload();
    c->ctx.peer = {boost::asio::ip::make_address(ip), 40000};
    c->ctx.local = {boost::asio::ip::make_address("127.0.0.1"), 2579};
    return c;
  }

  // Starts the request; completes in the background as the io_context runs.
  void start(Call& c) {
    boost::asio::co_spawn(io, h().handle(c.req, c.ctx),
                          boost::asio::bind_cancellation_slot(c.cancel.slot(), [&c](std::exception_ptr e, http::Response r) {
                            c.done = true;
                            if (e) c.aborted = true;
                            else c.res = std::move(r);
                          }));
  }

  template <typename Pred>
  void run_until(Pred pred, std::chrono::seconds limit = 20s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    io.restart();
    while (!pred() && std::chrono::steady_clock::now() < deadline) io.run_one_for(20ms);
    if (!pred()) throw std::runtime_error("condition not reached in time");
  }
  void settle() {  // runs whatever is ready now
    io.restart();
    io.poll();
  }

  http::Response call(const std::string& target, const std::string& ip = "10.0.0.1",
                      std::vector<std::pair<std::string, std::string>> headers = {{"Metadata", "true"}},
                      http::Verb verb = http::Verb::get, std::string body = {}) {
    auto c = make_call(target, ip, std::move(headers), verb, std::move(body));
    start(*c);
    run_until([&] { return c->done; });
    if (c->aborted) throw std::runtime_error("request aborted");
    return std::move(*c->res);
  }

  // A pod with one identity bound through a binding, and (unless status is empty) its assignment.
  kube::AzureIdentity bind(const kube::Pod& pod, const std::string& identity_name, const std::string& client_id,
                           const std::string& status = "Assigned", int type = 0) {
    auto id = make_identity(pod.meta.ns, identity_name, client_id, type);
    state.add(id);
    state.add(make_binding(pod.meta.ns, identity_name + "-binding", identity_name,
                           pod.meta.labels.count("aadpodidbinding") ? pod.meta.labels.at("aadpodidbinding") : ""));
    if (!status.empty()) state.add(make_assigned(pod, id, status));
    return id;
  }
};

}  // namespace aad::test
