#include "support/test_certs.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace aad::test {
namespace {

struct Deleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter>;
using Cert = std::unique_ptr<X509, Deleter>;

void check(int ok, const char* what) {
  if (ok <= 0) throw std::runtime_error(std::string("openssl: ") + what);
}

Key new_key() {
  Key k(EVP_EC_gen("P-256"));
  if (!k) throw std::runtime_error("openssl: EVP_EC_gen");
  return k;
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

Cert make_cert(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, bool is_ca,
               const char* san, const char* eku) {
  static long serial = 1;
  Cert c(X509_new());
  X509_set_version(c.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c.get()), 86400);
  X509_set_pubkey(c.get(), key);
  X509_NAME* name = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509* iss = issuer ? issuer : c.get();
  X509_set_issuer_name(c.get(), X509_get_subject_name(iss));
  if (is_ca) {
    add_ext(c.get(), iss, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(c.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(c.get(), iss, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(c.get(), iss, NID_key_usage, "critical,digitalSignature,keyEncipherment");
  }
  if (san) add_ext(c.get(), iss, NID_subject_alt_name, san);
  if (eku) add_ext(c.get(), iss, NID_ext_key_usage, eku);
  check(X509_sign(c.get(), issuer_key ? issuer_key : key, EVP_sha256()), "X509_sign");
  return c;
}

KeyPair to_pem(EVP_PKEY* key, X509* cert) {
  std::unique_ptr<BIO, Deleter> kb(BIO_new(BIO_s_mem())), cb(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_PrivateKey(kb.get(), key, nullptr, nullptr, 0, nullptr, nullptr), "write key");
  check(PEM_write_bio_X509(cb.get(), cert), "write cert");
  char* data = nullptr;
  KeyPair out;
  long n = BIO_get_mem_data(cb.get(), &data);
  out.cert_pem.assign(data, static_cast<std::size_t>(n));
  n = BIO_get_mem_data(kb.get(), &data);
  out.key_pem.assign(data, static_cast<std::size_t>(n));
  return out;
}

TestPki generate() {
  TestPki pki;
  Key ca_key = new_key();
  Cert ca = make_cert(ca_key.get(), "aad-test-ca", nullptr, nullptr, true, nullptr, nullptr);
  pki.ca = to_pem(ca_key.get(), ca.get());
  Key server_key = new_key();
  Cert server = make_cert(server_key.get(), "localhost", ca.get(), ca_key.get(), false,
                          "IP:127.0.0.1,IP:::1,DNS:localhost", "serverAuth");
  pki.server = to_pem(server_key.get(), server.get());
  Key client_key = new_key();
  Cert client = make_cert(client_key.get(), "test-client", ca.get(), ca_key.get(), false, nullptr, "clientAuth");
  pki.client = to_pem(client_key.get(), client.get());
  Key other_key = new_key();
  Cert other = make_cert(other_key.get(), "unrelated-ca", nullptr, nullptr, true, nullptr, nullptr);
  pki.other_ca = to_pem(other_key.get(), other.get());
  return pki;
}

}  // namespace

const TestPki& test_pki() {
  static const TestPki pki = generate();
  return pki;
}

std::string write_temp_file(const std::string& content, const std::string& suffix) {
  std::string path = "/tmp/aad-test-XXXXXX" + suffix;
  int fd = ::mkstemps(path.data(), static_cast<int>(suffix.size()));
  if (fd < 0) throw std::runtime_error("mkstemps failed");
  ::close(fd);
  std::ofstream(path) << content;
  return path;
}

}  // namespace aad::test
