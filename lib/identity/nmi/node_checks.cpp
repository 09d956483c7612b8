#include "identity/nmi/node_checks.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace aad::identity::nmi {

std::optional<std::string> kubenet_refusal(const std::string& kubelet_config) {
  if (kubelet_config.find("--network-plugin=kubenet") == std::string::npos) return std::nullopt;
  return "AAD Pod Identity is not supported for Kubenet. Review https://azure.github.io/aad-pod-identity/docs/configure/aad_pod_identity_on_kubenet/ for more details (or set --allow-network-plugin-kubenet=true)";
}

std::optional<std::string> check_kubenet(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot read kubelet config " + path + " (--kubelet-config) to check for kubenet";
  std::stringstream ss;
  ss << in.rdbuf();
  return kubenet_refusal(ss.str());
}

std::optional<std::string> route_localnet_warning(const std::string& conf_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto read_flag = [](const fs::path& p) {
    std::ifstream in(p);
    int v = 0;
    in >> v;
    return in && v != 0;
  };
  if (read_flag(fs::path(conf_dir) / "all" / "route_localnet")) return std::nullopt;
  std::string on;
  for (const auto& entry : fs::directory_iterator(conf_dir, ec)) {
    if (read_flag(entry.path() / "route_localnet")) on += (on.empty() ? "" : ", ") + entry.path().filename().string();
  }
  if (!on.empty()) return std::nullopt;  // set on some interfaces: assume those are the pods' ones
  return "net.ipv4.conf.*.route_localnet is off on every interface: pods' IMDS traffic DNAT-ed to a loopback "
         "address will be dropped. Set net.ipv4.conf.all.route_localnet=1 (kube-proxy normally does) or listen "
         "on a non-loopback --nmi-listen-address";
}

}  // namespace aad::identity::nmi
