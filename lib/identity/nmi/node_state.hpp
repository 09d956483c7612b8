#pragma once
// What NMI knows about its node: the pods scheduled on it and the identity objects, as the
// watch caches hold them. An interface so the request logic runs the same over the real caches
// (KubeNodeState) and over in-memory objects in tests.
#include <memory>
#include <string>
#include <vector>

#include "kube/models.hpp"
#include "kube/notifier.hpp"

namespace aad::identity::nmi {

template <typename T>
using Shared = std::shared_ptr<const T>;

class NodeState {
 public:
  virtual ~NodeState() = default;
  // Pods of this node claiming `ip` in status.podIP/podIPs (any phase; callers filter).
  virtual std::vector<Shared<kube::Pod>> pods_with_ip(const std::string& ip) const = 0;
  virtual Shared<kube::Pod> pod(const std::string& ns, const std::string& name) const = 0;
  // The AzureAssignedIdentities whose spec.pod/spec.podNamespace name this pod.
  virtual std::vector<Shared<kube::AzureAssignedIdentity>> assigned_to(const std::string& ns,
                                                                       const std::string& name) const = 0;
  // Bindings and identities of one namespace, or of all when `ns` is empty.
  virtual std::vector<Shared<kube::AzureIdentityBinding>> bindings(const std::string& ns) const = 0;
  virtual std::vector<Shared<kube::AzureIdentity>> identities(const std::string& ns) const = 0;
  virtual std::vector<Shared<kube::AzurePodIdentityException>> exceptions(const std::string& ns) const = 0;
  // Notified whenever any of the above changes, so waiters re-check instead of polling.
  virtual kube::ChangeNotifier& changed() = 0;
};

// Plain pointers for the pure functions of identity/matching.hpp.
template <typename T>
std::vector<const T*> raw_pointers(const std::vector<Shared<T>>& v) {
  std::vector<const T*> out;
  out.reserve(v.size());
  for (const auto& p : v) out.push_back(p.get());
  return out;
}

}  // namespace aad::identity::nmi
