#pragma once
// NMI's metrics: the original's names (behaviour reference 3.18, prefix aadpodidentity_) plus a
// fine-grained request latency histogram and token cache counters.
#include "core/metrics.hpp"
#include "identity/nmi/label_budget.hpp"

namespace aad::identity::nmi {

struct NmiMetrics {
  explicit NmiMetrics(metrics::Registry& registry);

  // Original: operation_type = route path, status_code, namespace (caller pod), resource.
  // `resource` is set only for answers with a token, through `resources` (bounded).
  metrics::Family<metrics::Histogram>& operations;
  LabelBudget resources;
  // Original: imds_operations_duration_seconds / imds_operations_errors_count by operation_type
  // (adal_token_msi_userassignedid, adal_token_msi, adal_token).
  metrics::Family<metrics::Histogram>& imds_duration;
  metrics::Family<metrics::Counter>& imds_errors;
  // Original: kubernetes_api_operations_errors_count (get_pod_list, get_secret).
  metrics::Family<metrics::Counter>& kube_errors;
  // New: every request by route and status, buckets from 0.25 ms.
  metrics::Family<metrics::Histogram>& request_duration;
  metrics::Family<metrics::Counter>& token_cache;  // result = hit / miss / shared
  metrics::Family<metrics::Counter>& token_cache_evictions;  // unexpired entries dropped at the bound
};

}  // namespace aad::identity::nmi
