#include "azure_certs.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <memory>
#include <stdexcept>

namespace aad::test {

namespace {

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("openssl: ") + what);
}

std::string bio_string(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string p12_der(EVP_PKEY* key, X509* cert, const char* password) {
  PKCS12* p12 = PKCS12_create(password, "sp", key, cert, nullptr, 0, 0, 0, 0, 0);
  check(p12 != nullptr, "PKCS12_create");
  BIO* b = BIO_new(BIO_s_mem());
  check(i2d_PKCS12_bio(b, p12) == 1, "i2d_PKCS12_bio");
  std::string out = bio_string(b);
  BIO_free(b);
  PKCS12_free(p12);
  return out;
}

}  // namespace

SpCertificate make_sp_certificate(KeyKind kind, const std::string& cn) {
  EVP_PKEY* key = kind == KeyKind::rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
  check(key != nullptr, "key generation");
  X509* cert = X509_new();
  static long serial = 1000;
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  check(X509_sign(cert, key, EVP_sha256()) > 0, "X509_sign");

  SpCertificate out;
  BIO* b = BIO_new(BIO_s_mem());
  check(PEM_write_bio_X509(b, cert) == 1, "PEM_write_bio_X509");
  out.cert_pem = bio_string(b);
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  check(PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr) == 1, "PEM key");
  out.key_pem = bio_string(b);
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  check(PEM_write_bio_PrivateKey(b, key, EVP_aes_256_cbc(), nullptr, 0, nullptr, out.password.data()) == 1,
        "PEM encrypted key");
  out.key_pem_encrypted = bio_string(b);
  BIO_free(b);
  out.pkcs12 = p12_der(key, cert, out.password.c_str());
  out.pkcs12_no_password = p12_der(key, cert, nullptr);
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

}  // namespace aad::test
