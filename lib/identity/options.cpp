#include "identity/options.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "core/ascii.hpp"

namespace aad::identity {
namespace {

using namespace std::chrono_literals;

void add_common(FlagSet& fs, CommonOptions& o, std::int64_t default_metrics_port) {
  fs.add_string("kubeconfig", &o.kubeconfig, "", "Path to a kubeconfig; empty means in-cluster configuration",
                "KUBECONFIG");
  fs.add_choice("log-format", &o.log_format, "text", {"text", "json"}, "Log format: text (klog) or json");
  fs.add_string("custom-user-agent", &o.custom_user_agent, "",
                "Suffix appended to the user agent of Kubernetes and Azure calls");
  fs.add_int("http-probe-port", &o.http_probe_port, 8080, "Port of /healthz and /readyz", 0, 65535);
  fs.add_int("prometheus-port", &o.prometheus_port, default_metrics_port, "Port of /metrics", 0, 65535);
  fs.add_bool("forceNamespaced", &o.force_namespaced, false,
              "Namespaced mode: pods only use identities and bindings of their own namespace",
              "FORCENAMESPACED");
  fs.add_bool("version", &o.version, false, "Print the version and exit");
  fs.add_double("clientQps", &o.client_qps, 5, "Kubernetes client queries per second (burst is the same)",
                0.1, 10000);
  // klog flags the original accepted.
  fs.add_int("v", &o.verbosity, 0, "Log verbosity", 0, 10);
  fs.add_noop("logtostderr", true, "Log to stderr (always the case)");
  fs.add_noop("alsologtostderr", true, "klog flag");
  fs.add_noop("stderrthreshold", false, "klog flag");
  fs.add_noop("vmodule", false, "klog flag");
  fs.add_noop("log_dir", false, "klog flag");
  fs.add_noop("log_file", false, "klog flag");
  fs.add_noop("log_file_max_size", false, "klog flag");
  fs.add_noop("skip_headers", true, "klog flag");
  fs.add_noop("skip_log_headers", true, "klog flag");
  fs.add_noop("add_dir_header", true, "klog flag");
  fs.add_noop("one_output", true, "klog flag");
  fs.add_noop("log_backtrace_at", false, "klog flag");
  fs.add_noop("enableProfile", true, "pprof endpoints are never exposed by this implementation");
}

void define_mic(FlagSet& fs, MicOptions& o) {
  add_common(fs, o, 8888);
  fs.add_string("cloudconfig", &o.cloudconfig, "",
                "Path to azure.json; empty means credentials from environment variables");
  fs.add_duration("syncRetryDuration", &o.sync_retry_duration, 1h,
                  "Period of the full resync (no Azure calls when nothing changed)", 1s);
  fs.add_string("leader-election-instance", &o.leader_election_instance, "",
                "Holder identity of the leader-election Lease (default: hostname)");
  fs.add_string("leader-election-namespace", &o.leader_election_namespace, "",
                "Namespace of the leader-election Lease (default: MIC_POD_NAMESPACE)");
  fs.add_string("leader-election-name", &o.leader_election_name, "aad-pod-identity-mic",
                "Name of the leader-election Lease");
  fs.add_duration("leader-election-duration", &o.leader_election_duration, 15s, "Lease duration", 1s);
  fs.add_duration("leader-election-renew-deadline", &o.leader_election_renew_deadline, 10s,
                  "How long the leader keeps trying to renew before giving up leadership", 1s);
  fs.add_duration("leader-election-retry-period", &o.leader_election_retry_period, 2s,
                  "Interval between attempts to acquire or renew the Lease", 100ms);
  fs.add_noop("enableScaleFeatures", true, "Deprecated for MIC");
  fs.add_int("createDeleteBatch", &o.create_delete_batch, 20,
             "Maximum concurrent AzureAssignedIdentity writes per node or VMSS", 1, 10000);
  fs.add_string("immutable-user-msis", &o.immutable_user_msis, "",
                "Comma-separated client IDs of identities never removed from VMs/VMSS");
  fs.add_string("config-map-name", &o.config_map_name, "aad-pod-identity-config",
                "ConfigMap recording the v1.6 type upgrade");
  fs.add_string("type-upgrade-status-key", &o.type_upgrade_status_key, "type-upgrade-status",
                "Key of the type upgrade status in that ConfigMap");
  fs.add_bool("enable-type-upgrade", &o.enable_type_upgrade, true, "Run the v1.6 type upgrade");
  fs.add_int("update-user-msi-max-retry", &o.update_user_msi_max_retry, 2,
             "Retries of a VM/VMSS identity update after a retriable error", 0, 100);
  fs.add_duration("update-user-msi-retry-interval", &o.update_user_msi_retry_interval, 1s,
                  "Pause between those retries", Duration::zero());
  fs.add_duration("identity-assignment-reconcile-interval", &o.identity_assignment_reconcile_interval, 3min,
                  "Period of the Azure drift reconcile", 1s);
}

void define_nmi(FlagSet& fs, NmiOptions& o) {
  add_common(fs, o, 9090);
  fs.add_ip("nmi-listen-address", &o.nmi_listen_address, "127.0.0.1",
                "Address NMI listens on (also the DNAT target)");
  fs.add_int("nmi-port", &o.nmi_port, 2579, "Port NMI listens on (also the DNAT target port)", 1, 65535);
  fs.add_ip("metadata-ip", &o.metadata_ip, "169.254.169.254", "IMDS address redirected to NMI");
  fs.add_int("metadata-port", &o.metadata_port, 80, "IMDS port", 1, 65535);
  fs.add_string("node", &o.node, "", "Name of the node NMI runs on", "NODE_NAME");
  fs.add_int("ipt-update-interval-sec", &o.ipt_update_interval_sec, 60,
             "Seconds between verifications of the iptables rules", 1, 86400);
  fs.add_string("MICNamespace", &o.mic_namespace, "default", "Namespace of MIC (its pods are exempt)");
  fs.add_int("retry-attempts-for-created", &o.retry_attempts_for_created, 16,
             "Standard mode: attempts waiting for an AzureAssignedIdentity to appear", 0, 1000);
  fs.add_int("retry-attempts-for-assigned", &o.retry_attempts_for_assigned, 4,
             "Standard mode: attempts waiting for Created to become Assigned", 0, 1000);
  fs.add_int("find-identity-retry-interval", &o.find_identity_retry_interval, 5,
             "Seconds between those attempts", 0, 3600);
  fs.add_bool("enableScaleFeatures", &o.enable_scale_features, true,
              "Watch only the AzureAssignedIdentities of this node (label nodename)");
  fs.add_bool("block-instance-metadata", &o.block_instance_metadata, false,
              "Answer 403 to /metadata/instance requests");
  fs.add_bool("metadata-header-required", &o.metadata_header_required, true,
              "Require the header Metadata: true on token requests");
  fs.add_choice("operation-mode", &o.operation_mode, "standard", {"standard", "managed"},
                "standard (MIC assigns identities) or managed (identities pre-assigned)", true);
  fs.add_bool("allow-network-plugin-kubenet", &o.allow_network_plugin_kubenet, false,
              "Run even when the kubelet uses kubenet");
  fs.add_string("kubelet-config", &o.kubelet_config, "/etc/default/kubelet",
                "Kubelet configuration inspected for kubenet");
  fs.add_bool("set-retry-after-header", &o.set_retry_after_header, false,
              "Answer 503 with Retry-After when the identity is not assigned yet");
  fs.add_bool("enable-conntrack-deletion", &o.enable_conntrack_deletion, false,
              "Drop existing conntrack entries to IMDS after installing the iptables rules");
  fs.add_bool("token-cache", &o.token_cache, true, "Cache tokens per identity and resource until shortly before expiry");
  fs.add_url("imds-endpoint", &o.imds_endpoint, "",
                "Base URL NMI uses for its own IMDS calls (default http://<metadata-ip>:<metadata-port>)",
                "AAD_POD_IDENTITY_IMDS_ENDPOINT");
  fs.add_noop("host-ip", false, "Removed in v1.6.2");
}

template <typename Options, typename Define>
Options parse(std::string_view role, std::span<const std::string> args, Define define) {
  Options o;
  FlagSet fs{std::string(role)};
  define(fs, o);
  fs.parse(args);
  o.ignored_flags = fs.noops_set();
  return o;
}

}  // namespace

std::vector<std::string> MicOptions::immutable_identities() const {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= immutable_user_msis.size()) {
    auto end = immutable_user_msis.find(',', start);
    if (end == std::string::npos) end = immutable_user_msis.size();
    std::string id = immutable_user_msis.substr(start, end - start);
    id.erase(0, id.find_first_not_of(" \t"));
    id.erase(id.find_last_not_of(" \t") + 1);
    if (!id.empty()) out.push_back(to_lower(id));
    start = end + 1;
  }
  return out;
}

MicOptions parse_mic_options(std::span<const std::string> args) {
  auto o = parse<MicOptions>("mic", args, define_mic);
  if (const char* ns = std::getenv("MIC_POD_NAMESPACE")) o.mic_pod_namespace = ns;
  if (o.leader_election_namespace.empty()) o.leader_election_namespace = o.mic_pod_namespace;
  if (o.leader_election_renew_deadline >= o.leader_election_duration)
    throw FlagError("flag --leader-election-renew-deadline must be shorter than --leader-election-duration");
  if (o.leader_election_retry_period >= o.leader_election_renew_deadline)
    throw FlagError("flag --leader-election-retry-period must be shorter than --leader-election-renew-deadline");
  return o;
}

NmiOptions parse_nmi_options(std::span<const std::string> args) {
  auto o = parse<NmiOptions>("nmi", args, define_nmi);
  if (o.metadata_ip.find(':') != std::string::npos)
    throw FlagError(fmt::format("invalid value {} for flag --metadata-ip: must be an IPv4 address (the redirect "
                                "uses iptables, as IMDS is IPv4)", quote(o.metadata_ip)));
  if (o.operation_mode == "managed" && !o.force_namespaced)
    throw FlagError("flag --operation-mode=managed requires --forceNamespaced=true (or FORCENAMESPACED=true)");
  if (o.imds_endpoint.empty()) o.imds_endpoint = fmt::format("http://{}:{}", o.metadata_ip, o.metadata_port);
  return o;
}

std::string mic_usage() {
  MicOptions o;
  FlagSet fs("aad-pod-identity --role=mic");
  define_mic(fs, o);
  return fs.usage();
}

std::string nmi_usage() {
  NmiOptions o;
  FlagSet fs("aad-pod-identity --role=nmi");
  define_nmi(fs, o);
  return fs.usage();
}

}  // namespace aad::identity
