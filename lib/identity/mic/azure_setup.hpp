#pragma once
// MIC's ARM client from the cloud configuration (--cloudconfig file, else the environment),
// with endpoint overrides from the environment for tests and private endpoints:
// AAD_POD_IDENTITY_ARM_ENDPOINT, AAD_POD_IDENTITY_AAD_ENDPOINT, AAD_POD_IDENTITY_IMDS_ENDPOINT.
#include <boost/asio/any_io_executor.hpp>
#include <memory>
#include <set>
#include <string>

#include "azure/arm_client.hpp"
#include "azure/cloud_config.hpp"
#include "core/http_client.hpp"

namespace aad::identity::mic {

struct AzureSetup {
  azure::CloudConfig config;
  azure::Endpoints endpoints;
  std::unique_ptr<http::Client> http;
  std::unique_ptr<azure::TokenSource> tokens;
  std::unique_ptr<azure::ArmComputeClient> arm;
};

azure::EndpointOverrides endpoint_overrides_from_env(const azure::EnvLookup& env = azure::process_env());

// Builds the ARM client for an already loaded configuration.
azure::Result<std::unique_ptr<AzureSetup>> make_azure_setup_from(boost::asio::any_io_executor executor,
                                                                 azure::CloudConfig config,
                                                                 const std::string& user_agent_suffix,
                                                                 const azure::EnvLookup& env = azure::process_env());

azure::Result<std::unique_ptr<AzureSetup>> make_azure_setup(boost::asio::any_io_executor executor,
                                                            const std::string& cloudconfig_path,
                                                            const std::string& user_agent_suffix,
                                                            const azure::EnvLookup& env = azure::process_env());

// The ARM client MIC uses, replaceable when azure.json changes (as the original re-reads it).
// Replaced setups stay alive: calls already running on them finish there.
class ReloadableCompute final : public azure::ComputeClient {
 public:
  explicit ReloadableCompute(std::unique_ptr<AzureSetup> first) { setups_.push_back(std::move(first)); }
  boost::asio::awaitable<azure::Result<azure::ComputeResource>> get(
      const azure::ComputeRef& ref, const azure::Cancellation& cancel = azure::Cancellation::none()) override;
  boost::asio::awaitable<azure::Result<void>> patch_identity(
      const azure::ComputeRef& ref, const azure::IdentityPatch& patch,
      const azure::Cancellation& cancel = azure::Cancellation::none()) override;
  const AzureSetup& current() const { return *setups_.back(); }
  void replace(std::unique_ptr<AzureSetup> next) { setups_.push_back(std::move(next)); }
  std::size_t generation() const { return setups_.size(); }

 private:
  std::vector<std::unique_ptr<AzureSetup>> setups_;
};

// --immutable-user-msis (lower-cased) plus the cluster identity (userAssignedIdentityID).
std::set<std::string> immutable_client_ids(const std::vector<std::string>& flag_ids, const azure::CloudConfig& config);

}  // namespace aad::identity::mic
