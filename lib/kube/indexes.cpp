#include <algorithm>

#include "kube/cache.hpp"

namespace aad::kube::index {

std::vector<std::string> pod_ips(const Pod& p) {
  std::vector<std::string> out;
  if (!p.pod_ip.empty()) out.push_back(p.pod_ip);
  for (const auto& ip : p.pod_ips)
    if (std::find(out.begin(), out.end(), ip) == out.end()) out.push_back(ip);
  return out;
}

std::vector<std::string> assigned_pod(const AzureAssignedIdentity& a) {
  if (a.pod.empty()) return {};
  return {a.pod_namespace + "/" + a.pod};
}

std::vector<std::string> assigned_node(const AzureAssignedIdentity& a) {
  if (a.node_name.empty()) return {};
  return {a.node_name};
}

}  // namespace aad::kube::index
