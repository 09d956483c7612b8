#pragma once
// Small builders for the objects the MIC tests use (plain models, no apiserver).
#include <string>

#include "kube/models.hpp"

namespace aad::test::mic {

inline std::string uami_id(const std::string& name, const std::string& rg = "ids") {
  return "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/" + rg +
         "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name;
}

inline kube::Pod make_pod(const std::string& ns, const std::string& name, const std::string& node,
                     const std::string& selector) {
  kube::Pod p;
  p.meta.ns = ns;
  p.meta.name = name;
  p.node_name = node;
  if (!selector.empty()) p.meta.labels["aadpodidbinding"] = selector;
  return p;
}

inline kube::AzureIdentity make_identity(const std::string& ns, const std::string& name, int type = 0,
                                    std::string resource_id = {}, std::string client_id = {}) {
  kube::AzureIdentity i;
  i.meta.ns = ns;
  i.meta.name = name;
  i.type = type;
  i.resource_id = resource_id.empty() && type == 0 ? uami_id(name) : resource_id;
  i.client_id = client_id.empty() ? "client-" + name : client_id;
  return i;
}

inline kube::AzureIdentityBinding make_binding(const std::string& ns, const std::string& name, const std::string& identity,
                                          const std::string& selector) {
  kube::AzureIdentityBinding b;
  b.meta.ns = ns;
  b.meta.name = name;
  b.azure_identity = identity;
  b.selector = selector;
  return b;
}

}  // namespace aad::test::mic
