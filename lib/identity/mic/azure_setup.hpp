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

azure::Result<std::unique_ptr<AzureSetup>> make_azure_setup(boost::asio::any_io_executor executor,
                                                            const std::string& cloudconfig_path,
                                                            const std::string& user_agent_suffix,
                                                            const azure::EnvLookup& env = azure::process_env());

// --immutable-user-msis (lower-cased) plus the cluster identity (userAssignedIdentityID).
std::set<std::string> immutable_client_ids(const std::vector<std::string>& flag_ids, const azure::CloudConfig& config);

}  // namespace aad::identity::mic
