#pragma once
// Typed models for the objects we use, with Boost.JSON codecs. decode(): unknown fields ignored,
// missing optional fields defaulted, a wrong type is an Error for that object. encode(): starts
// from `raw` (the object as last decoded) and overwrites the modelled fields, so a PUT never loses
// fields we do not model. Timestamps stay RFC 3339 strings as the server sends them.
#include <boost/json/object.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kube/error.hpp"
#include "kube/resource.hpp"

namespace aad::kube {

using StringMap = std::map<std::string, std::string>;

struct OwnerReference {
  std::string api_version, kind, name, uid;
  std::optional<bool> controller, block_owner_deletion;
};

struct ObjectMeta {
  std::string name, generate_name, ns, uid, resource_version, creation_timestamp;
  std::optional<std::string> deletion_timestamp;
  StringMap labels, annotations;
  std::vector<OwnerReference> owner_references;
  std::vector<std::string> finalizers;
};

#define AAD_KUBE_MODEL(Type)                                                \
  static const Resource& resource();                                        \
  static Result<Type> decode(const boost::json::object& o);                 \
  boost::json::object encode() const;                                       \
  std::string key() const { return meta.ns.empty() ? meta.name : meta.ns + "/" + meta.name; }

struct Pod {
  ObjectMeta meta;
  std::string node_name, service_account_name;
  bool host_network = false;
  std::string phase, pod_ip;
  std::vector<std::string> pod_ips;  // status.podIPs[].ip
  boost::json::object raw;
  AAD_KUBE_MODEL(Pod)
};

struct Node {
  ObjectMeta meta;
  std::string provider_id;
  boost::json::object raw;
  AAD_KUBE_MODEL(Node)
};

struct Secret {
  ObjectMeta meta;
  std::string type;
  StringMap data;  // decoded bytes
  boost::json::object raw;
  AAD_KUBE_MODEL(Secret)
};

struct ConfigMap {
  ObjectMeta meta;
  StringMap data;
  boost::json::object raw;
  AAD_KUBE_MODEL(ConfigMap)
};

struct ObjectReference {
  std::string api_version, kind, ns, name, uid, resource_version, field_path;
};

struct Event {
  ObjectMeta meta;
  ObjectReference involved_object;
  std::string reason, message, type;  // type: Normal / Warning
  std::string source_component, source_host;
  std::string first_timestamp, last_timestamp;
  int count = 0;
  std::string reporting_component, reporting_instance;
  boost::json::object raw;
  AAD_KUBE_MODEL(Event)
};

struct Lease {
  ObjectMeta meta;
  std::optional<std::string> holder_identity;
  std::optional<int> lease_duration_seconds;
  std::optional<std::string> acquire_time, renew_time;  // MicroTime
  std::optional<int> lease_transitions;
  boost::json::object raw;
  AAD_KUBE_MODEL(Lease)
};

// --- aadpodidentity.k8s.io/v1 (original-behaviour.md section 1) ---

struct SecretReference {
  std::string name, ns;
};

struct AzureIdentity {
  ObjectMeta meta;
  int type = 0;  // 0 user-assigned MSI, 1 SP secret, 2 SP certificate
  std::string resource_id, client_id;
  std::optional<SecretReference> client_password;
  std::string tenant_id;
  std::vector<std::string> auxiliary_tenant_ids;
  std::string ad_endpoint, ad_resource_id;
  std::optional<int> replicas;
  int available_replicas = 0;  // status.availableReplicas
  boost::json::object raw;
  AAD_KUBE_MODEL(AzureIdentity)
};

struct AzureIdentityBinding {
  ObjectMeta meta;
  std::string azure_identity, selector;
  int weight = 0;
  int available_replicas = 0;
  boost::json::object raw;
  AAD_KUBE_MODEL(AzureIdentityBinding)
};

struct AzureAssignedIdentity {
  ObjectMeta meta;
  std::optional<AzureIdentity> azure_identity_ref;
  std::optional<AzureIdentityBinding> azure_binding_ref;
  std::string pod, pod_namespace, node_name;  // spec.pod, spec.podNamespace, spec.nodename
  std::optional<int> replicas;
  std::string status;  // status.status: Created / Assigned / Unassigned ("" legacy)
  int available_replicas = 0;
  boost::json::object raw;
  AAD_KUBE_MODEL(AzureAssignedIdentity)
};

struct AzurePodIdentityException {
  ObjectMeta meta;
  StringMap pod_labels;
  std::string status;
  boost::json::object raw;
  AAD_KUBE_MODEL(AzurePodIdentityException)
};

#undef AAD_KUBE_MODEL

inline constexpr const char* kAssignedIDCreated = "Created";
inline constexpr const char* kAssignedIDAssigned = "Assigned";
inline constexpr const char* kAssignedIDUnassigned = "Unassigned";

// Shared pieces, also for callers that work on raw objects.
Result<ObjectMeta> decode_meta(const boost::json::object& o);
void encode_meta(const ObjectMeta& m, boost::json::object& out);
std::string object_key(const boost::json::object& o);  // "ns/name" or "name"
std::string object_resource_version(const boost::json::object& o);

// Times: RFC 3339 (seconds) and MicroTime (microseconds), UTC.
std::string format_time(std::chrono::system_clock::time_point t);
std::string format_micro_time(std::chrono::system_clock::time_point t);
std::optional<std::chrono::system_clock::time_point> parse_time(const std::string& s);

}  // namespace aad::kube
