#pragma once
// The NMI role assembled: watch caches, identity resolution, token service, the HTTP handler on
// --nmi-listen-address:--nmi-port and the iptables redirect, in the original's start-up order
// (kubenet check; caches synced before the redirect goes in; /healthz Active once it is in).
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>

#include "core/health.hpp"
#include "core/metrics.hpp"
#include "identity/options.hpp"

namespace aad::identity::nmi {

struct EngineOverrides {
  // The binary always manages iptables. In-process tests set this false (the process's own
  // network namespace is never touched); /healthz then turns Active once the caches synced.
  bool manage_iptables = true;
  std::string kubeconfig;  // overrides options.kubeconfig when set
};

class Engine {
 public:
  Engine(boost::asio::io_context& io, NmiOptions options, metrics::Registry& registry, http::Health& health,
         EngineOverrides overrides = {});
  ~Engine();

  // Fatal start-up checks, then caches, server and redirect. False (logged) on a fatal error.
  bool start();
  boost::asio::awaitable<void> stop();

  unsigned short port() const;  // the bound NMI port (useful with --nmi-port=0 in tests)
  bool synced() const;

  struct Parts;

 private:
  boost::asio::awaitable<void> run_caches();
  boost::asio::awaitable<void> after_sync();
  std::unique_ptr<Parts> p_;
};

}  // namespace aad::identity::nmi
