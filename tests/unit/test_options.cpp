#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>
#include <vector>

#include "identity/options.hpp"

using namespace std::chrono_literals;
using namespace aad::identity;
using Args = std::vector<std::string>;

namespace {
std::string error_of(auto parse, Args args) {
  try {
    parse(args);
  } catch (const aad::FlagError& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST_CASE("MIC defaults match v1.8.17") {
  ::unsetenv("FORCENAMESPACED");
  ::setenv("MIC_POD_NAMESPACE", "kube-system", 1);
  auto o = parse_mic_options(Args{});
  CHECK(o.http_probe_port == 8080);
  CHECK(o.prometheus_port == 8888);
  CHECK(o.sync_retry_duration == 3600s);
  CHECK(o.leader_election_name == "aad-pod-identity-mic");
  CHECK(o.leader_election_duration == 15s);
  CHECK(o.leader_election_namespace == "kube-system");
  CHECK(o.create_delete_batch == 20);
  CHECK(o.client_qps == 5);
  CHECK(o.enable_type_upgrade);
  CHECK(o.update_user_msi_max_retry == 2);
  CHECK(o.update_user_msi_retry_interval == 1s);
  CHECK(o.identity_assignment_reconcile_interval == 3min);
  CHECK(o.config_map_name == "aad-pod-identity-config");
  CHECK(o.type_upgrade_status_key == "type-upgrade-status");
  CHECK(o.mic_pod_namespace == "kube-system");
  ::unsetenv("MIC_POD_NAMESPACE");
}

TEST_CASE("MIC flags as the original's manifests and Helm chart pass them") {
  auto o = parse_mic_options(Args{"--cloudconfig=/etc/kubernetes/azure.json", "--logtostderr",
                                  "--http-probe-port=8085", "-v", "4", "--immutable-user-msis=AAA, bbb,,",
                                  "--forceNamespaced", "--leader-election-namespace", "default",
                                  "--clientQps=10.5", "--log-format=json", "--enableScaleFeatures=true"});
  CHECK(o.cloudconfig == "/etc/kubernetes/azure.json");
  CHECK(o.http_probe_port == 8085);
  CHECK(o.verbosity == 4);
  CHECK(o.immutable_identities() == std::vector<std::string>{"aaa", "bbb"});
  CHECK(o.force_namespaced);
  CHECK(o.leader_election_namespace == "default");
  CHECK(o.client_qps == 10.5);
  CHECK(o.log_format == "json");
  CHECK(o.ignored_flags == std::vector<std::string>{"enableScaleFeatures", "logtostderr"});
}

TEST_CASE("MIC rejects inconsistent leader election timings") {
  CHECK(error_of(parse_mic_options, {"--leader-election-duration=5s"}).find("renew-deadline") != std::string::npos);
}

TEST_CASE("NMI defaults match v1.8.17") {
  ::unsetenv("NODE_NAME");
  ::unsetenv("FORCENAMESPACED");
  auto o = parse_nmi_options(Args{});
  CHECK(o.nmi_listen_address == "127.0.0.1");
  CHECK(o.nmi_port == 2579);
  CHECK(o.metadata_ip == "169.254.169.254");
  CHECK(o.metadata_port == 80);
  CHECK(o.ipt_update_interval_sec == 60);
  CHECK(o.mic_namespace == "default");
  CHECK(o.http_probe_port == 8080);
  CHECK(o.prometheus_port == 9090);
  CHECK(o.retry_attempts_for_created == 16);
  CHECK(o.retry_attempts_for_assigned == 4);
  CHECK(o.find_identity_retry_interval == 5);
  CHECK(o.enable_scale_features);
  CHECK(o.metadata_header_required);
  CHECK_FALSE(o.block_instance_metadata);
  CHECK(o.operation_mode == "standard");
  CHECK(o.kubelet_config == "/etc/default/kubelet");
  CHECK(o.imds_endpoint == "http://169.254.169.254:80");
  CHECK(o.node.empty());
}

TEST_CASE("NMI environment variables") {
  ::setenv("NODE_NAME", "aks-node-1", 1);
  ::setenv("FORCENAMESPACED", "true", 1);
  auto o = parse_nmi_options(Args{"--operation-mode=Managed"});
  CHECK(o.node == "aks-node-1");
  CHECK(o.force_namespaced);
  CHECK(o.operation_mode == "managed");
  CHECK(parse_nmi_options(Args{"--node=other"}).node == "other");
  ::unsetenv("NODE_NAME");
  ::unsetenv("FORCENAMESPACED");
}

TEST_CASE("NMI addresses and URLs are validated") {
  CHECK(error_of(parse_nmi_options, {"--metadata-ip=not-an-ip"}) ==
        "invalid value \"not-an-ip\" for flag --metadata-ip: not an IP address");
  CHECK(error_of(parse_nmi_options, {"--nmi-listen-address=999.1.1.1"}).find("not an IP address") !=
        std::string::npos);
  CHECK(error_of(parse_nmi_options, {"--imds-endpoint=::::"}).find("not an http:// or https:// URL") !=
        std::string::npos);
  CHECK(error_of(parse_nmi_options, {"--imds-endpoint=ftp://x/"}).find("not an http://") != std::string::npos);
  CHECK(error_of(parse_nmi_options, {"--metadata-ip=fd00::254"}).find("must be an IPv4 address") !=
        std::string::npos);
  CHECK(parse_nmi_options(Args{"--metadata-ip=10.0.0.1", "--metadata-port=8080"}).imds_endpoint ==
        "http://10.0.0.1:8080");
  CHECK(parse_nmi_options(Args{"--imds-endpoint=http://127.0.0.1:9999"}).imds_endpoint == "http://127.0.0.1:9999");
}

TEST_CASE("NMI rejects malformed values with the flag's name") {
  CHECK(error_of(parse_nmi_options, {"--nmi-port=abc"}) ==
        "invalid value \"abc\" for flag --nmi-port: not an integer");
  CHECK(error_of(parse_nmi_options, {"--ipt-update-interval-sec=-1"}) ==
        "invalid value \"-1\" for flag --ipt-update-interval-sec: must be at least 1");
  CHECK(error_of(parse_nmi_options, {"--nmi-port=70000"}).find("at most 65535") != std::string::npos);
  CHECK(error_of(parse_nmi_options, {"--operation-mode=hybrid"}).find("must be one of: standard, managed") !=
        std::string::npos);
  CHECK(error_of(parse_nmi_options, {"--operation-mode=managed"}).find("requires --forceNamespaced") !=
        std::string::npos);
  CHECK(error_of(parse_nmi_options, {"--syncRetryDuration=1h"}).find("unknown flag --syncRetryDuration") !=
        std::string::npos);
}
