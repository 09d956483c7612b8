#include "azure/cloud_config.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

#include "azure/cloud.hpp"
#include "azure/transport.hpp"

namespace aad::azure {

CloudConfig::Auth CloudConfig::auth() const {
  if (use_managed_identity_extension) return Auth::managed_identity;
  if (!client_secret.empty()) return Auth::client_secret;
  if (!client_cert_path.empty()) return Auth::client_certificate;
  return Auth::client_secret;
}

std::optional<Error> validate(const CloudConfig& c, bool env) {
  auto missing = [&](const char* key, const char* var) {
    return config_error(fmt::format("{}: missing required {} {}", c.source, env ? "variable" : "key",
                                    env ? var : key));
  };
  if (c.cloud.empty()) return missing("cloud", "CLOUD");
  if (c.subscription_id.empty()) return missing("subscriptionId", "SUBSCRIPTION_ID");
  if (c.resource_group.empty()) return missing("resourceGroup", "RESOURCE_GROUP");
  if (!c.use_managed_identity_extension) {
    if (c.tenant_id.empty()) return missing("tenantId", "TENANT_ID");
    if (c.client_id.empty()) return missing("aadClientId", "CLIENT_ID");
    if (c.client_secret.empty() && c.client_cert_path.empty())
      return config_error(fmt::format(
          "{}: missing credential: {} (or set {} for managed identity)", c.source,
          env ? "CLIENT_SECRET" : "aadClientSecret or aadClientCertPath",
          env ? "USE_MSI=true" : "useManagedIdentityExtension: true"));
  }
  return std::nullopt;
}

Result<CloudConfig> parse_cloud_config(std::string_view text, std::string_view origin) {
  CloudConfig c;
  c.source = std::string(origin);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return config_error(fmt::format("{}: not valid JSON/YAML: {}", origin, e.msg));
  }
  if (!root.IsMap())
    return config_error(fmt::format("{}: expected a JSON object at the top level", origin));

  std::optional<Error> error;
  auto str = [&](const char* key, std::string& out) {
    auto node = root[key];
    if (!node || node.IsNull() || error) return;
    if (!node.IsScalar()) {
      error = config_error(fmt::format("{}: key {} must be a string", origin, key));
      return;
    }
    out = node.Scalar();
  };
  str("cloud", c.cloud);
  str("tenantId", c.tenant_id);
  str("aadClientId", c.client_id);
  str("aadClientSecret", c.client_secret);
  str("aadClientCertPath", c.client_cert_path);
  str("aadClientCertPassword", c.client_cert_password);
  str("subscriptionId", c.subscription_id);
  str("resourceGroup", c.resource_group);
  str("vmType", c.vm_type);
  str("securityGroupName", c.security_group_name);
  str("userAssignedIdentityID", c.user_assigned_identity_id);
  str("location", c.location);
  if (auto node = root["useManagedIdentityExtension"]; !error && node && !node.IsNull()) {
    bool value = false;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
      error = config_error(fmt::format(
          "{}: key useManagedIdentityExtension must be a boolean (true or false)", origin));
    }
    c.use_managed_identity_extension = value;
  }
  if (error) return *error;
  if (auto e = validate(c)) return *e;
  if (auto cloud = cloud_from_name(c.cloud, [](const char*) { return std::nullopt; });
      !cloud && to_lower(c.cloud) != "azurestackcloud") {
    Error e = cloud.error();
    e.message = fmt::format("{}: {}", origin, e.message);
    return e;
  }
  return c;
}

Result<CloudConfig> load_cloud_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return config_error(fmt::format("cloud config {}: cannot be read", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_cloud_config(ss.str(), path);
}

Result<CloudConfig> cloud_config_from_env(const EnvLookup& env) {
  CloudConfig c;
  c.source = "environment";
  auto get = [&](const char* name) { return env(name).value_or(""); };
  c.cloud = get("CLOUD");
  c.tenant_id = get("TENANT_ID");
  c.client_id = get("CLIENT_ID");
  c.client_secret = get("CLIENT_SECRET");
  c.subscription_id = get("SUBSCRIPTION_ID");
  c.resource_group = get("RESOURCE_GROUP");
  c.vm_type = get("VM_TYPE");
  c.use_managed_identity_extension = iequals(get("USE_MSI"), "true");
  c.user_assigned_identity_id = get("USER_ASSIGNED_MSI_CLIENT_ID");
  if (auto e = validate(c, true)) return *e;
  if (auto cloud = cloud_from_name(c.cloud, [](const char*) { return std::nullopt; });
      !cloud && to_lower(c.cloud) != "azurestackcloud") {
    Error e = cloud.error();
    e.message = "environment: " + e.message;
    return e;
  }
  return c;
}

Result<Endpoints> resolve_endpoints(const CloudConfig& config, const EndpointOverrides& o,
                                    const EnvLookup& env) {
  auto cloud = cloud_from_name(config.cloud, env);
  if (!cloud) return cloud.error();
  Endpoints e;
  e.cloud = *cloud;
  e.arm_base_url = with_trailing_slash(o.arm_base_url.empty() ? cloud->resource_manager_endpoint : o.arm_base_url);
  e.arm_audience = o.arm_audience.empty() ? cloud->resource_manager_endpoint : o.arm_audience;
  e.aad_authority_host =
      with_trailing_slash(o.aad_authority_host.empty() ? cloud->active_directory_endpoint : o.aad_authority_host);
  e.imds_base_url = o.imds_base_url.empty() ? "http://169.254.169.254" : o.imds_base_url;
  while (!e.imds_base_url.empty() && e.imds_base_url.back() == '/') e.imds_base_url.pop_back();
  return e;
}

bool CloudConfigWatcher::changed() {
  Stamp s;
  struct stat st{};
  if (::stat(path_.c_str(), &st) == 0) {
    s.exists = true;
    s.inode = st.st_ino;
    s.size = static_cast<std::uint64_t>(st.st_size);
    s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  }
  bool differs = !last_ || !(*last_ == s);
  last_ = s;
  return differs;
}

std::optional<Result<CloudConfig>> CloudConfigWatcher::poll() {
  if (!changed()) return std::nullopt;
  return load_cloud_config_file(path_);
}

}  // namespace aad::azure
