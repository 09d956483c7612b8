#pragma once
// A MIC replica: the engine's caches run on every replica; the Lease leader election decides
// who reconciles. On becoming leader: the on_leading hook (the v1.6 type upgrade), then the
// caches are awaited and the engine works until leadership ends. Renewal runs in its own
// coroutine, so a long ARM call never costs the lease; stop() releases the lease.
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <memory>

#include "core/health.hpp"
#include "identity/mic/engine.hpp"
#include "kube/leader_election.hpp"

namespace aad::identity::mic {

struct ControllerOptions {
  kube::LeaderElectionConfig election;
  EngineOptions engine;
  std::string event_component = "aadpodidentity.k8s.io";  // the original's event source
  std::chrono::milliseconds sync_timeout{std::chrono::minutes(5)};
};

class Controller {
 public:
  Controller(kube::Client& client, azure::ComputeClient& arm, azure::Clock& clock, metrics::Registry& registry,
             ControllerOptions options);
  ~Controller();

  // Registers /readyz checks and the /healthz Active state on `health`.
  void attach_health(http::Health& health);

  // Runs until stop() (returns stopped) or until leadership is lost (returns lost).
  boost::asio::awaitable<kube::LeadershipEnd> run();
  // Ends the work and releases the lease (held or not).
  void stop();

  // Runs once each time this replica becomes leader, before any reconcile; false aborts the
  // leadership (the replica stops leading and run() returns lost).
  std::function<boost::asio::awaitable<bool>()> on_leading;

  bool leading() const { return elector_.is_leader(); }
  bool ready() const;
  Engine& engine() { return engine_; }
  kube::LeaderElector& elector() { return elector_; }

 private:
  boost::asio::awaitable<void> lead();
  kube::Client& client_;
  MicMetrics metrics_;
  kube::EventRecorder events_;
  Engine engine_;
  kube::LeaderElector elector_;
  ControllerOptions options_;
  http::Health* health_ = nullptr;
  bool failed_leading_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace aad::identity::mic
