#include "identity/nmi/resolver.hpp"

#include <algorithm>

#include "identity/nmi/cancelled.hpp"

namespace aad::identity::nmi {

using namespace std::chrono;

boost::asio::awaitable<Resolution> Resolver::resolve(const kube::Pod& pod, const IdentityRequest& request) {
  if (options_.managed) co_return managed(pod, request);
  auto r = co_await standard(pod, request);
  co_return r;
}

Resolution Resolver::managed(const kube::Pod& pod, const IdentityRequest& request) const {
  // Managed mode always runs namespaced: only the pod's own namespace counts.
  auto bindings = state_.bindings(pod.meta.ns);
  auto identities = state_.identities(pod.meta.ns);
  auto bound = bound_identities(pod, raw_pointers(bindings), raw_pointers(identities), true);
  const kube::AzureIdentity* best = nullptr;
  for (const auto& b : bound) {
    if (!matches_request(*b.identity, request)) continue;
    if (!best || std::tie(b.identity->meta.ns, b.identity->meta.name) < std::tie(best->meta.ns, best->meta.name))
      best = b.identity;
  }
  Resolution r;
  if (best) {
    r.identity = *best;
  } else if (pod.meta.labels.count(std::string(kPodLabel)) == 0) {
    r.reason = "pod has no aadpodidbinding label";
  } else {
    r.reason = bound.empty() ? "no AzureIdentityBinding in the pod's namespace selects this pod"
                             : "the requested identity is not bound to this pod";
  }
  return r;
}

boost::asio::awaitable<Resolution> Resolver::standard(const kube::Pod& caller, const IdentityRequest& request) {
  auto start = steady_clock::now();
  auto created_deadline = start + options_.created_wait;
  auto assigned_deadline = created_deadline + options_.assigned_wait;
  Shared<kube::Pod> latest;
  for (;;) {
    auto generation = state_.changed().generation();
    // The pod as cached now (its label may have changed while we wait).
    latest = state_.pod(caller.meta.ns, caller.meta.name);
    Resolution r;
    if (!latest) {
      r.reason = "pod no longer exists";
      co_return r;
    }
    auto assigned = state_.assigned_to(latest->meta.ns, latest->meta.name);
    auto assigned_ptrs = raw_pointers(assigned);
    // The hot path needs only the pod's own assignments; the bindings are consulted only to
    // tell "wait" from "never" when nothing usable is assigned.
    auto selection = select_identity(*latest, assigned_ptrs, {}, request, options_.force_namespaced);
    if (selection.outcome == Selection::Outcome::found) {
      r.identity = std::move(selection.identity);
      co_return r;
    }
    auto bindings = state_.bindings("");
    auto identities = state_.identities("");
    auto bound = bound_identities(*latest, raw_pointers(bindings), raw_pointers(identities), options_.force_namespaced);
    selection = select_identity(*latest, assigned_ptrs, bound, request, options_.force_namespaced);
    if (selection.outcome == Selection::Outcome::found) {
      r.identity = std::move(selection.identity);
      co_return r;
    }
    r.reason = selection.reason;
    if (selection.outcome == Selection::Outcome::never) co_return r;
    // A matching assignment in Created extends the wait to the Assigned budget.
    bool created = std::any_of(assigned_ptrs.begin(), assigned_ptrs.end(), [&](const auto* a) {
      return a->status == kube::kAssignedIDCreated && a->azure_identity_ref &&
             matches_request(*a->azure_identity_ref, request);
    });
    auto deadline = created ? assigned_deadline : created_deadline;
    auto left = duration_cast<milliseconds>(deadline - steady_clock::now());
    if (left.count() <= 0) {
      r.waited_out = true;
      r.reason = created ? "identity assigned to the pod is still in Created state (not yet assigned to the node)"
                         : "no AzureAssignedIdentity for this pod yet (MIC has not assigned the identity)";
      co_return r;
    }
    bool changed = co_await state_.changed().wait_since(generation, left);
    (void)changed;
    co_await throw_if_cancelled();
  }
}

}  // namespace aad::identity::nmi
