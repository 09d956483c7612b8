#pragma once
// Where the apiserver is and how to authenticate: a kubeconfig file or the in-cluster service
// account. Broken configuration is fatal: every loader throws ConfigError naming the bad piece.
#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

#include "core/tls.hpp"

namespace aad::kube {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Config {
  std::string server;           // https://host:port (no trailing slash)
  tls::ClientConfig tls;        // CA / client certificate / insecure-skip-tls-verify
  std::string token;            // static bearer token
  std::string token_file;       // bearer token re-read periodically (projected tokens rotate)
  std::string ns = "default";   // namespace of the context / service account
  std::string source;           // "kubeconfig <path> context <name>" or "in-cluster"
};

// Parses a kubeconfig (clusters/users/contexts/current-context). `context` empty: current-context.
// Relative file paths are resolved against the kubeconfig's directory.
Config load_kubeconfig(const std::string& path, const std::string& context = {});
Config parse_kubeconfig(const std::string& yaml_text, const std::string& base_dir,
                        const std::string& context = {});

struct InClusterOptions {
  std::string dir = "/var/run/secrets/kubernetes.io/serviceaccount";  // token, ca.crt, namespace
  // Environment lookup (tests inject); default ::getenv.
  std::function<std::optional<std::string>(const std::string&)> getenv;
};
Config in_cluster(const InClusterOptions& options = {});

// The original's order: --kubeconfig if given, else in-cluster if KUBERNETES_SERVICE_HOST is
// set, else $KUBECONFIG, else ~/.kube/config.
Config load(const std::string& kubeconfig_flag, const std::string& context = {});

std::string base64_decode(std::string_view in);  // throws ConfigError on bad input
std::string base64_encode(std::string_view in);

}  // namespace aad::kube
