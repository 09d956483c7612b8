#pragma once
// MIC's reconcile engine: watch caches of pods, nodes, AzureIdentities, AzureIdentityBindings
// and AzureAssignedIdentities; events map to the VM or VMSS of the affected nodes (from the
// node's providerID) and go through a de-duplicating, rate-limited work queue; one key at a time
// is reconciled from the caches (desired_assignments + plan_assignments), its AAIs written and
// all its pending adds and removes sent to ARM as one coalesced identity update.
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "azure/arm_client.hpp"
#include "azure/identity_updater.hpp"
#include "identity/mic/assignment_writer.hpp"
#include "identity/mic/instrumented_compute.hpp"
#include "identity/mic/mic_metrics.hpp"
#include "identity/mic/plan.hpp"
#include "identity/mic/work_queue.hpp"
#include "kube/cache.hpp"
#include "kube/events.hpp"

namespace aad::identity::mic {

struct EngineOptions {
  bool force_namespaced = false;
  std::set<std::string> immutable_client_ids;  // lower-cased: --immutable-user-msis + cluster identity
  std::string default_subscription, default_resource_group;  // for nodes without a usable providerID
  std::chrono::milliseconds batch_delay{200};  // events for a key within this window coalesce
  std::chrono::milliseconds resync_period{std::chrono::hours(1)};  // --syncRetryDuration
  std::chrono::milliseconds drift_interval{std::chrono::minutes(3)};  // --identity-assignment-reconcile-interval
  std::chrono::milliseconds write_wait{5000};  // wait for the AAI cache to see our own writes
  azure::UpdateOptions update;  // --update-user-msi-max-retry / -retry-interval
  WorkQueueOptions queue;
};

struct EngineStats {
  std::size_t reconciles = 0, arm_updates = 0, aai_writes = 0, failures = 0;
};

class Engine {
 public:
  Engine(kube::Client& client, azure::ComputeClient& arm, azure::Clock& clock, kube::EventRecorder& events,
         MicMetrics& metrics, EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts the watch caches (every replica runs them, so a new leader starts warm).
  void start_caches();
  bool caches_synced() const;
  boost::asio::awaitable<bool> wait_synced(std::chrono::milliseconds timeout);

  // Leader work: enqueues every VM/VMSS and reconciles until stop_work(). Only writes while
  // may_write() (the leader check) holds.
  boost::asio::awaitable<void> run_work();
  void stop_work();
  bool working() const { return working_; }
  // Stops everything (caches too).
  void stop();

  std::function<bool()> may_write = [] { return true; };

  // Enqueues every VM/VMSS that has labelled pods or AAIs (a full resync).
  void enqueue_all();
  // Every known VM/VMSS again at once, backoff forgotten (e.g. after new credentials).
  void retry_all_now();
  // Marks every VM/VMSS with Assigned identities for an ARM drift check and enqueues it.
  void check_drift();

  const EngineStats& stats() const { return stats_; }
  WorkQueue& queue() { return queue_; }
  kube::Cache<kube::AzureAssignedIdentity>& assigned() { return *aais_; }

 private:
  struct Outcome {
    bool retry = false;
    std::optional<std::chrono::steady_clock::time_point> not_before;
  };
  boost::asio::awaitable<Outcome> reconcile(const std::string& key);
  boost::asio::awaitable<Outcome> reconcile_compute(const std::string& key);
  boost::asio::awaitable<Outcome> reconcile_gone_node(const std::string& node);
  boost::asio::awaitable<void> wait_for_own_writes();
  boost::asio::awaitable<void> tick(std::chrono::milliseconds period, bool drift);
  // Writes only while the work runs and the leader check holds (re-checked after every await).
  bool can_write() const { return working_ && may_write(); }
  void expect(const kube::AzureAssignedIdentity& written);
  void expect_gone(const kube::AzureAssignedIdentity& removed);
  bool expectations_met() const;

  std::optional<std::string> key_of_node(const std::string& node_name);
  void enqueue_node(const std::string& node_name);
  void register_handlers();
  void binding_applied(const kube::AzureAssignedIdentity& aai);
  void binding_error(const kube::AzureAssignedIdentity& aai, const std::string& reason, const std::string& msg);
  void status_update_error(const kube::AzureAssignedIdentity& aai, const std::string& status, const kube::Error& e);

  kube::Client& client_;
  InstrumentedCompute arm_;
  azure::Clock& clock_;
  kube::EventRecorder& events_;
  MicMetrics& metrics_;
  EngineOptions options_;
  AssignmentWriter writer_;
  WorkQueue queue_;
  std::unique_ptr<kube::Cache<kube::Pod>> pods_;
  std::unique_ptr<kube::Cache<kube::Node>> nodes_;
  std::unique_ptr<kube::Cache<kube::AzureIdentity>> identities_;
  std::unique_ptr<kube::Cache<kube::AzureIdentityBinding>> bindings_;
  std::unique_ptr<kube::Cache<kube::AzureAssignedIdentity>> aais_;
  std::map<std::string, azure::ComputeRef> refs_;   // compute key -> ref
  std::map<std::string, std::string> node_keys_;    // node name -> compute key (kept after deletion)
  std::set<std::string> drift_due_;
  // compute key -> identities MIC (re-)added whose found-on-vm AAIs still need the mark dropped.
  std::map<std::string, std::set<std::string>> claimed_;
  azure::Cancellation work_cancel_;  // cancelled when the leader work stops
  boost::asio::steady_timer resync_timer_, drift_timer_, wait_timer_;
  std::map<std::string, std::string> expected_;     // AAI key -> resourceVersion written ("" = gone)
  bool working_ = false, stopping_ = false;
  EngineStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace aad::identity::mic
