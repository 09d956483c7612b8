#pragma once
// A service principal's certificate credential: PKCS#12 (password optional) or PEM (certificate
// and private key, key optionally encrypted), RSA or EC keys, and the client-assertion JWT that
// proves possession of the key to AAD.
#include <memory>
#include <string>
#include <chrono>
#include <string_view>

#include "azure/clock.hpp"
#include "azure/error.hpp"

namespace aad::azure {

enum class AssertionAlgorithm {
  rs256,  // RSASSA-PKCS1-v1_5 + SHA-256, header x5t (SHA-1 thumbprint) as adal sends
  ps256,  // RSASSA-PSS + SHA-256, header x5t#S256 (SHA-256 thumbprint) as MSAL sends
  es256,  // ECDSA P-256 + SHA-256, header x5t#S256 (for EC keys; AAD itself accepts RSA only)
  automatic,  // rs256 for RSA keys, es256 for EC keys
};

struct AssertionClaims {
  std::string audience;   // the token endpoint URL
  std::string client_id;  // iss and sub
  SystemTime now;
  std::chrono::seconds lifetime{600};
};

class ClientCertificate {
 public:
  // Detects the format: PEM text ("-----BEGIN") or PKCS#12 DER bytes.
  static Result<ClientCertificate> load(std::string_view data, std::string_view password = {});
  static Result<ClientCertificate> load_file(const std::string& path, std::string_view password = {});
  static Result<ClientCertificate> from_pkcs12(std::string_view der, std::string_view password = {});
  static Result<ClientCertificate> from_pem(std::string_view pem, std::string_view password = {});

  bool is_rsa() const;
  bool is_ec() const;
  std::string sha1_thumbprint_hex() const;  // upper-case hex, as the portal shows it
  std::string certificate_der() const;

  // header.claims.signature; jti is a fresh random UUID.
  Result<std::string> make_assertion(const AssertionClaims& claims,
                                     AssertionAlgorithm alg = AssertionAlgorithm::automatic) const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// base64url without padding (JWT encoding) and standard base64 (x5c).
std::string base64url(std::string_view bytes);
std::string base64(std::string_view bytes);
std::string base64url_decode(std::string_view text);

}  // namespace aad::azure
