#pragma once
// The token source MIC uses for ARM, chosen from the cloud configuration in the original's order:
// managed identity (userAssignedIdentityID as client_id, else system-assigned) when
// useManagedIdentityExtension, else the service principal's secret, else its certificate.
#include <memory>

#include "azure/aad_token_source.hpp"
#include "azure/cloud_config.hpp"
#include "azure/imds_token_source.hpp"

namespace aad::azure {

struct CredentialOptions {
  ImdsOptions imds;  // base_url is taken from the endpoints
  AadOptions aad;    // authority_host is taken from the endpoints
};

Result<std::unique_ptr<TokenSource>> make_arm_token_source(const CloudConfig& config, const Endpoints& endpoints,
                                                           http::Client& client, Clock& clock,
                                                           CredentialOptions options = {});

}  // namespace aad::azure
