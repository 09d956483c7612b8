#pragma once
// The Kubernetes writes MIC makes on AzureAssignedIdentities, each timed and counted under the
// original's metric names: POST (status Created), PUT (status Created), status changes
// (merge patch of status.status; the CRD has no status subresource) and DELETE with the
// finalizer removed afterwards (as the original does).
#include <boost/asio/awaitable.hpp>

#include "identity/mic/mic_metrics.hpp"
#include "kube/client.hpp"
#include "kube/models.hpp"

namespace aad::identity::mic {

class AssignmentWriter {
 public:
  AssignmentWriter(kube::Client& client, MicMetrics& metrics) : client_(client), metrics_(metrics) {}

  boost::asio::awaitable<kube::Result<kube::AzureAssignedIdentity>> create(const kube::AzureAssignedIdentity& aai);
  boost::asio::awaitable<kube::Result<kube::AzureAssignedIdentity>> update(const kube::AzureAssignedIdentity& aai);
  // status.status = status; found_on_vm adds the kFoundOnVmAnnotation.
  boost::asio::awaitable<kube::Result<kube::AzureAssignedIdentity>> set_status(
      const kube::AzureAssignedIdentity& aai, const std::string& status, bool found_on_vm = false);
  // DELETE, then drop our finalizer so the object goes away. A missing object is success.
  boost::asio::awaitable<kube::Result<void>> remove(const kube::AzureAssignedIdentity& aai);

 private:
  kube::Client& client_;
  MicMetrics& metrics_;
};

}  // namespace aad::identity::mic
