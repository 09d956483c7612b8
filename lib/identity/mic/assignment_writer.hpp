#pragma once
// The Kubernetes writes MIC makes on AzureAssignedIdentities, each timed and counted under the
// original's metric names: POST (status Created), PUT (status Created), status changes
// (merge patch of status.status; the CRD has no status subresource) and DELETE with the
// finalizer removed afterwards (as the original does).
#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>

#include "identity/mic/mic_metrics.hpp"
#include "kube/client.hpp"
#include "kube/models.hpp"

namespace aad::identity::mic {

class AssignmentWriter {
 public:
  AssignmentWriter(kube::Client& client, MicMetrics& metrics) : client_(client), metrics_(metrics) {}

  boost::asio::awaitable<kube::Result<kube::AzureAssignedIdentity>> create(const kube::AzureAssignedIdentity& aai);
  boost::asio::awaitable<kube::Result<kube::AzureAssignedIdentity>> update(const kube::AzureAssignedIdentity& aai);
  // status.status = status, in the same patch: found_on_vm true adds the kFoundOnVmAnnotation,
  // false drops it if the AAI carries it, nullopt leaves it alone.
  boost::asio::awaitable<kube::Result<kube::AzureAssignedIdentity>> set_status(
      const kube::AzureAssignedIdentity& aai, const std::string& status, std::optional<bool> found_on_vm = {});
  // Drops the kFoundOnVmAnnotation (MIC itself has put the identity on the VM/VMSS since).
  boost::asio::awaitable<kube::Result<kube::AzureAssignedIdentity>> clear_found_on_vm(
      const kube::AzureAssignedIdentity& aai);
  // DELETE, then drop our finalizer so the object goes away. A missing object is success.
  boost::asio::awaitable<kube::Result<void>> remove(const kube::AzureAssignedIdentity& aai);

 private:
  kube::Client& client_;
  MicMetrics& metrics_;
};

}  // namespace aad::identity::mic
