#pragma once
// One generic description of an API resource: group/version/resource/namespaced. Every API call
// takes one of these instead of per-kind code.
#include <string>

namespace aad::kube {

struct Resource {
  std::string group;     // "" for the core group
  std::string version;   // "v1"
  std::string resource;  // plural: "pods"
  std::string kind;      // "Pod"
  bool namespaced = true;

  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
  // /api/v1/namespaces/NS/pods/NAME/SUB (ns ignored for cluster-scoped; empty ns: all namespaces)
  std::string path(const std::string& ns = {}, const std::string& name = {}, const std::string& sub = {}) const;
};

namespace resources {
extern const Resource pods, nodes, secrets, configmaps, events, leases, namespaces;
extern const Resource azure_identities, azure_identity_bindings, azure_assigned_identities,
    azure_pod_identity_exceptions;
}  // namespace resources

std::string url_escape(const std::string& s);  // query/path component escaping

}  // namespace aad::kube
