#include "app/role_process.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <sys/resource.h>

#include "core/http_server.hpp"
#include "core/log.hpp"
#include "core/version.hpp"

namespace aad::app {

using namespace std::chrono_literals;

void configure_logging(const identity::CommonOptions& o) {
  log::Config config;
  config.format = log::parse_format(o.log_format);
  config.verbosity = static_cast<int>(o.verbosity);
  log::configure(std::move(config));
  for (const auto& flag : o.ignored_flags)
    log::info("flag accepted for compatibility with the original; it has no effect here", {{"flag", flag}});
}

// Each listener may hold its own connection cap (512) of descriptors, so one full listener must
// not run the others out of them: lift the soft limit to the hard one, as Go 1.19+ programs do.
void raise_descriptor_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) return;
  rlim_t before = lim.rlim_cur;
  lim.rlim_cur = lim.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0)
    log::warning("cannot raise the open-file limit", {{"limit", static_cast<std::uint64_t>(before)}});
}

int serve_role(std::string_view role, const identity::CommonOptions& o, RoleHooks hooks) {
  raise_descriptor_limit();
  boost::asio::io_context io{1};
  metrics::Registry registry;
  http::Health health;
  registry.gauge("aadpodidentity_build_info", "Build information", {"version", "commit", "role"})
      .with({version::semver, version::git_commit, std::string(role)})
      .set(1);

  auto handler = http::make_ops_handler(health, registry);
  std::vector<std::unique_ptr<http::Server>> servers;
  auto listen = [&](std::int64_t port, std::string name) {
    http::ServerOptions so;
    so.name = std::move(name);
    so.address = "0.0.0.0";
    so.port = static_cast<std::uint16_t>(port);
    // Probes and scrapes are short: idle or slow connections must not crowd out kubelet's probe
    // (at the cap they are closed first), nor a stalled scraper hold a /metrics slot for long.
    so.idle_timeout = 10s;
    so.read_timeout = 10s;
    so.write_timeout = 10s;
    servers.push_back(std::make_unique<http::Server>(io.get_executor(), so, handler));
    try {
      servers.back()->start();
    } catch (const boost::system::system_error& e) {
      log::error("cannot listen", e.code().message(), {{"server", so.name}, {"address", so.address}, {"port", port}});
      return false;
    }
    log::info("serving", {{"server", so.name}, {"port", servers.back()->local_endpoint().port()}});
    return true;
  };
  if (!listen(o.http_probe_port, "probe")) return 1;
  if (o.prometheus_port != o.http_probe_port && !listen(o.prometheus_port, "metrics")) return 1;

  RoleRuntime runtime{io, registry, health};
  if (hooks.start && !hooks.start(runtime)) return 1;

  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    log::info("shutting down", {{"signal", signo}});
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
          if (hooks.stop) co_await hooks.stop();
          // Only requests being handled are waited for, so this is quick in practice.
          for (auto& s : servers) co_await s->shutdown(5s);
          io.stop();
        },
        boost::asio::detached);
  });
  io.run();
  if (hooks.release) hooks.release();
  log::info("stopped");
  return 0;
}

}  // namespace aad::app
