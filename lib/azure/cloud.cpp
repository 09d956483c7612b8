#include "azure/cloud.hpp"

#include <fmt/format.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "azure/transport.hpp"

namespace aad::azure {

namespace json = boost::json;

EnvLookup process_env() {
  return [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

Error config_error(std::string message) {
  return local_error(Error::Kind::config, "InvalidCloudConfig", std::move(message));
}

std::string with_trailing_slash(std::string s) {
  if (!s.empty() && s.back() != '/') s += '/';
  return s;
}

Result<CloudEnvironment> cloud_from_json(std::string_view text, std::string_view origin) {
  boost::system::error_code ec;
  auto doc = json::parse(text, ec);
  if (ec || !doc.is_object())
    return config_error(fmt::format("{}: not a JSON object ({})", origin, ec ? ec.message() : "wrong type"));
  CloudEnvironment env;
  auto field = [&](std::string_view key) -> std::optional<std::string> {
    for (const auto& kv : doc.as_object())
      if (iequals(kv.key(), key) && kv.value().is_string()) return std::string(kv.value().as_string());
    return std::nullopt;
  };
  env.name = field("name").value_or("AzureStackCloud");
  auto arm = field("resourceManagerEndpoint");
  auto aad = field("activeDirectoryEndpoint");
  if (!arm || arm->empty())
    return config_error(fmt::format("{}: missing key resourceManagerEndpoint", origin));
  if (!aad || aad->empty())
    return config_error(fmt::format("{}: missing key activeDirectoryEndpoint", origin));
  env.resource_manager_endpoint = with_trailing_slash(*arm);
  env.active_directory_endpoint = with_trailing_slash(*aad);
  return env;
}

Result<CloudEnvironment> cloud_from_name(std::string_view name, const EnvLookup& env) {
  std::string n = to_lower(name);
  if (n == "azurepubliccloud" || n == "azurecloud")
    return CloudEnvironment{"AzurePublicCloud", "https://management.azure.com/",
                            "https://login.microsoftonline.com/"};
  if (n == "azurechinacloud")
    return CloudEnvironment{"AzureChinaCloud", "https://management.chinacloudapi.cn/",
                            "https://login.chinacloudapi.cn/"};
  if (n == "azureusgovernmentcloud" || n == "azureusgovernment")
    return CloudEnvironment{"AzureUSGovernmentCloud", "https://management.usgovcloudapi.net/",
                            "https://login.microsoftonline.us/"};
  if (n == "azuregermancloud")
    return CloudEnvironment{"AzureGermanCloud", "https://management.microsoftazure.de/",
                            "https://login.microsoftonline.de/"};
  if (n == "azurestackcloud") {
    auto path = env("AZURE_ENVIRONMENT_FILEPATH");
    if (!path || path->empty())
      return config_error(
          "cloud AzureStackCloud needs the environment variable AZURE_ENVIRONMENT_FILEPATH");
    std::ifstream in(*path);
    if (!in) return config_error(fmt::format("AZURE_ENVIRONMENT_FILEPATH: cannot read {}", *path));
    std::stringstream ss;
    ss << in.rdbuf();
    auto cloud = cloud_from_json(ss.str(), *path);
    if (cloud && cloud->name.empty()) cloud->name = "AzureStackCloud";
    return cloud;
  }
  if (name.empty()) return config_error("key cloud: missing (e.g. AzurePublicCloud)");
  return config_error(fmt::format(
      "key cloud: unknown cloud name '{}' (expected AzurePublicCloud, AzureChinaCloud, "
      "AzureUSGovernmentCloud, AzureGermanCloud or AzureStackCloud)",
      name));
}

}  // namespace aad::azure
