#include "identity/mic/desired_state.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <regex>

#include "core/ascii.hpp"
#include "identity/matching.hpp"

namespace aad::identity::mic {
namespace {

std::string behavior(const kube::AzureIdentity& i) {
  auto it = i.meta.annotations.find(std::string(kBehaviorAnnotation));
  return it == i.meta.annotations.end() ? std::string() : it->second;
}

bool same_identity_spec(const kube::AzureIdentity& a, const kube::AzureIdentity& b) {
  auto secret = [](const kube::AzureIdentity& i) {
    return i.client_password ? std::pair(i.client_password->name, i.client_password->ns)
                             : std::pair(std::string(), std::string());
  };
  return a.meta.ns == b.meta.ns && a.meta.name == b.meta.name && a.type == b.type &&
         a.resource_id == b.resource_id && a.client_id == b.client_id && secret(a) == secret(b) &&
         a.client_password.has_value() == b.client_password.has_value() && a.tenant_id == b.tenant_id &&
         a.auxiliary_tenant_ids == b.auxiliary_tenant_ids && a.ad_endpoint == b.ad_endpoint &&
         a.ad_resource_id == b.ad_resource_id && behavior(a) == behavior(b);
}

bool same_binding_spec(const kube::AzureIdentityBinding& a, const kube::AzureIdentityBinding& b) {
  return a.meta.ns == b.meta.ns && a.meta.name == b.meta.name && a.azure_identity == b.azure_identity &&
         a.selector == b.selector;
}

}  // namespace

bool valid_user_assigned_id(std::string_view resource_id) {
  static const std::regex re(
      "^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\\.managedidentity/"
      "userassignedidentities/[^/]+$",
      std::regex::icase);
  return std::regex_match(resource_id.begin(), resource_id.end(), re);
}

std::string assigned_identity_name(std::string_view pod, std::string_view pod_namespace, std::string_view identity) {
  return fmt::format("{}-{}-{}", pod, pod_namespace, identity);
}

DesiredState desired_assignments(const DesiredInputs& in) {
  DesiredState out;
  std::vector<const kube::AzureIdentity*> usable;
  for (const auto* id : in.identities) {
    if (id->type == 0 && !valid_user_assigned_id(id->resource_id)) {
      out.warnings.push_back(fmt::format("ignoring azure identity {}/{}: invalid resource id '{}'", id->meta.ns,
                                         id->meta.name, id->resource_id));
      continue;
    }
    usable.push_back(id);
  }
  std::vector<const kube::Pod*> pods;
  for (const auto* p : in.pods)
    if (!p->node_name.empty()) pods.push_back(p);
  std::sort(pods.begin(), pods.end(),
            [](const auto* a, const auto* b) { return std::tie(a->meta.ns, a->meta.name) < std::tie(b->meta.ns, b->meta.name); });
  for (const auto* pod : pods) {
    for (const auto& bound : bound_identities(*pod, in.bindings, usable, in.force_namespaced)) {
      const auto& id = *bound.identity;
      kube::AzureAssignedIdentity a;
      a.meta.name = assigned_identity_name(pod->meta.name, pod->meta.ns, id.meta.name);
      a.meta.ns = is_namespaced(id, in.force_namespaced) ? id.meta.ns : "default";
      a.meta.labels[std::string(kNodeNameLabel)] = pod->node_name;
      a.meta.finalizers.push_back(std::string(kAssignedFinalizer));
      a.azure_identity_ref = id;
      a.azure_binding_ref = *bound.binding;
      a.pod = pod->meta.name;
      a.pod_namespace = pod->meta.ns;
      a.node_name = pod->node_name;
      a.available_replicas = 1;
      auto key = a.meta.ns + "/" + a.meta.name;
      if (out.assignments.count(key)) {
        out.warnings.push_back(fmt::format(
            "AzureAssignedIdentity {} already comes from another binding; binding {}/{} ignored for pod {}/{}", key,
            bound.binding->meta.ns, bound.binding->meta.name, pod->meta.ns, pod->meta.name));
        continue;
      }
      out.assignments.emplace(std::move(key), std::move(a));
    }
  }
  return out;
}

bool same_assignment(const kube::AzureAssignedIdentity& current, const kube::AzureAssignedIdentity& desired) {
  auto label = [](const kube::AzureAssignedIdentity& a) {
    auto it = a.meta.labels.find(std::string(kNodeNameLabel));
    return it == a.meta.labels.end() ? std::string() : it->second;
  };
  if (current.pod != desired.pod || current.pod_namespace != desired.pod_namespace ||
      current.node_name != desired.node_name || label(current) != label(desired))
    return false;
  if (!current.azure_identity_ref || !desired.azure_identity_ref || !current.azure_binding_ref ||
      !desired.azure_binding_ref)
    return false;
  return same_identity_spec(*current.azure_identity_ref, *desired.azure_identity_ref) &&
         same_binding_spec(*current.azure_binding_ref, *desired.azure_binding_ref);
}

std::string assigned_resource_id(const kube::AzureAssignedIdentity& aai) {
  if (!aai.azure_identity_ref || aai.azure_identity_ref->type != 0) return {};
  return to_lower(aai.azure_identity_ref->resource_id);
}

}  // namespace aad::identity::mic
