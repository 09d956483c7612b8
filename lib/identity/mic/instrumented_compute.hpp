#pragma once
// A ComputeClient decorator: counts and times each ARM call for the metrics, and remembers the
// user-assigned identities the last GET of each resource showed (so MIC can tell identities
// someone else attached from the ones it assigned).
#include <map>
#include <set>
#include <string>

#include "azure/arm_client.hpp"
#include "identity/mic/mic_metrics.hpp"

namespace aad::identity::mic {

class InstrumentedCompute final : public azure::ComputeClient {
 public:
  InstrumentedCompute(azure::ComputeClient& inner, MicMetrics& metrics) : inner_(inner), metrics_(metrics) {}

  boost::asio::awaitable<azure::Result<azure::ComputeResource>> get(
      const azure::ComputeRef& ref, const azure::Cancellation& cancel = azure::Cancellation::none()) override;
  boost::asio::awaitable<azure::Result<void>> patch_identity(
      const azure::ComputeRef& ref, const azure::IdentityPatch& patch,
      const azure::Cancellation& cancel = azure::Cancellation::none()) override;

  // Lower-cased user-assigned ids of the last successful GET of ref (empty if none).
  std::set<std::string> last_seen(const azure::ComputeRef& ref) const;
  void forget(const azure::ComputeRef& ref) { seen_.erase(ref.key()); }

 private:
  void record(const azure::ComputeRef& ref, const char* op, bool ok, double seconds, const azure::Error* e);
  azure::ComputeClient& inner_;
  MicMetrics& metrics_;
  std::map<std::string, std::set<std::string>> seen_;
};

}  // namespace aad::identity::mic
