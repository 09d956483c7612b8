#pragma once
// Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics:
// a candidate acquires the Lease when it is free or its holder has not renewed for
// leaseDuration (measured on our own clock since we last saw the record change); the leader
// renews every retryPeriod and gives up when it could not renew for renewDeadline.
// Renewal runs in its own coroutine, bypasses the client's rate limiter and never retries
// inside one attempt, so other work cannot starve it. Losing the lease is reported (callback
// and run()'s result); stop() releases the lease (holder cleared) so another takes over at once.
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "kube/client.hpp"
#include "kube/models.hpp"

namespace aad::kube {

struct LeaderElectionConfig {
  std::string ns;        // Lease namespace
  std::string name;      // Lease name (MIC: aad-pod-identity-mic)
  std::string identity;  // this candidate (hostname + "_" + random, like controller-runtime)
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
  bool release_on_stop = true;

  // The original's --leader-election-duration: renew deadline 1/2, retry period 1/4 of it.
  void set_original_durations(std::chrono::milliseconds lease) {
    lease_duration = lease;
    renew_deadline = lease / 2;
    retry_period = lease / 4;
  }
};

enum class LeadershipEnd {
  stopped,  // stop() was called (the lease was released if we held it)
  lost,     // we were leading and could not renew within renew_deadline, or someone else took it
};

class LeaderElector {
 public:
  // Throws std::invalid_argument for an inconsistent configuration (empty names, durations
  // not lease > renew > retry > 0).
  LeaderElector(Client& client, LeaderElectionConfig config);
  ~LeaderElector();
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  std::function<void()> on_started_leading;
  std::function<void(LeadershipEnd why, const std::string& detail)> on_stopped_leading;
  std::function<void(const std::string& holder)> on_new_leader;  // observed holder changed

  // Campaigns, then leads until stop() or loss. Returns how leadership (or the campaign) ended.
  boost::asio::awaitable<LeadershipEnd> run();
  void stop();

  bool is_leader() const { return leading_; }
  const std::string& observed_holder() const { return observed_holder_; }
  const LeaderElectionConfig& config() const { return config_; }

  static std::string default_identity();  // hostname_<random hex>

 private:
  enum class Attempt { acquired, held_by_other, failed };
  boost::asio::awaitable<Attempt> try_acquire_or_renew(std::string& detail);
  boost::asio::awaitable<void> release();
  boost::asio::awaitable<void> sleep(std::chrono::milliseconds d);
  CallOptions call_options() const;

  Client& client_;
  LeaderElectionConfig config_;
  bool leading_ = false, stopped_ = false;
  std::optional<Lease> observed_;
  std::string observed_holder_;
  std::string observed_record_;  // holder|renewTime|rv of the last record seen
  std::chrono::steady_clock::time_point observed_time_{};
  std::optional<std::chrono::steady_clock::time_point> attempt_deadline_;
  struct Timer;
  std::unique_ptr<Timer> timer_;
};

}  // namespace aad::kube
