#pragma once
// The binding rules shared by MIC and NMI (behaviour reference sections 1.6-1.8, 3.7, 3.8), as
// pure functions over the cached objects.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kube/models.hpp"

namespace aad::identity {

inline constexpr std::string_view kPodLabel = "aadpodidbinding";
inline constexpr std::string_view kBehaviorAnnotation = "aadpodidentity.k8s.io/Behavior";

// Namespaced behaviour for this identity: the global flag, or its own annotation.
bool is_namespaced(const kube::AzureIdentity& identity, bool force_namespaced);

// An identity bound to a pod through a binding.
struct BoundIdentity {
  const kube::AzureIdentityBinding* binding;
  const kube::AzureIdentity* identity;
};

// Every identity the pod's `aadpodidbinding` label reaches: bindings with an equal selector (any
// namespace, unless namespaced), sorted by binding (namespace, name); the identity is looked up
// in the binding's namespace; one entry per identity (first binding wins).
std::vector<BoundIdentity> bound_identities(const kube::Pod& pod,
                                            const std::vector<const kube::AzureIdentityBinding*>& bindings,
                                            const std::vector<const kube::AzureIdentity*>& identities,
                                            bool force_namespaced);

// AzurePodIdentityException: same namespace, any one label equal (value case-insensitive).
bool is_excepted(const kube::Pod& pod, const std::vector<const kube::AzurePodIdentityException*>& exceptions);

// The MIC short-circuit: in --MICNamespace (case-insensitive) and owned by the ReplicaSet of a
// Deployment named exactly "mic": "mic-" and a pod-template-hash (1-10 characters of
// Kubernetes' SafeEncodeString alphabet). The original accepted any ReplicaSet name starting
// with "mic", so "microservice-7d9f" reached IMDS directly.
bool is_mic_pod(const kube::Pod& pod, std::string_view mic_namespace);
bool is_mic_replicaset_name(std::string_view name);

// What a token request asks for (empty: nothing specific).
struct IdentityRequest {
  std::string client_id;
  std::string resource_id;
  bool any() const { return client_id.empty() && resource_id.empty(); }
};

bool matches_request(const kube::AzureIdentity& identity, const IdentityRequest& request);

// NMI standard mode: pick from the pod's AzureAssignedIdentities.
struct Selection {
  enum class Outcome {
    found,  // `identity` is ready to use
    wait,   // a matching assignment exists or is expected, not Assigned yet
    never,  // nothing could ever match: answer 404 at once
  };
  Outcome outcome = Outcome::never;
  std::optional<kube::AzureIdentity> identity;
  std::string reason;  // for the error body when not found
};

// `assigned`: the pod's AAIs (any state). `bound`: bound_identities() of the pod now.
// Matching of client and resource IDs is case-insensitive. With several usable identities and
// none requested, the choice is deterministic: the first by AzureIdentity (namespace, name).
Selection select_identity(const kube::Pod& pod, const std::vector<const kube::AzureAssignedIdentity*>& assigned,
                          const std::vector<BoundIdentity>& bound, const IdentityRequest& request,
                          bool force_namespaced);

}  // namespace aad::identity
