#include "identity/nmi/engine.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include "azure/clock.hpp"
#include "core/http_client.hpp"
#include "core/http_server.hpp"
#include "core/log.hpp"
#include "identity/nmi/azure_fetcher.hpp"
#include "identity/nmi/handler.hpp"
#include "identity/nmi/imds_limiter.hpp"
#include "identity/nmi/imds_upstream.hpp"
#include "identity/nmi/kube_node_state.hpp"
#include "identity/nmi/node_checks.hpp"
#include "identity/nmi/redirector.hpp"
#include "identity/nmi/resolver.hpp"
#include "identity/nmi/secret_reader.hpp"
#include "identity/nmi/token_service.hpp"
#include "kube/client.hpp"
#include "kube/config.hpp"
#include "kube/notifier.hpp"

namespace aad::identity::nmi {

using namespace std::chrono;

struct Engine::Parts {
  boost::asio::io_context& io;
  NmiOptions o;
  metrics::Registry& registry;
  http::Health& health;
  EngineOverrides overrides;
  bool stopping = false;
  bool caches_done = false;
  kube::ChangeNotifier caches_finished;

  Parts(boost::asio::io_context& i, NmiOptions opts, metrics::Registry& r, http::Health& h, EngineOverrides ov)
      : io(i), o(std::move(opts)), registry(r), health(h), overrides(std::move(ov)) {}

  std::unique_ptr<kube::Client> kube;
  std::unique_ptr<KubeNodeState> state;
  std::unique_ptr<http::Client> http;
  std::unique_ptr<NmiMetrics> metrics;
  std::unique_ptr<ImdsLimiter> limiter;
  std::unique_ptr<KubeSecretReader> secrets;
  std::unique_ptr<AzureTokenFetcher> fetcher;
  std::unique_ptr<TokenService> tokens;
  std::unique_ptr<Resolver> resolver;
  std::unique_ptr<HttpUpstream> upstream;
  std::unique_ptr<Handler> handler;
  std::unique_ptr<http::Server> server;
  std::unique_ptr<Redirector> redirector;
};

Engine::Engine(boost::asio::io_context& io, NmiOptions options, metrics::Registry& registry, http::Health& health,
               EngineOverrides overrides)
    : p_(std::make_unique<Parts>(io, std::move(options), registry, health, std::move(overrides))) {}

Engine::~Engine() = default;

bool Engine::start() {
  auto& p = *p_;
  const auto& o = p.o;
  if (!o.allow_network_plugin_kubenet) {
    if (auto refusal = check_kubenet(o.kubelet_config)) {
      log::error("refusing to start", *refusal);
      return false;
    }
  }
  if (o.node.empty()) {
    log::error("refusing to start", "the node name is empty: set --node or NODE_NAME");
    return false;
  }
  try {
    auto config = kube::load(p.overrides.kubeconfig.empty() ? o.kubeconfig : p.overrides.kubeconfig);
    kube::ClientOptions co;
    co.qps = o.client_qps;
    co.burst = static_cast<int>(o.client_qps);
    co.user_agent_suffix = o.custom_user_agent;
    p.kube = std::make_unique<kube::Client>(p.io.get_executor(), std::move(config), co);
  } catch (const std::exception& e) {
    log::error("cannot configure the Kubernetes client", e.what());
    return false;
  }
  bool managed = o.operation_mode == "managed";
  p.state = std::make_unique<KubeNodeState>(
      *p.kube, KubeNodeStateOptions{o.node, !managed, o.enable_scale_features});
  p.http = std::make_unique<http::Client>(p.io.get_executor(), http::ClientOptions{});
  p.metrics = std::make_unique<NmiMetrics>(p.registry);
  p.limiter = std::make_unique<ImdsLimiter>();
  p.secrets = std::make_unique<KubeSecretReader>(*p.kube);
  AzureFetcherOptions fo;
  fo.imds_endpoint = o.imds_endpoint;
  p.fetcher = std::make_unique<AzureTokenFetcher>(*p.http, azure::system_clock(), *p.secrets, *p.limiter,
                                                  p.metrics.get(), fo);
  TokenServiceOptions to;
  to.enabled = o.token_cache;
  auto* metrics = p.metrics.get();
  to.on_lookup = [metrics](std::string_view result) { metrics->token_cache.with({std::string(result)}).inc(); };
  to.on_evict = [metrics] { metrics->token_cache_evictions.get().inc(); };
  p.tokens = std::make_unique<TokenService>(p.io.get_executor(), *p.fetcher, azure::system_clock(), to);
  ResolverOptions ro;
  ro.managed = managed;
  ro.force_namespaced = o.force_namespaced;
  ro.created_wait = seconds(o.retry_attempts_for_created * o.find_identity_retry_interval);
  ro.assigned_wait = seconds(o.retry_attempts_for_assigned * o.find_identity_retry_interval);
  p.resolver = std::make_unique<Resolver>(*p.state, ro);
  p.upstream = std::make_unique<HttpUpstream>(*p.http, o.imds_endpoint);
  HandlerOptions ho;
  ho.metadata_header_required = o.metadata_header_required;
  ho.block_instance_metadata = o.block_instance_metadata;
  ho.set_retry_after_header = o.set_retry_after_header;
  ho.mic_namespace = o.mic_namespace;
  p.handler = std::make_unique<Handler>(*p.state, *p.resolver, *p.tokens, *p.upstream, *p.limiter,
                                        azure::system_clock(), p.metrics.get(), ho);
  http::ServerOptions so;
  so.name = "nmi";
  so.address = o.nmi_listen_address;
  so.port = static_cast<unsigned short>(o.nmi_port);
  so.max_connections = 512;
  so.max_connections_per_peer = 64;  // every pod on the node shares NMI: one must not starve the rest
  so.body_limit = 64 * 1024;  // IMDS requests carry no or tiny bodies; 1 MiB each let pods exhaust memory
  p.server = std::make_unique<http::Server>(p.io.get_executor(), so, p.handler->as_http_handler());
  try {
    p.server->start();
  } catch (const boost::system::system_error& e) {
    log::error("cannot listen", e.code().message(), {{"address", so.address}, {"port", o.nmi_port}});
    return false;
  }
  log::info("NMI serving", {{"address", so.address}, {"port", p.server->local_endpoint().port()},
                            {"mode", o.operation_mode}, {"node", o.node}, {"cache", o.token_cache ? "on" : "off"}});
  auto* state = p.state.get();
  p.health.add_readiness_check("nmi-caches", [state] { return state->synced(); });
  boost::asio::co_spawn(p.io, run_caches(), boost::asio::detached);
  boost::asio::co_spawn(p.io, after_sync(), boost::asio::detached);
  return true;
}

boost::asio::awaitable<void> Engine::run_caches() {
  co_await p_->state->run();
  p_->caches_done = true;
  p_->caches_finished.notify();
}

boost::asio::awaitable<void> Engine::after_sync() {
  auto& p = *p_;
  for (;;) {
    bool synced = co_await p.state->wait_synced(seconds(30));
    if (synced || p.stopping) break;
    log::warning("NMI caches not synced yet (are the aadpodidentity.k8s.io CRDs installed and readable?)");
  }
  if (p.stopping) co_return;
  log::info("NMI caches synced", {{"pods", p.state->pod_count()}});
  if (!p.overrides.manage_iptables) {
    p.health.set_active(true);
    co_return;
  }
  auto spec = make_redirect_spec(p.o.metadata_ip, static_cast<int>(p.o.metadata_port), p.o.nmi_listen_address,
                                 static_cast<int>(p.o.nmi_port));
  if (needs_route_localnet(spec.target_ip))
    if (auto warning = route_localnet_warning()) log::warning(*warning);
  RedirectorOptions ro;
  ro.spec = spec;
  ro.interval = seconds(p.o.ipt_update_interval_sec);
  ro.conntrack_deletion = p.o.enable_conntrack_deletion;
  auto& io = p.io;
  auto& health = p.health;
  p.redirector = std::make_unique<Redirector>(ro, run_command, [&io, &health] {
    boost::asio::post(io, [&health] { health.set_active(true); });
  });
  p.redirector->start();
}

boost::asio::awaitable<void> Engine::stop() {
  auto& p = *p_;
  p.stopping = true;
  if (p.redirector) p.redirector->stop();  // removes the chain and the jump
  p.health.set_active(false);
  if (p.server) co_await p.server->shutdown(seconds(5));
  if (p.state) {
    p.state->stop();
    // Let the watch coroutines finish before the io_context goes away (bounded).
    auto deadline = steady_clock::now() + seconds(2);
    while (!p.caches_done && steady_clock::now() < deadline) {
      bool changed = co_await p.caches_finished.wait(milliseconds(100));
      (void)changed;
    }
  }
}

unsigned short Engine::port() const { return p_->server ? p_->server->local_endpoint().port() : 0; }

bool Engine::synced() const { return p_->state && p_->state->synced(); }

}  // namespace aad::identity::nmi
