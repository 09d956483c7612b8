#pragma once
// Azure clouds by the names the original accepted (go-autorest environments), case-insensitive.
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "azure/error.hpp"

namespace aad::azure {

struct CloudEnvironment {
  std::string name;                       // canonical, e.g. "AzurePublicCloud"
  std::string resource_manager_endpoint;  // ARM base URL and ARM token audience, trailing '/'
  std::string active_directory_endpoint;  // AAD authority host, trailing '/'
};

// Reads an environment variable; injectable so tests do not touch the process environment.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;
EnvLookup process_env();

// AzurePublicCloud/AzureCloud, AzureChinaCloud, AzureUSGovernmentCloud/AzureUSGovernment,
// AzureGermanCloud; AzureStackCloud reads the JSON file named by AZURE_ENVIRONMENT_FILEPATH
// (go-autorest field names, matched case-insensitively like Go's encoding/json).
Result<CloudEnvironment> cloud_from_name(std::string_view name, const EnvLookup& env = process_env());

// Parses a go-autorest environment JSON document (AzureStackCloud / custom clouds).
Result<CloudEnvironment> cloud_from_json(std::string_view json, std::string_view origin);

// Shared by the cloud and cloud-config readers.
Error config_error(std::string message);       // kind config, code InvalidCloudConfig
std::string with_trailing_slash(std::string url);

}  // namespace aad::azure
