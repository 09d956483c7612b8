#include "catch_azure.hpp"

#include <fstream>
#include <map>
#include <thread>

#include "azure/cloud_config.hpp"
#include "support/test_certs.hpp"

using namespace aad;
using namespace aad::azure;

namespace {

const char* kFull = R"({
  "cloud": "AzurePublicCloud",
  "tenantId": "tenant-1",
  "aadClientId": "client-1",
  "aadClientSecret": "s3cr3t-value",
  "subscriptionId": "sub-1",
  "resourceGroup": "MC_rg",
  "vmType": "vmss",
  "securityGroupName": "nsg",
  "useManagedIdentityExtension": false,
  "userAssignedIdentityID": ""
})";

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto pos = s.find(from);
  REQUIRE(pos != std::string::npos);
  s.replace(pos, from.size(), to);
  return s;
}

}  // namespace

TEST_CASE("azure.json: every key read case-sensitively as the original") {
  auto c = parse_cloud_config(kFull, "azure.json");
  REQUIRE(c);
  CHECK(c->cloud == "AzurePublicCloud");
  CHECK(c->tenant_id == "tenant-1");
  CHECK(c->client_id == "client-1");
  CHECK(c->client_secret == "s3cr3t-value");
  CHECK(c->subscription_id == "sub-1");
  CHECK(c->resource_group == "MC_rg");
  CHECK(c->vm_type == "vmss");
  CHECK(c->security_group_name == "nsg");
  CHECK_FALSE(c->use_managed_identity_extension);
  CHECK(c->auth() == CloudConfig::Auth::client_secret);
}

TEST_CASE("azure.json: YAML syntax and managed identity") {
  auto c = parse_cloud_config(
      "cloud: AzureChinaCloud\nsubscriptionId: s\nresourceGroup: rg\nuseManagedIdentityExtension: true\n"
      "userAssignedIdentityID: 1111-2222\n",
      "azure.yaml");
  REQUIRE(c);
  CHECK(c->use_managed_identity_extension);
  CHECK(c->user_assigned_identity_id == "1111-2222");
  CHECK(c->auth() == CloudConfig::Auth::managed_identity);
}

TEST_CASE("azure.json: each missing required key is named") {
  struct Row {
    std::string key;
  };
  for (std::string key : {"cloud", "tenantId", "aadClientId", "subscriptionId", "resourceGroup"}) {
    INFO(key);
    std::string text = replace(kFull, "\"" + key + "\"", "\"x" + key + "\"");
    auto c = parse_cloud_config(text, "/etc/kubernetes/azure.json");
    REQUIRE_FALSE(c);
    CHECK(c.error().kind == Error::Kind::config);
    CHECK_THAT(c.error().message, Catch::Contains("missing required key " + key));
    CHECK_THAT(c.error().message, Catch::Contains("/etc/kubernetes/azure.json"));
  }
}

TEST_CASE("azure.json: keys are case-sensitive (aadClientID is not aadClientId)") {
  auto c = parse_cloud_config(replace(kFull, "\"aadClientId\"", "\"aadClientID\""), "azure.json");
  REQUIRE_FALSE(c);
  CHECK_THAT(c.error().message, Catch::Contains("aadClientId"));
}

TEST_CASE("azure.json: missing credential named, and never the secret in messages") {
  auto c = parse_cloud_config(replace(kFull, "\"aadClientSecret\"", "\"other\""), "azure.json");
  REQUIRE_FALSE(c);
  CHECK_THAT(c.error().message, Catch::Contains("aadClientSecret or aadClientCertPath"));
  auto bad = parse_cloud_config(replace(kFull, "\"AzurePublicCloud\"", "\"Mars\""), "azure.json");
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message, Catch::Contains("unknown cloud name 'Mars'"));
  CHECK_THAT(bad.error().message, !Catch::Contains("s3cr3t-value"));
}

TEST_CASE("azure.json: invalid values are named") {
  auto c = parse_cloud_config(replace(kFull, "\"useManagedIdentityExtension\": false",
                                      "\"useManagedIdentityExtension\": \"maybe\""),
                              "azure.json");
  REQUIRE_FALSE(c);
  CHECK_THAT(c.error().message, Catch::Contains("useManagedIdentityExtension must be a boolean"));
  auto m = parse_cloud_config(replace(kFull, "\"tenant-1\"", "{\"a\": 1}"), "azure.json");
  REQUIRE_FALSE(m);
  CHECK_THAT(m.error().message, Catch::Contains("key tenantId must be a string"));
  auto broken = parse_cloud_config("{\"cloud\": ", "azure.json");
  REQUIRE_FALSE(broken);
  CHECK_THAT(broken.error().message, Catch::Contains("not valid JSON/YAML"));
  auto list = parse_cloud_config("[1, 2]", "azure.json");
  REQUIRE_FALSE(list);
  CHECK_THAT(list.error().message, Catch::Contains("JSON object"));
}

TEST_CASE("azure.json: certificate credential") {
  auto c = parse_cloud_config(replace(kFull, "\"aadClientSecret\": \"s3cr3t-value\"",
                                      "\"aadClientCertPath\": \"/etc/sp.pfx\", \"aadClientCertPassword\": \"pw\""),
                              "azure.json");
  REQUIRE(c);
  CHECK(c->client_cert_path == "/etc/sp.pfx");
  CHECK(c->client_cert_password == "pw");
  CHECK(c->auth() == CloudConfig::Auth::client_certificate);
}

TEST_CASE("environment alternative: variables and USE_MSI") {
  auto c = cloud_config_from_env(env_of({{"CLOUD", "azureusgovernment"},
                                         {"SUBSCRIPTION_ID", "s"},
                                         {"RESOURCE_GROUP", "rg"},
                                         {"USE_MSI", "True"},
                                         {"USER_ASSIGNED_MSI_CLIENT_ID", "cid"},
                                         {"VM_TYPE", "standard"}}));
  REQUIRE(c);
  CHECK(c->use_managed_identity_extension);
  CHECK(c->user_assigned_identity_id == "cid");
  CHECK(c->vm_type == "standard");
  CHECK(c->source == "environment");

  auto sp = cloud_config_from_env(env_of({{"CLOUD", "AzurePublicCloud"},
                                          {"SUBSCRIPTION_ID", "s"},
                                          {"RESOURCE_GROUP", "rg"},
                                          {"TENANT_ID", "t"},
                                          {"CLIENT_ID", "c"},
                                          {"CLIENT_SECRET", "x"},
                                          {"USE_MSI", "yes"}}));
  REQUIRE(sp);
  CHECK_FALSE(sp->use_managed_identity_extension);  // only "true" (any case) counts
  CHECK(sp->auth() == CloudConfig::Auth::client_secret);

  for (std::string var : {"CLOUD", "SUBSCRIPTION_ID", "RESOURCE_GROUP", "TENANT_ID", "CLIENT_ID"}) {
    std::map<std::string, std::string> vars = {{"CLOUD", "AzurePublicCloud"}, {"SUBSCRIPTION_ID", "s"},
                                               {"RESOURCE_GROUP", "rg"},      {"TENANT_ID", "t"},
                                               {"CLIENT_ID", "c"},            {"CLIENT_SECRET", "x"}};
    vars.erase(var);
    auto e = cloud_config_from_env(env_of(vars));
    INFO(var);
    REQUIRE_FALSE(e);
    CHECK_THAT(e.error().message, Catch::Contains("missing required variable " + var));
  }
}

TEST_CASE("cloud names map to ARM and AAD endpoints, case-insensitively") {
  struct Row {
    const char* name;
    const char* arm;
    const char* aad;
  };
  for (auto row : {Row{"AzurePublicCloud", "https://management.azure.com/", "https://login.microsoftonline.com/"},
                   Row{"azurecloud", "https://management.azure.com/", "https://login.microsoftonline.com/"},
                   Row{"AZURECHINACLOUD", "https://management.chinacloudapi.cn/", "https://login.chinacloudapi.cn/"},
                   Row{"AzureUSGovernmentCloud", "https://management.usgovcloudapi.net/",
                       "https://login.microsoftonline.us/"},
                   Row{"AzureUSGovernment", "https://management.usgovcloudapi.net/",
                       "https://login.microsoftonline.us/"},
                   Row{"AzureGermanCloud", "https://management.microsoftazure.de/",
                       "https://login.microsoftonline.de/"}}) {
    INFO(row.name);
    auto c = cloud_from_name(row.name, env_of({}));
    REQUIRE(c);
    CHECK(c->resource_manager_endpoint == row.arm);
    CHECK(c->active_directory_endpoint == row.aad);
  }
  CHECK_FALSE(cloud_from_name("", env_of({})));
  CHECK_FALSE(cloud_from_name("AzureMoonCloud", env_of({})));
}

TEST_CASE("AzureStackCloud reads AZURE_ENVIRONMENT_FILEPATH") {
  auto missing = cloud_from_name("AzureStackCloud", env_of({}));
  REQUIRE_FALSE(missing);
  CHECK_THAT(missing.error().message, Catch::Contains("AZURE_ENVIRONMENT_FILEPATH"));

  auto path = test::write_temp_file(R"({"name": "AzureStackCloud",
      "resourceManagerEndpoint": "https://management.local.azurestack.external",
      "ActiveDirectoryEndpoint": "https://adfs.local.azurestack.external/"})", ".json");
  auto c = cloud_from_name("azurestackcloud", env_of({{"AZURE_ENVIRONMENT_FILEPATH", path}}));
  REQUIRE(c);
  CHECK(c->resource_manager_endpoint == "https://management.local.azurestack.external/");
  CHECK(c->active_directory_endpoint == "https://adfs.local.azurestack.external/");

  auto bad_path = test::write_temp_file(R"({"name": "x", "activeDirectoryEndpoint": "https://a/"})", ".json");
  auto bad = cloud_from_name("AzureStackCloud", env_of({{"AZURE_ENVIRONMENT_FILEPATH", bad_path}}));
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message, Catch::Contains("resourceManagerEndpoint"));
  CHECK_FALSE(cloud_from_name("AzureStackCloud", env_of({{"AZURE_ENVIRONMENT_FILEPATH", "/nonexistent/x.json"}})));
}

TEST_CASE("endpoint overrides win over the cloud's endpoints") {
  auto c = parse_cloud_config(kFull, "azure.json");
  REQUIRE(c);
  auto plain = resolve_endpoints(*c, {}, env_of({}));
  REQUIRE(plain);
  CHECK(plain->arm_base_url == "https://management.azure.com/");
  CHECK(plain->arm_audience == "https://management.azure.com/");
  CHECK(plain->aad_authority_host == "https://login.microsoftonline.com/");
  CHECK(plain->imds_base_url == "http://169.254.169.254");
  EndpointOverrides o;
  o.arm_base_url = "http://127.0.0.1:1234";
  o.aad_authority_host = "http://127.0.0.1:1234";
  o.imds_base_url = "http://127.0.0.1:1234/";
  auto over = resolve_endpoints(*c, o, env_of({}));
  REQUIRE(over);
  CHECK(over->arm_base_url == "http://127.0.0.1:1234/");
  CHECK(over->arm_audience == "https://management.azure.com/");  // audience stays the cloud's
  CHECK(over->aad_authority_host == "http://127.0.0.1:1234/");
  CHECK(over->imds_base_url == "http://127.0.0.1:1234");
}

TEST_CASE("watcher: reports a change of the file and re-reads it") {
  auto path = test::write_temp_file(kFull, ".json");
  CloudConfigWatcher w(path);
  auto first = w.poll();
  REQUIRE(first);
  REQUIRE(*first);
  CHECK((*first)->resource_group == "MC_rg");
  CHECK_FALSE(w.poll());  // unchanged
  {
    std::ofstream out(path, std::ios::trunc);
    out << replace(kFull, "MC_rg", "MC_other_group");  // different size: detected even within one mtime tick
  }
  auto second = w.poll();
  REQUIRE(second);
  REQUIRE(*second);
  CHECK((*second)->resource_group == "MC_other_group");
  std::remove(path.c_str());
  auto gone = w.poll();
  REQUIRE(gone);
  CHECK_FALSE(*gone);
}
