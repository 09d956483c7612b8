#pragma once
// MIC's desired state (behaviour reference section 2.5) as a pure function: from pods, bindings
// and identities to the AzureAssignedIdentities that should exist. No I/O, no clock.
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kube/models.hpp"

namespace aad::identity::mic {

inline constexpr std::string_view kAssignedFinalizer = "azureassignedidentity.finalizers.aadpodidentity.k8s.io";
inline constexpr std::string_view kNodeNameLabel = "nodename";
// Set by MIC on an AAI whose identity was already on the VM / VMSS, put there by someone else:
// MIC never removes such an identity (see README, Differences).
inline constexpr std::string_view kFoundOnVmAnnotation = "aadpodidentity.k8s.io/found-on-vm";

// Type 0 identities must carry a user-assigned identity ARM id (case-insensitive):
// /subscriptions/<x>/resourcegroups/<x>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<x>
bool valid_user_assigned_id(std::string_view resource_id);

// `<pod>-<podNamespace>-<identity>`, no truncation (as the original).
std::string assigned_identity_name(std::string_view pod, std::string_view pod_namespace,
                                   std::string_view identity);

struct DesiredInputs {
  std::vector<const kube::Pod*> pods;
  std::vector<const kube::AzureIdentityBinding*> bindings;
  std::vector<const kube::AzureIdentity*> identities;
  bool force_namespaced = false;
};

struct DesiredState {
  // "namespace/name" -> the AAI as MIC would create it (status empty, availableReplicas 1).
  std::map<std::string, kube::AzureAssignedIdentity> assignments;
  std::vector<std::string> warnings;  // ignored identities, name conflicts
};

// The desired AAIs for `pods` (each pod with spec.nodeName and a non-empty aadpodidbinding label).
// Deterministic: pods in (namespace, name) order, bindings in (namespace, name) order; an AAI
// name reached twice keeps the first.
DesiredState desired_assignments(const DesiredInputs& in);

// Whether an existing AAI already says what `desired` says: same pod, namespace, node (spec and
// `nodename` label), identity (namespace, name and spec) and binding (namespace, name and spec).
// resourceVersions and other metadata do not count, so resyncs and no-op edits cause no rewrite.
bool same_assignment(const kube::AzureAssignedIdentity& current, const kube::AzureAssignedIdentity& desired);

// The user-assigned identity an AAI stands for, lower-cased; empty unless type 0.
std::string assigned_resource_id(const kube::AzureAssignedIdentity& aai);

}  // namespace aad::identity::mic
