#include "identity/matching.hpp"

#include <algorithm>
#include <cctype>
#include <set>

#include "core/ascii.hpp"

namespace aad::identity {
namespace {

std::string_view pod_selector(const kube::Pod& pod) {
  auto it = pod.meta.labels.find(std::string(kPodLabel));
  return it == pod.meta.labels.end() ? std::string_view{} : std::string_view(it->second);
}

bool identity_order(const kube::AzureIdentity& a, const kube::AzureIdentity& b) {
  return std::tie(a.meta.ns, a.meta.name) < std::tie(b.meta.ns, b.meta.name);
}

}  // namespace

bool is_namespaced(const kube::AzureIdentity& identity, bool force_namespaced) {
  if (force_namespaced) return true;
  auto it = identity.meta.annotations.find(std::string(kBehaviorAnnotation));
  return it != identity.meta.annotations.end() && it->second == "namespaced";
}

std::vector<BoundIdentity> bound_identities(const kube::Pod& pod,
                                            const std::vector<const kube::AzureIdentityBinding*>& bindings,
                                            const std::vector<const kube::AzureIdentity*>& identities,
                                            bool force_namespaced) {
  std::vector<BoundIdentity> out;
  auto selector = pod_selector(pod);
  if (selector.empty()) return out;
  std::vector<const kube::AzureIdentityBinding*> matching;
  for (const auto* b : bindings)
    if (b->selector == selector) matching.push_back(b);
  std::sort(matching.begin(), matching.end(), [](const auto* a, const auto* b) {
    return std::tie(a->meta.ns, a->meta.name) < std::tie(b->meta.ns, b->meta.name);
  });
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto* b : matching) {
    auto it = std::find_if(identities.begin(), identities.end(), [&](const auto* id) {
      return id->meta.ns == b->meta.ns && id->meta.name == b->azure_identity;
    });
    if (it == identities.end()) continue;
    const auto* id = *it;
    if (is_namespaced(*id, force_namespaced) && (id->meta.ns != pod.meta.ns || b->meta.ns != pod.meta.ns)) continue;
    if (!seen.insert({id->meta.ns, id->meta.name}).second) continue;
    out.push_back({b, id});
  }
  return out;
}

bool is_excepted(const kube::Pod& pod, const std::vector<const kube::AzurePodIdentityException*>& exceptions) {
  for (const auto* e : exceptions) {
    if (e->meta.ns != pod.meta.ns) continue;
    for (const auto& [key, value] : e->pod_labels) {
      auto it = pod.meta.labels.find(key);
      if (it != pod.meta.labels.end() && iequals(it->second, value)) return true;
    }
  }
  return false;
}

bool is_mic_replicaset_name(std::string_view name) {
  // k8s.io/apimachinery/pkg/util/rand.SafeEncodeString: no vowels, no 0/1/3 (avoids words).
  constexpr std::string_view kHashAlphabet = "bcdfghjklmnpqrstvwxz2456789";
  constexpr std::string_view kPrefix = "mic-";
  if (!name.starts_with(kPrefix)) return false;
  auto hash = name.substr(kPrefix.size());
  return !hash.empty() && hash.size() <= 10 && hash.find_first_not_of(kHashAlphabet) == std::string_view::npos;
}

bool is_mic_pod(const kube::Pod& pod, std::string_view mic_namespace) {
  if (!iequals(pod.meta.ns, mic_namespace)) return false;
  // The first ReplicaSet owner decides, as in the original.
  for (const auto& ref : pod.meta.owner_references)
    if (iequals(ref.kind, "ReplicaSet")) return is_mic_replicaset_name(ref.name);
  return false;
}

bool matches_request(const kube::AzureIdentity& identity, const IdentityRequest& request) {
  if (!request.client_id.empty() && !iequals(identity.client_id, request.client_id)) return false;
  if (!request.resource_id.empty() && !iequals(identity.resource_id, request.resource_id)) return false;
  return true;
}

Selection select_identity(const kube::Pod& pod, const std::vector<const kube::AzureAssignedIdentity*>& assigned,
                          const std::vector<BoundIdentity>& bound, const IdentityRequest& request,
                          bool force_namespaced) {
  Selection s;
  if (pod_selector(pod).empty()) {
    s.reason = "pod has no aadpodidbinding label";
    return s;
  }
  // Usable: Assigned (or legacy empty status) assignments of this pod, namespaced filter applied.
  std::vector<const kube::AzureIdentity*> usable;
  bool pending_match = false;
  for (const auto* aai : assigned) {
    if (aai->pod != pod.meta.name || aai->pod_namespace != pod.meta.ns || !aai->azure_identity_ref) continue;
    const auto& id = *aai->azure_identity_ref;
    if (is_namespaced(id, force_namespaced) && id.meta.ns != pod.meta.ns) continue;
    if (!matches_request(id, request)) continue;
    if (aai->status == kube::kAssignedIDAssigned || aai->status.empty())
      usable.push_back(&id);
    else if (aai->status == kube::kAssignedIDCreated)
      pending_match = true;
  }
  if (!usable.empty()) {
    auto best = std::min_element(usable.begin(), usable.end(),
                                 [](const auto* a, const auto* b) { return identity_order(*a, *b); });
    s.outcome = Selection::Outcome::found;
    s.identity = **best;
    return s;
  }
  bool could_match = pending_match || std::any_of(bound.begin(), bound.end(), [&](const BoundIdentity& b) {
                       return matches_request(*b.identity, request);
                     });
  if (could_match) {
    s.outcome = Selection::Outcome::wait;
    s.reason = "identity not assigned yet";
    return s;
  }
  s.reason = request.any() ? "no AzureIdentityBinding selects this pod"
                           : "the requested identity is not bound to this pod";
  return s;
}

}  // namespace aad::identity
