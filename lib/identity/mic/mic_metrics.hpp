#pragma once
// MIC's Prometheus metrics: the original's names (behaviour reference 2.12, prefix
// aadpodidentity_) plus work-queue depth, reconcile duration and ARM calls by operation/result.
#include <string>

#include "core/metrics.hpp"

namespace aad::identity::mic {

struct MicMetrics {
  explicit MicMetrics(metrics::Registry& r);

  // Original names.
  metrics::Family<metrics::Histogram>& addition_duration;   // assigned_identity_addition_duration_seconds
  metrics::Family<metrics::Counter>& addition_count;        // assigned_identity_addition_count
  metrics::Family<metrics::Histogram>& deletion_duration;
  metrics::Family<metrics::Counter>& deletion_count;
  metrics::Family<metrics::Histogram>& update_duration;
  metrics::Family<metrics::Counter>& update_count;
  metrics::Family<metrics::Histogram>& cycle_duration;      // mic_cycle_duration_seconds (one per reconcile with work)
  metrics::Family<metrics::Counter>& cycle_count;
  metrics::Family<metrics::Counter>& new_leader_election_count;
  metrics::Family<metrics::Counter>& cloud_errors;          // {operation_type}: vm_get, vm_update, vmss_get, vmss_update
  metrics::Family<metrics::Histogram>& cloud_duration;      // {operation_type}
  metrics::Family<metrics::Counter>& kube_errors;           // {operation_type}

  // New.
  metrics::Family<metrics::Gauge>& queue_depth;              // mic_workqueue_depth
  metrics::Family<metrics::Histogram>& reconcile_duration;   // mic_reconcile_duration_seconds {result}
  metrics::Family<metrics::Counter>& arm_calls;              // mic_arm_calls_total {operation, result}
  metrics::Family<metrics::Gauge>& is_leader;                // mic_is_leader

  void kube_error(const std::string& operation) { kube_errors.with({operation}).inc(); }
};

}  // namespace aad::identity::mic
