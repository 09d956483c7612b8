#include "identity/nmi/nmi_metrics.hpp"

namespace aad::identity::nmi {

namespace {
std::vector<double> original_buckets() {
  return {0.5, 1, 2, 3, 4, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 100};
}
}  // namespace

NmiMetrics::NmiMetrics(metrics::Registry& r)
    : operations(r.histogram("aadpodidentity_nmi_operations_duration_seconds",
                             "Duration of NMI token operations in seconds", original_buckets(),
                             {"operation_type", "status_code", "namespace", "resource"})),
      imds_duration(r.histogram("aadpodidentity_imds_operations_duration_seconds",
                                "Duration of token operations against IMDS or AAD in seconds", original_buckets(),
                                {"operation_type"})),
      imds_errors(r.counter("aadpodidentity_imds_operations_errors_count",
                            "Failed token operations against IMDS or AAD", {"operation_type"})),
      kube_errors(r.counter("aadpodidentity_kubernetes_api_operations_errors_count",
                            "Failed Kubernetes API operations", {"operation_type"})),
      request_duration(r.histogram("aadpodidentity_nmi_request_duration_seconds",
                                   "Latency of every request NMI answers, by route and status code",
                                   metrics::exponential_buckets(0.00025, 2, 18), {"route", "status_code"})),
      token_cache(r.counter("aadpodidentity_nmi_token_cache_requests_total",
                            "Token requests by cache result (hit, miss, shared)", {"result"})),
      token_cache_evictions(r.counter("aadpodidentity_nmi_token_cache_evictions_total",
                                      "Unexpired cached tokens dropped to keep the cache within its bound")) {
  token_cache_evictions.get();  // shown at 0 from the start: "no eviction yet" is an answer too
}

}  // namespace aad::identity::nmi
