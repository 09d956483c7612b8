#pragma once
// Service-principal certificates generated at test time: RSA or EC key + self-signed certificate,
// as PEM and as PKCS#12 (with or without a password).
#include <string>

namespace aad::test {

struct SpCertificate {
  std::string cert_pem;
  std::string key_pem;
  std::string key_pem_encrypted;  // the key encrypted with `password` (AES-256-CBC)
  std::string pkcs12;             // DER, protected by `password`
  std::string pkcs12_no_password; // DER, created without a password
  std::string password = "p12-test-password";
};

enum class KeyKind { rsa, ec };
SpCertificate make_sp_certificate(KeyKind kind, const std::string& cn = "sp-test");

}  // namespace aad::test
