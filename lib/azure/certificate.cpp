#include "azure/certificate.hpp"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <fstream>
#include <sstream>

namespace aad::azure {

struct ClientCertificate::Impl {
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  ~Impl() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

namespace {

Error cert_error(std::string message) {
  return local_error(Error::Kind::config, "InvalidCertificate", std::move(message));
}

std::string openssl_reason() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (!code) return "unknown reason";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

std::string digest(const X509* cert, const EVP_MD* md) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(cert, md, out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

Result<ClientCertificate> check(std::shared_ptr<ClientCertificate::Impl> impl) {
  if (!impl->cert) return cert_error("no certificate found");
  if (!impl->key) return cert_error("no private key found");
  if (X509_check_private_key(impl->cert, impl->key) != 1)
    return cert_error("the private key does not match the certificate");
  int type = EVP_PKEY_base_id(impl->key);
  if (type != EVP_PKEY_RSA && type != EVP_PKEY_EC)
    return cert_error("unsupported key type (RSA or EC expected)");
  return ClientCertificate{};
}

std::string uuid4() {
  unsigned char b[16];
  RAND_bytes(b, sizeof b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  return fmt::format("{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                     b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                     b[13], b[14], b[15]);
}

// ECDSA DER signature -> JOSE R||S (32 bytes each for P-256).
std::optional<std::string> ecdsa_der_to_jose(const std::string& der, int size) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  if (!sig) return std::nullopt;
  const BIGNUM *r = nullptr, *s = nullptr;
  ECDSA_SIG_get0(sig, &r, &s);
  std::string out(static_cast<std::size_t>(size) * 2, '\0');
  bool ok = BN_bn2binpad(r, reinterpret_cast<unsigned char*>(out.data()), size) == size &&
            BN_bn2binpad(s, reinterpret_cast<unsigned char*>(out.data()) + size, size) == size;
  ECDSA_SIG_free(sig);
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string base64url(std::string_view bytes) {
  std::string out = base64(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (auto& c : out) {
    if (c == '+') c = '-';
    else if (c == '/') c = '_';
  }
  return out;
}

std::string base64url_decode(std::string_view text) {
  std::string s(text);
  for (auto& c : s) {
    if (c == '-') c = '+';
    else if (c == '_') c = '/';
  }
  while (s.size() % 4) s += '=';
  std::string out(s.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (n < 0) return {};
  std::size_t len = static_cast<std::size_t>(n);
  std::size_t pad = 0;
  for (auto it = s.rbegin(); it != s.rend() && *it == '='; ++it) ++pad;
  out.resize(len - pad);
  return out;
}

Result<ClientCertificate> ClientCertificate::from_pkcs12(std::string_view der, std::string_view password) {
  ERR_clear_error();
  BIO* bio = BIO_new_mem_buf(der.data(), static_cast<int>(der.size()));
  PKCS12* p12 = d2i_PKCS12_bio(bio, nullptr);
  BIO_free(bio);
  if (!p12) return cert_error("not a PKCS#12 (PFX) blob: " + openssl_reason());
  auto impl = std::make_shared<Impl>();
  STACK_OF(X509)* chain = nullptr;
  std::string pw(password);
  // An empty password may mean "no password" or "the empty string": try both.
  int ok = PKCS12_parse(p12, pw.c_str(), &impl->key, &impl->cert, &chain);
  if (!ok && pw.empty()) {
    ERR_clear_error();
    ok = PKCS12_parse(p12, nullptr, &impl->key, &impl->cert, &chain);
  }
  PKCS12_free(p12);
  sk_X509_pop_free(chain, X509_free);
  if (!ok) return cert_error("cannot decrypt PKCS#12 (wrong password?): " + openssl_reason());
  auto checked = check(impl);
  if (!checked) return checked;
  ClientCertificate c;
  c.impl_ = std::move(impl);
  return c;
}

Result<ClientCertificate> ClientCertificate::from_pem(std::string_view pem, std::string_view password) {
  ERR_clear_error();
  auto impl = std::make_shared<Impl>();
  std::string pw(password);
  auto read_key = [&]() {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    impl->key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, pw.empty() ? nullptr : pw.data());
    BIO_free(bio);
  };
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  impl->cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  read_key();
  if (!impl->key && pem.find("PRIVATE KEY") != std::string_view::npos)
    return cert_error("cannot read the PEM private key (wrong password?): " + openssl_reason());
  ERR_clear_error();
  auto checked = check(impl);
  if (!checked) return checked;
  ClientCertificate c;
  c.impl_ = std::move(impl);
  return c;
}

Result<ClientCertificate> ClientCertificate::load(std::string_view data, std::string_view password) {
  if (data.find("-----BEGIN") != std::string_view::npos) return from_pem(data, password);
  return from_pkcs12(data, password);
}

Result<ClientCertificate> ClientCertificate::load_file(const std::string& path, std::string_view password) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return cert_error(fmt::format("cannot read certificate file {}", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = load(ss.str(), password);
  if (!c) {
    Error e = c.error();
    e.message = path + ": " + e.message;
    return e;
  }
  return c;
}

bool ClientCertificate::is_rsa() const { return impl_ && EVP_PKEY_base_id(impl_->key) == EVP_PKEY_RSA; }
bool ClientCertificate::is_ec() const { return impl_ && EVP_PKEY_base_id(impl_->key) == EVP_PKEY_EC; }

std::string ClientCertificate::sha1_thumbprint_hex() const {
  std::string out;
  for (unsigned char c : digest(impl_->cert, EVP_sha1())) out += fmt::format("{:02X}", c);
  return out;
}

std::string ClientCertificate::certificate_der() const {
  unsigned char* buf = nullptr;
  int n = i2d_X509(impl_->cert, &buf);
  std::string out(reinterpret_cast<char*>(buf), static_cast<std::size_t>(n > 0 ? n : 0));
  OPENSSL_free(buf);
  return out;
}

Result<std::string> ClientCertificate::make_assertion(const AssertionClaims& claims,
                                                      AssertionAlgorithm alg) const {
  if (alg == AssertionAlgorithm::automatic) alg = is_rsa() ? AssertionAlgorithm::rs256 : AssertionAlgorithm::es256;
  if ((alg == AssertionAlgorithm::es256) != is_ec())
    return cert_error(is_ec() ? "an EC key can only sign ES256 assertions"
                              : "an RSA key cannot sign ES256 assertions");
  boost::json::object header;
  header["alg"] = alg == AssertionAlgorithm::rs256 ? "RS256" : alg == AssertionAlgorithm::ps256 ? "PS256" : "ES256";
  header["typ"] = "JWT";
  if (alg == AssertionAlgorithm::rs256) header["x5t"] = base64url(digest(impl_->cert, EVP_sha1()));
  else header["x5t#S256"] = base64url(digest(impl_->cert, EVP_sha256()));
  boost::json::array x5c;
  x5c.emplace_back(base64(certificate_der()));
  header["x5c"] = std::move(x5c);

  auto now = std::chrono::duration_cast<std::chrono::seconds>(claims.now.time_since_epoch()).count();
  boost::json::object body;
  body["aud"] = claims.audience;
  body["iss"] = claims.client_id;
  body["sub"] = claims.client_id;
  body["jti"] = uuid4();
  body["nbf"] = now;
  body["iat"] = now;
  body["exp"] = now + claims.lifetime.count();

  std::string input = base64url(boost::json::serialize(header)) + "." + base64url(boost::json::serialize(body));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  std::string sig;
  bool ok = EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), nullptr, impl_->key) == 1;
  if (ok && alg == AssertionAlgorithm::ps256) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1;
  }
  std::size_t len = 0;
  if (ok) ok = EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                        reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    sig.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) return cert_error("signing the client assertion failed: " + openssl_reason());
  if (alg == AssertionAlgorithm::es256) {
    auto jose = ecdsa_der_to_jose(sig, 32);
    if (!jose) return cert_error("cannot encode the ECDSA signature");
    sig = *jose;
  }
  return input + "." + base64url(sig);
}

}  // namespace aad::azure
