#pragma once
// Which AzureIdentity answers a pod's token request (behaviour reference 3.8, 3.9):
// - standard mode: the pod's AzureAssignedIdentities; a Created one is waited for until it is
//   Assigned, woken by watch events and bounded by the original's retry flags; a request nothing
//   could ever satisfy (no label, no binding, identity not bound) is answered at once;
// - managed mode: the bindings and identities of the pod's namespace, no waiting.
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <optional>
#include <string>

#include "identity/matching.hpp"
#include "identity/nmi/node_state.hpp"

namespace aad::identity::nmi {

struct ResolverOptions {
  bool managed = false;
  bool force_namespaced = false;
  // Standard mode. Nothing assigned yet: wait up to `created_wait` (--retry-attempts-for-created
  // x interval); an assignment in Created: up to `created_wait + assigned_wait` in total.
  std::chrono::milliseconds created_wait{16 * 5000};
  std::chrono::milliseconds assigned_wait{4 * 5000};
};

struct Resolution {
  std::optional<kube::AzureIdentity> identity;
  std::string reason;  // why none, for the 404 body
  bool waited_out = false;  // an assignment was expected but did not become Assigned in time
};

class Resolver {
 public:
  Resolver(NodeState& state, ResolverOptions options) : state_(state), options_(options) {}
  boost::asio::awaitable<Resolution> resolve(const kube::Pod& pod, const IdentityRequest& request);
  const ResolverOptions& options() const { return options_; }

 private:
  Resolution managed(const kube::Pod& pod, const IdentityRequest& request) const;
  boost::asio::awaitable<Resolution> standard(const kube::Pod& pod, const IdentityRequest& request);

  NodeState& state_;
  ResolverOptions options_;
};

}  // namespace aad::identity::nmi
