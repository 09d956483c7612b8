#include "identity/mic/controller.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "core/log.hpp"

namespace aad::identity::mic {
namespace {
kube::EventRecorderOptions event_options(const std::string& component) {
  kube::EventRecorderOptions o;
  o.component = component;
  return o;
}
}  // namespace

Controller::Controller(kube::Client& client, azure::ComputeClient& arm, azure::Clock& clock,
                       metrics::Registry& registry, ControllerOptions options)
    : client_(client),
      metrics_(registry),
      events_(client, event_options(options.event_component)),
      engine_(client, arm, clock, events_, metrics_, options.engine),
      elector_(client, options.election),
      options_(std::move(options)) {
  engine_.may_write = [this] { return elector_.is_leader(); };
  elector_.on_started_leading = [this] {
    metrics_.is_leader.get().set(1);
    log::info("became leader", {{"lease", options_.election.ns + "/" + options_.election.name},
                                 {"identity", options_.election.identity}});
    boost::asio::co_spawn(client_.executor(), lead(), boost::asio::detached);
  };
  elector_.on_stopped_leading = [this](kube::LeadershipEnd why, const std::string& detail) {
    metrics_.is_leader.get().set(0);
    if (health_) health_->set_active(false);
    engine_.stop_work();
    if (why == kube::LeadershipEnd::lost) log::error("lost leadership", detail, {});
  };
  elector_.on_new_leader = [](const std::string& holder) { log::info("leader observed", {{"holder", holder}}); };
}

Controller::~Controller() { *alive_ = false; }

void Controller::attach_health(http::Health& health) {
  health_ = &health;
  health.add_readiness_check("mic-caches-synced", [this] { return engine_.caches_synced(); });
  // A leader must be reconciling; a standby only needs its caches.
  health.add_readiness_check("mic-leader-state", [this] { return !elector_.is_leader() || engine_.working(); });
}

bool Controller::ready() const {
  return engine_.caches_synced() && (!elector_.is_leader() || engine_.working());
}

boost::asio::awaitable<void> Controller::lead() {
  std::weak_ptr<bool> alive = alive_;
  if (on_leading) {
    bool ok = co_await on_leading();
    if (alive.expired()) co_return;
    if (!ok) {
      failed_leading_ = true;
      log::error("giving up leadership", "the on-leading step (type upgrade) failed", {});
      elector_.stop();
      co_return;
    }
  }
  bool synced = co_await engine_.wait_synced(options_.sync_timeout);
  if (alive.expired() || !elector_.is_leader()) co_return;
  if (!synced) log::warning("caches not synced in time; reconciling with what they hold");
  if (health_) health_->set_active(true);
  log::info("reconciling as leader");
  co_await engine_.run_work();
}

boost::asio::awaitable<kube::LeadershipEnd> Controller::run() {
  metrics_.new_leader_election_count.get().inc();  // once per election start, as the original
  engine_.start_caches();
  auto end = co_await elector_.run();
  if (failed_leading_) end = kube::LeadershipEnd::lost;
  co_return end;
}

void Controller::stop() {
  engine_.stop();
  elector_.stop();
}

}  // namespace aad::identity::mic
