#pragma once
// /healthz, /readyz and /metrics for a role's probe and metrics ports.
// /healthz keeps the original's contract: always 200, body "Active" or "Not Active".
// /readyz is 200 only when every registered check passes; the body lists each check.
// /metrics is rendered at most once per max_age and the text shared by every response sending
// it, so a scraper that never reads costs a connection, not a copy of the page.
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/http_message.hpp"
#include "core/http_server.hpp"

namespace aad::metrics {
class Registry;
}

namespace aad::http {

class Health {
 public:
  void set_active(bool active) { active_ = active; }
  bool active() const { return active_; }
  void add_readiness_check(std::string name, std::function<bool()> ok);
  bool ready() const;

  Response healthz(const Request& req) const;
  Response readyz(const Request& req) const;

 private:
  bool active_ = false;
  std::vector<std::pair<std::string, std::function<bool()>>> checks_;
};

struct MetricsPageOptions {
  std::chrono::milliseconds max_age = std::chrono::seconds(1);  // scrapes within this share one rendering
  // Responses still being sent (to a slow or stalled scraper) at once; further scrapes get 503.
  std::size_t max_in_flight = 16;
  std::function<std::chrono::steady_clock::time_point()> now = std::chrono::steady_clock::now;
};

// The /metrics text, cached and shared. Lives as long as the last response sending it.
class MetricsPage : public std::enable_shared_from_this<MetricsPage> {
 public:
  MetricsPage(const metrics::Registry& registry, MetricsPageOptions options = {});

  // The text for one scrape; null when max_in_flight responses are still being sent. The slot
  // is held until the last copy of the returned pointer is gone.
  std::shared_ptr<const std::string> acquire();

  std::size_t in_flight() const { return in_flight_; }
  std::size_t renders() const { return renders_; }
  // Responses currently holding the cached text (its use count, less the cache's own).
  long sharers() const { return text_ ? text_.use_count() - 1 : 0; }

 private:
  const metrics::Registry& registry_;
  MetricsPageOptions options_;
  std::shared_ptr<const std::string> text_;
  std::chrono::steady_clock::time_point rendered_at_{};
  std::size_t in_flight_ = 0;
  std::size_t renders_ = 0;
};

// A handler serving /healthz, /readyz and /metrics (GET/HEAD); 404 for anything else,
// 405 for other methods. No profiling endpoints.
Handler make_ops_handler(const Health& health, std::shared_ptr<MetricsPage> metrics);
Handler make_ops_handler(const Health& health, const metrics::Registry& registry);

}  // namespace aad::http
