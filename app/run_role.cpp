#include "app/run_role.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdio>
#include <memory>
#include <optional>

#include "core/health.hpp"
#include "core/http_server.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/version.hpp"

namespace aad::app {
namespace {

using namespace std::chrono_literals;

void configure_logging(const identity::CommonOptions& o) {
  log::Config config;
  config.format = log::parse_format(o.log_format);
  config.verbosity = static_cast<int>(o.verbosity);
  log::configure(std::move(config));
  for (const auto& flag : o.ignored_flags)
    log::info("flag accepted for compatibility with the original; it has no effect here", {{"flag", flag}});
}

// The process skeleton both roles share: one io_context, probe and metrics servers, and a
// graceful drain on SIGTERM/SIGINT. The role's engine plugs into `health` and `registry`.
int serve_role(std::string_view role, const identity::CommonOptions& o, std::string_view engine_status) {
  boost::asio::io_context io{1};
  metrics::Registry registry;
  http::Health health;
  registry.gauge("aadpodidentity_build_info", "Build information", {"version", "commit", "role"})
      .with({version::semver, version::git_commit, std::string(role)})
      .set(1);
  health.add_readiness_check(std::string(role) + "-engine", [] { return false; });

  auto handler = http::make_ops_handler(health, registry);
  std::vector<std::unique_ptr<http::Server>> servers;
  auto listen = [&](std::int64_t port, std::string name) {
    http::ServerOptions so;
    so.name = std::move(name);
    so.address = "0.0.0.0";
    so.port = static_cast<std::uint16_t>(port);
    // Probes and scrapes are short: idle or slow connections must not crowd out kubelet's probe.
    so.idle_timeout = 10s;
    so.read_timeout = 10s;
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

  log::error("role engine unavailable in this build; serving probes only (readiness stays failed)",
             std::string(engine_status), {{"role", std::string(role)}});

  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    log::info("shutting down", {{"signal", signo}});
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
          // Only requests being handled are waited for, so this is quick in practice.
          for (auto& s : servers) co_await s->shutdown(5s);
          io.stop();
        },
        boost::asio::detached);
  });
  io.run();
  log::info("stopped");
  return 0;
}

}  // namespace

int run_mic(const identity::MicOptions& o) {
  configure_logging(o);
  if (o.mic_pod_namespace.empty()) {
    std::fprintf(stderr, "aad-pod-identity: environment variable MIC_POD_NAMESPACE must be set for --role=mic\n");
    return 2;
  }
  return serve_role("mic", o, "the MIC controller is not implemented yet (issue 7)");
}

int run_nmi(const identity::NmiOptions& o) {
  configure_logging(o);
  return serve_role("nmi", o, "the NMI token service is not implemented yet (issue 6)");
}

}  // namespace aad::app
