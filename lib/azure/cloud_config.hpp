#pragma once
// The cloud configuration MIC runs with: /etc/kubernetes/azure.json (a YAML decoder, keys
// case-sensitive as the original) or the environment alternative, plus endpoint overrides for
// tests and sovereign setups. Every problem names the key at fault; secrets are never printed.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "azure/cloud.hpp"
#include "azure/error.hpp"

namespace aad::azure {

struct CloudConfig {
  std::string cloud;                   // "cloud"
  std::string tenant_id;               // "tenantId"
  std::string client_id;               // "aadClientId"
  std::string client_secret;           // "aadClientSecret" (secret)
  std::string client_cert_path;        // "aadClientCertPath" (PKCS#12 or PEM)
  std::string client_cert_password;    // "aadClientCertPassword" (secret)
  std::string subscription_id;         // "subscriptionId"
  std::string resource_group;          // "resourceGroup"
  std::string vm_type;                 // "vmType" (read, not used for routing: providerID decides)
  std::string security_group_name;     // "securityGroupName" (read, unused)
  bool use_managed_identity_extension = false;  // "useManagedIdentityExtension"
  std::string user_assigned_identity_id;        // "userAssignedIdentityID" (client id)
  std::string location;                // "location" (informational)
  std::string source;                  // file path, or "environment"

  // How ARM tokens are obtained, in the original's precedence.
  enum class Auth { managed_identity, client_secret, client_certificate };
  Auth auth() const;
};

// Parses azure.json text; `origin` names the file in messages. Validates (see validate()).
Result<CloudConfig> parse_cloud_config(std::string_view text, std::string_view origin);
Result<CloudConfig> load_cloud_config_file(const std::string& path);
// CLOUD, TENANT_ID, CLIENT_ID, CLIENT_SECRET, SUBSCRIPTION_ID, RESOURCE_GROUP, VM_TYPE, USE_MSI
// (true when equal to "true" ignoring case), USER_ASSIGNED_MSI_CLIENT_ID.
Result<CloudConfig> cloud_config_from_env(const EnvLookup& env = process_env());

// Required: cloud, subscriptionId, resourceGroup; without managed identity also tenantId,
// aadClientId and aadClientSecret or aadClientCertPath. `env_names` switches the key names in
// messages to the environment variable names.
std::optional<Error> validate(const CloudConfig& config, bool env_names = false);

// Endpoint overrides (tests, sovereign clouds); empty fields keep the cloud's values.
struct EndpointOverrides {
  std::string arm_base_url;        // e.g. http://127.0.0.1:PORT/
  std::string arm_audience;        // token resource for ARM (default: the cloud's ARM endpoint)
  std::string aad_authority_host;  // e.g. http://127.0.0.1:PORT/
  std::string imds_base_url;       // default http://169.254.169.254
};

struct Endpoints {
  CloudEnvironment cloud;
  std::string arm_base_url;        // with trailing '/'
  std::string arm_audience;
  std::string aad_authority_host;  // with trailing '/'
  std::string imds_base_url;       // without trailing '/'
};

Result<Endpoints> resolve_endpoints(const CloudConfig& config, const EndpointOverrides& overrides = {},
                                    const EnvLookup& env = process_env());

// A cheap change check for a periodic caller: compares (inode, size, mtime) with the last look.
class CloudConfigWatcher {
 public:
  explicit CloudConfigWatcher(std::string path) : path_(std::move(path)) {}
  // True the first time and whenever the file's stamp differs from the previous call.
  bool changed();
  // changed() and, if so, the freshly parsed configuration.
  std::optional<Result<CloudConfig>> poll();
  const std::string& path() const { return path_; }

 private:
  struct Stamp {
    bool exists = false;
    std::uint64_t inode = 0, size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const Stamp&) const = default;
  };
  std::string path_;
  std::optional<Stamp> last_;
};

}  // namespace aad::azure
