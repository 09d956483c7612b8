#pragma once
// Start-up checks of the node NMI runs on: the original's kubenet refusal (a substring of the
// kubelet configuration, behaviour reference 3.17) and the route_localnet setting without which
// a DNAT to 127.0.0.1 from PREROUTING silently drops pods' traffic.
#include <optional>
#include <string>

namespace aad::identity::nmi {

// The refusal message when `kubelet_config` names the kubenet plugin, else nullopt.
std::optional<std::string> kubenet_refusal(const std::string& kubelet_config);

// Reads the file and applies kubenet_refusal; an unreadable file is an error too (as the original).
std::optional<std::string> check_kubenet(const std::string& path);

// A warning when route_localnet is off for every interface under `conf_dir`
// (/proc/sys/net/ipv4/conf), else nullopt.
std::optional<std::string> route_localnet_warning(const std::string& conf_dir = "/proc/sys/net/ipv4/conf");

}  // namespace aad::identity::nmi
