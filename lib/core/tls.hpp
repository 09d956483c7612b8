#pragma once
// OpenSSL contexts for our HTTP client and server. Certificates and keys come from files or
// from PEM text (kubeconfig "-data" fields); every failure names the piece that is wrong.
#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace aad::tls {

struct ClientConfig {
  std::string ca_file, ca_pem;  // both empty: the system trust store
  std::string cert_file, cert_pem, key_file, key_pem;  // optional client certificate
  bool insecure_skip_verify = false;
};

struct ServerConfig {
  std::string cert_file, cert_pem, key_file, key_pem;
  std::string client_ca_file, client_ca_pem;  // set: clients must present a certificate it signed
};

std::shared_ptr<boost::asio::ssl::context> make_client_context(const ClientConfig& config);
std::shared_ptr<boost::asio::ssl::context> make_server_context(const ServerConfig& config);

}  // namespace aad::tls
