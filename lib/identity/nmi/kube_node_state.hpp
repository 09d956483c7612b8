#pragma once
// NodeState over the watch caches (behaviour reference 3.2): this node's pods (field selector
// spec.nodeName, indexed by every pod IP), the AzureAssignedIdentities (standard mode; only this
// node's with --enableScaleFeatures, indexed by pod), the bindings and identities (cluster-wide,
// by namespace) and the exceptions.
#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>

#include "identity/nmi/node_state.hpp"
#include "kube/cache.hpp"

namespace aad::identity::nmi {

struct KubeNodeStateOptions {
  std::string node;
  bool standard_mode = true;     // false: managed mode (no AzureAssignedIdentities)
  bool scale_features = true;    // AAIs filtered by label nodename=<node>
};

class KubeNodeState final : public NodeState {
 public:
  KubeNodeState(kube::Client& client, KubeNodeStateOptions options);

  // Runs every cache until stop(); co_spawn it once.
  boost::asio::awaitable<void> run();
  void stop();
  bool synced() const;
  boost::asio::awaitable<bool> wait_synced(std::chrono::milliseconds timeout);

  std::vector<Shared<kube::Pod>> pods_with_ip(const std::string& ip) const override;
  Shared<kube::Pod> pod(const std::string& ns, const std::string& name) const override;
  std::vector<Shared<kube::AzureAssignedIdentity>> assigned_to(const std::string& ns,
                                                               const std::string& name) const override;
  std::vector<Shared<kube::AzureIdentityBinding>> bindings(const std::string& ns) const override;
  std::vector<Shared<kube::AzureIdentity>> identities(const std::string& ns) const override;
  std::vector<Shared<kube::AzurePodIdentityException>> exceptions(const std::string& ns) const override;
  kube::ChangeNotifier& changed() override { return changed_; }

  std::size_t pod_count() const { return pods_.size(); }

 private:
  template <typename T>
  void watch(kube::Cache<T>& cache);
  template <typename T>
  boost::asio::awaitable<void> run_one(kube::Cache<T>& cache);

  KubeNodeStateOptions options_;
  kube::ChangeNotifier changed_;
  kube::Cache<kube::Pod> pods_;
  std::optional<kube::Cache<kube::AzureAssignedIdentity>> assigned_;
  kube::Cache<kube::AzureIdentityBinding> bindings_;
  kube::Cache<kube::AzureIdentity> identities_;
  kube::Cache<kube::AzurePodIdentityException> exceptions_;
};

}  // namespace aad::identity::nmi
