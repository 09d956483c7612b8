#pragma once
// The command line of each role: the original v1.8.17 flag names, defaults and environment
// variables (sections 2.1 and 3.1 of the behaviour reference), plus our additions.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/duration.hpp"
#include "core/flags.hpp"

namespace aad::identity {

// Flags both roles share (logging, kube client, ports).
struct CommonOptions {
  std::string kubeconfig;
  std::string log_format = "text";
  std::int64_t verbosity = 0;
  std::string custom_user_agent;
  std::int64_t http_probe_port = 8080;
  std::int64_t prometheus_port = 0;
  bool force_namespaced = false;
  bool version = false;
  double client_qps = 5;
  std::vector<std::string> ignored_flags;  // compatibility flags given that have no effect
};

struct MicOptions : CommonOptions {
  std::string cloudconfig;
  Duration sync_retry_duration = std::chrono::hours(1);
  std::string leader_election_instance;
  std::string leader_election_namespace;  // default: MIC_POD_NAMESPACE (see Differences)
  std::string leader_election_name = "aad-pod-identity-mic";
  Duration leader_election_duration = std::chrono::seconds(15);
  Duration leader_election_renew_deadline = std::chrono::seconds(10);
  Duration leader_election_retry_period = std::chrono::seconds(2);
  std::int64_t create_delete_batch = 20;
  std::string immutable_user_msis;
  std::string config_map_name = "aad-pod-identity-config";
  std::string type_upgrade_status_key = "type-upgrade-status";
  bool enable_type_upgrade = true;
  std::int64_t update_user_msi_max_retry = 2;
  Duration update_user_msi_retry_interval = std::chrono::seconds(1);
  Duration identity_assignment_reconcile_interval = std::chrono::minutes(3);
  std::string mic_pod_namespace;  // env MIC_POD_NAMESPACE, required to run

  std::vector<std::string> immutable_identities() const;  // lower-cased, empty entries dropped
};

struct NmiOptions : CommonOptions {
  std::string nmi_listen_address = "127.0.0.1";
  std::int64_t nmi_port = 2579;
  std::string metadata_ip = "169.254.169.254";
  std::int64_t metadata_port = 80;
  std::string node;  // falls back to env NODE_NAME
  std::int64_t ipt_update_interval_sec = 60;
  std::string mic_namespace = "default";
  std::int64_t retry_attempts_for_created = 16;
  std::int64_t retry_attempts_for_assigned = 4;
  std::int64_t find_identity_retry_interval = 5;
  bool enable_scale_features = true;
  bool block_instance_metadata = false;
  bool metadata_header_required = true;
  std::string operation_mode = "standard";
  bool allow_network_plugin_kubenet = false;
  std::string kubelet_config = "/etc/default/kubelet";
  bool set_retry_after_header = false;
  bool enable_conntrack_deletion = false;
  bool token_cache = true;
  std::string imds_endpoint;  // where NMI itself gets tokens (default http://<metadata-ip>:<port>)
};

enum class Role { mic, nmi };

// Parses everything after --role. Throws FlagError (exit 2) or HelpRequested.
MicOptions parse_mic_options(std::span<const std::string> args);
NmiOptions parse_nmi_options(std::span<const std::string> args);

std::string mic_usage();
std::string nmi_usage();

}  // namespace aad::identity
