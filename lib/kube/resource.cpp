#include "kube/resource.hpp"

namespace aad::kube {

// Appends piece by piece: `"literal" + std::string&&` trips GCC 12's -Wrestrict false positive at -O3.
std::string Resource::path(const std::string& ns, const std::string& name, const std::string& sub) const {
  std::string p = group.empty() ? "/api" : "/apis/" + group;
  p += '/';
  p += version;
  if (namespaced && !ns.empty()) {
    p += "/namespaces/";
    p += url_escape(ns);
  }
  p += '/';
  p += resource;
  if (!name.empty()) {
    p += '/';
    p += url_escape(name);
  }
  if (!sub.empty()) {
    p += '/';
    p += sub;
  }
  return p;
}

std::string url_escape(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

namespace resources {
const Resource pods{"", "v1", "pods", "Pod", true};
const Resource nodes{"", "v1", "nodes", "Node", false};
const Resource secrets{"", "v1", "secrets", "Secret", true};
const Resource configmaps{"", "v1", "configmaps", "ConfigMap", true};
const Resource events{"", "v1", "events", "Event", true};
const Resource namespaces{"", "v1", "namespaces", "Namespace", false};
const Resource leases{"coordination.k8s.io", "v1", "leases", "Lease", true};
const Resource azure_identities{"aadpodidentity.k8s.io", "v1", "azureidentities", "AzureIdentity", true};
const Resource azure_identity_bindings{"aadpodidentity.k8s.io", "v1", "azureidentitybindings",
                                       "AzureIdentityBinding", true};
const Resource azure_assigned_identities{"aadpodidentity.k8s.io", "v1", "azureassignedidentities",
                                         "AzureAssignedIdentity", true};
const Resource azure_pod_identity_exceptions{"aadpodidentity.k8s.io", "v1", "azurepodidentityexceptions",
                                             "AzurePodIdentityException", true};
}  // namespace resources

}  // namespace aad::kube
