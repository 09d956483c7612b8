#pragma once
// /healthz, /readyz and /metrics for a role's probe and metrics ports.
// /healthz keeps the original's contract: always 200, body "Active" or "Not Active".
// /readyz is 200 only when every registered check passes; the body lists each check.
#include <boost/asio/awaitable.hpp>
#include <functional>
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

// A handler serving /healthz, /readyz and /metrics (GET/HEAD); 404 for anything else,
// 405 for other methods. No profiling endpoints.
Handler make_ops_handler(const Health& health, const metrics::Registry& registry);

}  // namespace aad::http
