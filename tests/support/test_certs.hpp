#pragma once
// Certificates generated at test time with OpenSSL: a CA, a server certificate for
// 127.0.0.1/localhost and a client certificate, all PEM.
#include <string>

namespace aad::test {

struct KeyPair {
  std::string cert_pem;
  std::string key_pem;
};

struct TestPki {
  KeyPair ca;
  KeyPair server;  // SAN: IP 127.0.0.1, IP ::1, DNS localhost
  KeyPair client;  // CN=test-client, extendedKeyUsage clientAuth
  KeyPair other_ca;  // an unrelated CA (for "wrong CA" tests)
};

// Generated once per process (EC P-256 keys, valid for a day).
const TestPki& test_pki();

// Writes `content` to a fresh file under /tmp and returns its path.
std::string write_temp_file(const std::string& content, const std::string& suffix = ".pem");

}  // namespace aad::test
