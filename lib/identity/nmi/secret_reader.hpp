#pragma once
// Service-principal credentials from the Secret an AzureIdentity references, read through the
// API on each fetch (never cached here: only the token derived from them is), and the
// original's rules for which keys hold what.
#include <boost/asio/awaitable.hpp>
#include <string>

#include "azure/error.hpp"
#include "kube/client.hpp"
#include "kube/models.hpp"

namespace aad::identity::nmi {

class SecretReader {
 public:
  virtual ~SecretReader() = default;
  virtual boost::asio::awaitable<kube::Result<kube::Secret>> read(const std::string& ns, const std::string& name) = 0;
};

class KubeSecretReader final : public SecretReader {
 public:
  explicit KubeSecretReader(kube::Client& client) : client_(client) {}
  boost::asio::awaitable<kube::Result<kube::Secret>> read(const std::string& ns, const std::string& name) override;

 private:
  kube::Client& client_;
};

// Type 1: the client secret. The original took "the first value" of .data (Go map order, i.e.
// arbitrary); here: the only value, else key clientSecret, else the first key in sorted order.
azure::Result<std::string> client_secret_of(const kube::Secret& secret);

// Type 2: keys `certificate` (PKCS#12 or PEM) and `password` (may be absent or empty).
struct CertificateMaterial {
  std::string certificate, password;
};
azure::Result<CertificateMaterial> certificate_of(const kube::Secret& secret);

}  // namespace aad::identity::nmi
