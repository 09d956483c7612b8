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

MetricsPage::MetricsPage(const metrics::Registry& registry, MetricsPageOptions options)
    : registry_(registry), options_(std::move(options)) {}

std::shared_ptr<const std::string> MetricsPage::acquire() {
  if (in_flight_ >= options_.max_in_flight) return nullptr;
  auto now = options_.now();
  if (!text_ || now - rendered_at_ >= options_.max_age) {
    text_ = std::make_shared<const std::string>(registry_.render());
    rendered_at_ = now;
    ++renders_;
  }
  // One small slot object per response; it frees the slot when the response lets go of the text.
  struct Slot {
    std::shared_ptr<MetricsPage> page;
    std::shared_ptr<const std::string> text;
    Slot(std::shared_ptr<MetricsPage> p, std::shared_ptr<const std::string> t)
        : page(std::move(p)), text(std::move(t)) {}
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { --page->in_flight_; }
  };
  ++in_flight_;
  auto slot = std::make_shared<Slot>(shared_from_this(), text_);
  return std::shared_ptr<const std::string>(slot, slot->text.get());
}

Handler make_ops_handler(const Health& health, const metrics::Registry& registry) {
  return make_ops_handler(health, std::make_shared<MetricsPage>(registry));
}

Handler make_ops_handler(const Health& health, std::shared_ptr<MetricsPage> page) {
  return [&health, page](Request& req, const RequestContext& ctx) -> boost::asio::awaitable<Response> {
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
    else if (path == "/metrics") {
      ctx.shared_body = page->acquire();
      if (!ctx.shared_body) {
        res = make_response(req, Status::service_unavailable,
                            R"({"error":"server_busy","error_description":"too many scrapes in progress, retry"})",
                            "application/json");
        res.set(bhttp::field::retry_after, "1");
      } else {
        res = make_response(req, Status::ok, "", "text/plain; version=0.0.4; charset=utf-8");
        co_return res;  // the server sends the shared text (and only its header for HEAD)
      }
    } else
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
