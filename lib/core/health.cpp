#include "core/health.hpp"

#include "core/metrics.hpp"

namespace aad::http {

void Health::add_readiness_check(std::string name, std::function<bool()> ok) {
  checks_.emplace_back(std::move(name), std::move(ok));
}

bool Health::ready() const {
  for (const auto& [name, ok] : checks_)
    if (!ok()) return false;
  return true;
}

Response Health::healthz(const Request& req) const {
  return make_response(req, Status::ok, active_ ? "Active" : "Not Active");
}

Response Health::readyz(const Request& req) const {
  std::string body;
  bool all = true;
  for (const auto& [name, ok] : checks_) {
    bool passed = ok();
    all = all && passed;
    body += (passed ? "[+]" : "[-]") + name + (passed ? " ok\n" : " failed\n");
  }
  body += all ? "ready\n" : "not ready\n";
  return make_response(req, all ? Status::ok : Status::service_unavailable, std::move(body));
}

Handler make_ops_handler(const Health& health, const metrics::Registry& registry) {
  return [&health, &registry](Request& req, const RequestContext&) -> boost::asio::awaitable<Response> {
    std::string_view target = req.target();
    std::string_view path = target.substr(0, target.find('?'));
    if (req.method() != Verb::get && req.method() != Verb::head) {
      auto res = make_response(req, Status::method_not_allowed,
                               R"({"error":"method_not_allowed","error_description":"use GET or HEAD"})",
                               "application/json");
      res.set(bhttp::field::allow, "GET, HEAD");
      co_return res;
    }
    Response res;
    if (path == "/healthz")
      res = health.healthz(req);
    else if (path == "/readyz")
      res = health.readyz(req);
    else if (path == "/metrics")
      res = make_response(req, Status::ok, registry.render(), "text/plain; version=0.0.4; charset=utf-8");
    else
      res = make_response(req, Status::not_found, R"({"error":"not_found","error_description":"no such endpoint"})",
                          "application/json");
    if (req.method() == Verb::head) {
      auto length = res.body().size();
      res.body().clear();
      res.content_length(length);
    }
    co_return res;
  };
}

}  // namespace aad::http
