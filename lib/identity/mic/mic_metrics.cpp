#include "identity/mic/mic_metrics.hpp"

namespace aad::identity::mic {
namespace {
const std::vector<double> kAaiBuckets{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10};
const std::vector<double> kCycleBuckets{0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1200};
const std::vector<double> kReconcileBuckets{0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300};
}  // namespace

MicMetrics::MicMetrics(metrics::Registry& r)
    : addition_duration(r.histogram("aadpodidentity_assigned_identity_addition_duration_seconds",
                                    "Duration in seconds of AzureAssignedIdentity creations", kAaiBuckets)),
      addition_count(r.counter("aadpodidentity_assigned_identity_addition_count",
                               "Number of AzureAssignedIdentity creations")),
      deletion_duration(r.histogram("aadpodidentity_assigned_identity_deletion_duration_seconds",
                                    "Duration in seconds of AzureAssignedIdentity deletions", kAaiBuckets)),
      deletion_count(r.counter("aadpodidentity_assigned_identity_deletion_count",
                               "Number of AzureAssignedIdentity deletions")),
      update_duration(r.histogram("aadpodidentity_assigned_identity_update_duration_seconds",
                                  "Duration in seconds of AzureAssignedIdentity updates", kAaiBuckets)),
      update_count(r.counter("aadpodidentity_assigned_identity_update_count",
                             "Number of AzureAssignedIdentity updates")),
      cycle_duration(r.histogram("aadpodidentity_mic_cycle_duration_seconds",
                                 "Duration in seconds of a MIC reconcile that did work", kCycleBuckets)),
      cycle_count(r.counter("aadpodidentity_mic_cycle_count", "Number of MIC reconciles that did work")),
      new_leader_election_count(r.counter("aadpodidentity_mic_new_leader_election_count",
                                          "Number of MIC leader elections started")),
      cloud_errors(r.counter("aadpodidentity_cloud_provider_operations_errors_count",
                             "Number of failed cloud provider operations", {"operation_type"})),
      cloud_duration(r.histogram("aadpodidentity_cloud_provider_operations_duration_seconds",
                                 "Duration in seconds of cloud provider operations", kCycleBuckets,
                                 {"operation_type"})),
      kube_errors(r.counter("aadpodidentity_kubernetes_api_operations_errors_count",
                            "Number of failed Kubernetes API operations", {"operation_type"})),
      queue_depth(r.gauge("aadpodidentity_mic_workqueue_depth", "VMs and scale sets waiting to be reconciled")),
      reconcile_duration(r.histogram("aadpodidentity_mic_reconcile_duration_seconds",
                                     "Duration in seconds of one VM or scale set reconcile", kReconcileBuckets,
                                     {"result"})),
      arm_calls(r.counter("aadpodidentity_mic_arm_calls_total", "ARM calls made by MIC",
                          {"operation", "result"})),
      is_leader(r.gauge("aadpodidentity_mic_is_leader", "1 while this MIC replica is the leader")) {}

}  // namespace aad::identity::mic
