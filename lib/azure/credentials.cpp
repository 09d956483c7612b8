#include "azure/credentials.hpp"

namespace aad::azure {

Result<std::unique_ptr<TokenSource>> make_arm_token_source(const CloudConfig& config, const Endpoints& endpoints,
                                                           http::Client& client, Clock& clock,
                                                           CredentialOptions options) {
  std::unique_ptr<TokenSource> source;
  switch (config.auth()) {
    case CloudConfig::Auth::managed_identity: {
      options.imds.base_url = endpoints.imds_base_url;
      auto id = config.user_assigned_identity_id.empty()
                    ? ManagedIdentity::system_assigned()
                    : ManagedIdentity::client_id(config.user_assigned_identity_id);
      source = std::make_unique<ImdsTokenSource>(client, clock, id, options.imds);
      break;
    }
    case CloudConfig::Auth::client_secret:
      options.aad.authority_host = endpoints.aad_authority_host;
      source = AadTokenSource::with_secret(client, clock, config.tenant_id, config.client_id, config.client_secret,
                                           options.aad);
      break;
    case CloudConfig::Auth::client_certificate: {
      auto cert = ClientCertificate::load_file(config.client_cert_path, config.client_cert_password);
      if (!cert) {
        Error e = cert.error();
        e.message = "aadClientCertPath: " + e.message;
        return e;
      }
      options.aad.authority_host = endpoints.aad_authority_host;
      source = AadTokenSource::with_certificate(client, clock, config.tenant_id, config.client_id, std::move(*cert),
                                                options.aad);
      break;
    }
  }
  return source;
}

}  // namespace aad::azure
