#include "identity/mic/azure_setup.hpp"

#include "azure/clock.hpp"
#include "azure/credentials.hpp"
#include "core/ascii.hpp"
#include "core/version.hpp"

namespace aad::identity::mic {

azure::EndpointOverrides endpoint_overrides_from_env(const azure::EnvLookup& env) {
  azure::EndpointOverrides o;
  auto read = [&](const char* name, std::string& out) {
    if (auto v = env(name); v && !v->empty()) out = *v;
  };
  read("AAD_POD_IDENTITY_ARM_ENDPOINT", o.arm_base_url);
  read("AAD_POD_IDENTITY_AAD_ENDPOINT", o.aad_authority_host);
  read("AAD_POD_IDENTITY_IMDS_ENDPOINT", o.imds_base_url);
  return o;
}

azure::Result<std::unique_ptr<AzureSetup>> make_azure_setup(boost::asio::any_io_executor executor,
                                                            const std::string& cloudconfig_path,
                                                            const std::string& user_agent_suffix,
                                                            const azure::EnvLookup& env) {
  auto config = cloudconfig_path.empty() ? azure::cloud_config_from_env(env)
                                         : azure::load_cloud_config_file(cloudconfig_path);
  if (!config) return config.error();
  return make_azure_setup_from(executor, std::move(*config), user_agent_suffix, env);
}

azure::Result<std::unique_ptr<AzureSetup>> make_azure_setup_from(boost::asio::any_io_executor executor,
                                                                 azure::CloudConfig config,
                                                                 const std::string& user_agent_suffix,
                                                                 const azure::EnvLookup& env) {
  auto setup = std::make_unique<AzureSetup>();
  setup->config = std::move(config);
  auto endpoints = azure::resolve_endpoints(setup->config, endpoint_overrides_from_env(env), env);
  if (!endpoints) return endpoints.error();
  setup->endpoints = *endpoints;
  http::ClientOptions ho;
  ho.user_agent = std::string("aad-pod-identity/MIC/") + version::semver;
  if (!user_agent_suffix.empty()) ho.user_agent += " " + user_agent_suffix;
  setup->http = std::make_unique<http::Client>(executor, ho);
  auto tokens = azure::make_arm_token_source(setup->config, setup->endpoints, *setup->http, azure::system_clock());
  if (!tokens) return tokens.error();
  setup->tokens = std::move(*tokens);
  azure::ArmOptions ao;
  ao.base_url = setup->endpoints.arm_base_url;
  ao.audience = setup->endpoints.arm_audience;
  setup->arm = std::make_unique<azure::ArmComputeClient>(*setup->http, *setup->tokens, azure::system_clock(), ao);
  return setup;
}

boost::asio::awaitable<azure::Result<azure::ComputeResource>> ReloadableCompute::get(
    const azure::ComputeRef& ref, const azure::Cancellation& cancel) {
  auto* arm = setups_.back()->arm.get();
  auto r = co_await arm->get(ref, cancel);
  co_return r;
}

boost::asio::awaitable<azure::Result<void>> ReloadableCompute::patch_identity(const azure::ComputeRef& ref,
                                                                            const azure::IdentityPatch& patch,
                                                                            const azure::Cancellation& cancel) {
  auto* arm = setups_.back()->arm.get();
  auto r = co_await arm->patch_identity(ref, patch, cancel);
  co_return r;
}

std::set<std::string> immutable_client_ids(const std::vector<std::string>& flag_ids, const azure::CloudConfig& config) {
  std::set<std::string> out;
  auto add = [&](std::string_view id) {
    if (!id.empty()) out.insert(to_lower(id));
  };
  for (const auto& id : flag_ids) add(id);
  add(config.user_assigned_identity_id);
  return out;
}

}  // namespace aad::identity::mic
