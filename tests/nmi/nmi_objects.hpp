#pragma once
// Small builders for the objects of the NMI unit tests.
#include <string>

#include "kube/models.hpp"

namespace aad::test {

inline kube::Pod make_pod(std::string ns, std::string name, std::string ip, std::string selector = {}) {
  kube::Pod p;
  p.meta.ns = std::move(ns);
  p.meta.name = std::move(name);
  p.meta.resource_version = "1";
  if (!selector.empty()) p.meta.labels["aadpodidbinding"] = std::move(selector);
  p.node_name = "node-1";
  p.phase = "Running";
  p.pod_ip = ip;
  p.pod_ips = {std::move(ip)};
  return p;
}

inline kube::AzureIdentity make_identity(std::string ns, std::string name, std::string client_id, int type = 0) {
  kube::AzureIdentity id;
  id.meta.ns = std::move(ns);
  id.meta.name = std::move(name);
  id.type = type;
  id.client_id = std::move(client_id);
  id.resource_id = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" +
                   id.meta.name;
  return id;
}

inline kube::AzureIdentityBinding make_binding(std::string ns, std::string name, std::string identity,
                                               std::string selector) {
  kube::AzureIdentityBinding b;
  b.meta.ns = std::move(ns);
  b.meta.name = std::move(name);
  b.azure_identity = std::move(identity);
  b.selector = std::move(selector);
  return b;
}

inline kube::AzureAssignedIdentity make_assigned(const kube::Pod& p, const kube::AzureIdentity& id,
                                                 std::string status) {
  kube::AzureAssignedIdentity a;
  a.meta.ns = "default";
  a.meta.name = p.meta.name + "-" + p.meta.ns + "-" + id.meta.name;
  a.pod = p.meta.name;
  a.pod_namespace = p.meta.ns;
  a.node_name = p.node_name;
  a.azure_identity_ref = id;
  a.status = std::move(status);
  return a;
}

}  // namespace aad::test
