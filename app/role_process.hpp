#pragma once
// The process skeleton both roles share: one io_context, the probe and metrics servers,
// and a graceful stop on SIGTERM/SIGINT. A role plugs its engine in through RoleHooks.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <string_view>

#include "core/health.hpp"
#include "core/metrics.hpp"
#include "identity/options.hpp"

namespace aad::app {

struct RoleRuntime {
  boost::asio::io_context& io;
  metrics::Registry& registry;
  http::Health& health;
};

struct RoleHooks {
  // Called once the probe/metrics servers listen. Returns false to exit with status 1
  // (the hook logs why). The engine registers its readiness checks on runtime.health.
  std::function<bool(RoleRuntime&)> start;
  // Called on SIGTERM/SIGINT before the probe servers drain; the role releases what it holds.
  std::function<boost::asio::awaitable<void>()> stop;
  // Called once the io_context has stopped, before it is destroyed: the role destroys what uses
  // the io_context (timers, sockets), which must not outlive it.
  std::function<void()> release;
};

void configure_logging(const identity::CommonOptions& options);

// Runs until a signal (or the io_context running out of work) and returns the exit status.
int serve_role(std::string_view role, const identity::CommonOptions& options, RoleHooks hooks);

}  // namespace aad::app
