// --role=mic: the controller (issue 7). Wires the leader-elected MIC controller into the
// shared process skeleton: cloud config and ARM client, kube client, health and metrics.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "app/role_process.hpp"
#include "app/run_role.hpp"
#include "azure/clock.hpp"
#include "core/log.hpp"
#include "identity/mic/azure_setup.hpp"
#include "identity/mic/controller.hpp"
#include "identity/mic/type_upgrade.hpp"
#include "kube/config.hpp"

namespace aad::app {
namespace {

using namespace std::chrono_literals;

// Everything the MIC role owns for the life of the process.
struct MicRole {
  std::unique_ptr<kube::Client> kube;
  std::unique_ptr<identity::mic::ReloadableCompute> arm;
  std::string user_agent_suffix;
  std::unique_ptr<identity::mic::Controller> controller;
  identity::mic::TypeUpgradeOptions upgrade;
  bool finished = false;

  boost::asio::awaitable<bool> type_upgrade() {
    // Created outside the co_await: its by-value argument must not be a temporary of a
    // full-expression that suspends (GCC 12, PR 99576).
    auto upgrading = identity::mic::run_type_upgrade(*kube, upgrade);
    auto r = co_await std::move(upgrading);
    if (!r) {
      log::error("v1.6 type upgrade failed", r.error().describe(), {});
      co_return false;
    }
    using Outcome = identity::mic::TypeUpgradeReport::Outcome;
    if (r->outcome == Outcome::upgraded)
      log::info("v1.6 type upgrade done", {{"version", r->recorded_version},
                                          {"identities", r->identities.rewritten},
                                          {"bindings", r->bindings.rewritten},
                                          {"exceptions", r->exceptions.rewritten},
                                          {"assigned", r->assigned.rewritten},
                                          {"skipped", r->skipped.size()}});
    else if (r->outcome == Outcome::already_done)
      log::info("v1.6 type upgrade already done", {{"version", r->recorded_version}});
    co_return true;
  }

  boost::asio::awaitable<void> run() {
    auto end = co_await controller->run();
    finished = true;
    if (end == kube::LeadershipEnd::lost) {
      // As the original: a replica that lost the lease exits and is restarted clean.
      log::error("exiting: leadership lost", "lease not renewed in time or taken over", {});
      std::fflush(stderr);
      std::_Exit(1);
    }
  }

  // azure.json changed (checked every few seconds, as the original's file watcher): new
  // credentials and endpoints apply to the next ARM call, and every VM/VMSS is retried at once.
  boost::asio::awaitable<void> watch_cloud_config(std::string path) {
    azure::CloudConfigWatcher watcher(path);
    watcher.changed();  // the file as read at start
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
    for (;;) {
      t.expires_after(5s);
      auto [ec] = co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
      if (ec || finished) co_return;
      auto polled = watcher.poll();
      if (!polled) continue;
      if (!*polled) {
        log::warning("cloud config changed but is not usable; keeping the previous one",
                     {{"cloudconfig", path}, {"error", polled->error().describe()}});
        continue;
      }
      const auto& old = arm->current().config;
      auto fresh = **polled;
      bool needs_restart = fresh.subscription_id != old.subscription_id ||
                           fresh.resource_group != old.resource_group ||
                           fresh.user_assigned_identity_id != old.user_assigned_identity_id;
      auto next = identity::mic::make_azure_setup_from(t.get_executor(), std::move(fresh), user_agent_suffix);
      if (!next) {
        log::warning("cloud config changed but is not usable; keeping the previous one",
                     {{"cloudconfig", path}, {"error", next.error().describe()}});
        continue;
      }
      arm->replace(std::move(*next));
      log::info("cloud config reloaded", {{"cloudconfig", path}});
      if (needs_restart)
        log::warning("subscriptionId, resourceGroup or userAssignedIdentityID changed: they take effect after a restart");
      controller->engine().retry_all_now();
    }
  }

  // SIGTERM: release the lease (so another replica takes over at once), bounded wait.
  boost::asio::awaitable<void> stop() {
    if (!controller) co_return;
    controller->stop();
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
    for (int i = 0; i < 50 && !finished; ++i) {
      t.expires_after(100ms);
      co_await t.async_wait(boost::asio::use_awaitable);
    }
  }
};

// Ties the role's lifetime to the io_context: when the io_context goes away, asio shuts every
// service down before destroying any, so the role (and its timers, sockets and TLS streams)
// is destroyed here while all the services those I/O objects use still exist.
class RoleHolder final : public boost::asio::execution_context::service {
 public:
  using key_type = RoleHolder;
  static inline boost::asio::execution_context::id id;
  explicit RoleHolder(boost::asio::execution_context& ctx) : service(ctx) {}
  std::shared_ptr<MicRole> role;

 private:
  void shutdown() override { role.reset(); }
};

bool start_mic(const identity::MicOptions& o, RoleRuntime& rt, MicRole& role) {
  kube::Config config;
  try {
    config = kube::load(o.kubeconfig);
  } catch (const std::exception& e) {
    log::error("cannot load the Kubernetes client configuration", e.what(), {});
    return false;
  }
  kube::ClientOptions ko;
  ko.qps = o.client_qps;
  ko.burst = static_cast<int>(o.client_qps);  // the original: burst = QPS
  if (ko.burst < 1) ko.burst = 1;
  ko.user_agent_suffix = o.custom_user_agent;
  role.kube = std::make_unique<kube::Client>(rt.io.get_executor(), config, ko);

  auto setup = identity::mic::make_azure_setup(rt.io.get_executor(), o.cloudconfig, o.custom_user_agent);
  if (!setup) {
    log::error("cannot set up the Azure client", setup.error().describe(), {{"cloudconfig", o.cloudconfig}});
    return false;
  }
  role.arm = std::make_unique<identity::mic::ReloadableCompute>(std::move(*setup));
  role.user_agent_suffix = o.custom_user_agent;
  const auto& cloud = role.arm->current().config;

  identity::mic::ControllerOptions co;
  co.election.ns = o.leader_election_namespace.empty() ? o.mic_pod_namespace : o.leader_election_namespace;
  co.election.name = o.leader_election_name;
  co.election.identity =
      o.leader_election_instance.empty() ? kube::LeaderElector::default_identity() : o.leader_election_instance;
  co.election.lease_duration = std::chrono::duration_cast<std::chrono::milliseconds>(o.leader_election_duration);
  co.election.renew_deadline = std::chrono::duration_cast<std::chrono::milliseconds>(o.leader_election_renew_deadline);
  co.election.retry_period = std::chrono::duration_cast<std::chrono::milliseconds>(o.leader_election_retry_period);
  auto& e = co.engine;
  e.force_namespaced = o.force_namespaced;
  e.immutable_client_ids = identity::mic::immutable_client_ids(o.immutable_identities(), cloud);
  e.default_subscription = cloud.subscription_id;
  e.default_resource_group = cloud.resource_group;
  e.resync_period = std::chrono::duration_cast<std::chrono::milliseconds>(o.sync_retry_duration);
  e.drift_interval = std::chrono::duration_cast<std::chrono::milliseconds>(o.identity_assignment_reconcile_interval);
  e.update.max_retries = static_cast<int>(o.update_user_msi_max_retry);
  e.update.retry_interval = std::chrono::duration_cast<std::chrono::milliseconds>(o.update_user_msi_retry_interval);
  try {
    role.controller = std::make_unique<identity::mic::Controller>(*role.kube, *role.arm,
                                                                  azure::system_clock(), rt.registry, co);
  } catch (const std::invalid_argument& ex) {
    log::error("invalid leader election settings", ex.what(), {});
    return false;
  }
  // The v1.6 type upgrade (behaviour reference 1.9), once per leadership, before any reconcile.
  // A failure gives the leadership up and exits, as the original.
  identity::mic::TypeUpgradeOptions tu;
  tu.enabled = o.enable_type_upgrade;
  tu.ns = o.mic_pod_namespace;
  tu.config_map_name = o.config_map_name;
  tu.status_key = o.type_upgrade_status_key;
  role.upgrade = tu;
  role.controller->on_leading = [&role]() { return role.type_upgrade(); };
  role.controller->attach_health(rt.health);
  log::info("MIC starting", {{"lease", co.election.ns + "/" + co.election.name}, {"identity", co.election.identity},
                             {"cloudconfig", cloud.source}});
  boost::asio::co_spawn(rt.io, role.run(), boost::asio::detached);
  if (!o.cloudconfig.empty()) boost::asio::co_spawn(rt.io, role.watch_cloud_config(o.cloudconfig), boost::asio::detached);
  return true;
}

}  // namespace

int run_mic(const identity::MicOptions& o) {
  configure_logging(o);
  if (o.mic_pod_namespace.empty()) {
    std::fprintf(stderr, "aad-pod-identity: environment variable MIC_POD_NAMESPACE must be set for --role=mic\n");
    return 2;
  }
  RoleHooks hooks;
  MicRole* current = nullptr;
  hooks.start = [&o, &current](RoleRuntime& rt) {
    auto role = std::make_shared<MicRole>();
    bool ok = start_mic(o, rt, *role);
    current = role.get();
    boost::asio::use_service<RoleHolder>(rt.io).role = std::move(role);
    return ok;
  };
  hooks.stop = [&current]() { return current->stop(); };
  return serve_role("mic", o, std::move(hooks));
}

}  // namespace aad::app
