#include "catch_azure.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <boost/json.hpp>

#include "azure/certificate.hpp"
#include "azure_certs.hpp"
#include "support/test_certs.hpp"

using namespace aad;
using namespace aad::azure;
namespace json = boost::json;

namespace {

struct Jwt {
  json::object header, claims;
  std::string signing_input, signature;
};

Jwt split(const std::string& token) {
  auto a = token.find('.');
  auto b = token.find('.', a + 1);
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  Jwt j;
  j.header = json::parse(base64url_decode(token.substr(0, a))).as_object();
  j.claims = json::parse(base64url_decode(token.substr(a + 1, b - a - 1))).as_object();
  j.signing_input = token.substr(0, b);
  j.signature = base64url_decode(token.substr(b + 1));
  return j;
}

// Verifies with the certificate's public key, independently of the signing code.
bool verify(const std::string& cert_pem, const Jwt& j, const std::string& alg) {
  BIO* bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  EVP_PKEY* pub = X509_get_pubkey(cert);
  std::string sig = j.signature;
  if (alg == "ES256") {  // JOSE R||S -> DER
    ECDSA_SIG* s = ECDSA_SIG_new();
    ECDSA_SIG_set0(s, BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), 32, nullptr),
                   BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + 32, 32, nullptr));
    unsigned char* der = nullptr;
    int n = i2d_ECDSA_SIG(s, &der);
    sig.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
    OPENSSL_free(der);
    ECDSA_SIG_free(s);
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), nullptr, pub);
  if (alg == "PS256") {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO);
  }
  int ok = EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                            reinterpret_cast<const unsigned char*>(j.signing_input.data()), j.signing_input.size());
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pub);
  X509_free(cert);
  return ok == 1;
}

const AssertionClaims kClaims{"https://login.example/tenant/oauth2/token?api-version=1.0", "app-id",
                              SystemTime(std::chrono::seconds(1700000000)), std::chrono::seconds(600)};

}  // namespace

TEST_CASE("client assertion: RS256 with x5t, PS256 and ES256 with x5t#S256; claims; signature verifies") {
  auto rsa = test::make_sp_certificate(test::KeyKind::rsa);
  auto ec = test::make_sp_certificate(test::KeyKind::ec);
  struct Row {
    const test::SpCertificate* material;
    AssertionAlgorithm alg;
    std::string name, thumb;
  };
  for (const auto& row : {Row{&rsa, AssertionAlgorithm::rs256, "RS256", "x5t"},
                          Row{&rsa, AssertionAlgorithm::ps256, "PS256", "x5t#S256"},
                          Row{&ec, AssertionAlgorithm::es256, "ES256", "x5t#S256"},
                          Row{&rsa, AssertionAlgorithm::automatic, "RS256", "x5t"},
                          Row{&ec, AssertionAlgorithm::automatic, "ES256", "x5t#S256"}}) {
    INFO(row.name);
    auto cert = ClientCertificate::load(row.material->cert_pem + row.material->key_pem);
    REQUIRE(cert);
    auto token = cert->make_assertion(kClaims, row.alg);
    REQUIRE(token);
    auto j = split(*token);
    CHECK(j.header.at("alg").as_string() == row.name);
    CHECK(j.header.at("typ").as_string() == "JWT");
    CHECK(j.header.contains(row.thumb));
    CHECK(j.header.at("x5c").as_array().size() == 1);
    CHECK(j.claims.at("aud").as_string() == kClaims.audience);
    CHECK(j.claims.at("iss").as_string() == "app-id");
    CHECK(j.claims.at("sub").as_string() == "app-id");
    CHECK(j.claims.at("nbf").as_int64() == 1700000000);
    CHECK(j.claims.at("exp").as_int64() == 1700000600);
    CHECK(j.claims.at("jti").as_string().size() == 36);
    CHECK(verify(row.material->cert_pem, j, row.name));
  }
  auto cert = ClientCertificate::load(rsa.cert_pem + rsa.key_pem);
  REQUIRE(cert);
  auto a = split(*cert->make_assertion(kClaims));
  auto b = split(*cert->make_assertion(kClaims));
  CHECK(a.claims.at("jti") != b.claims.at("jti"));
  // A signature over other bytes does not verify (the check above can fail).
  a.signing_input += "x";
  CHECK_FALSE(verify(rsa.cert_pem, a, "RS256"));
  CHECK_FALSE(cert->make_assertion(kClaims, AssertionAlgorithm::es256));
}

TEST_CASE("certificate loading: PKCS#12 and PEM, passwords, mismatches") {
  auto rsa = test::make_sp_certificate(test::KeyKind::rsa);
  auto other = test::make_sp_certificate(test::KeyKind::rsa, "other");
  auto ec = test::make_sp_certificate(test::KeyKind::ec);

  auto p12 = ClientCertificate::load(rsa.pkcs12, rsa.password);
  REQUIRE(p12);
  CHECK(p12->is_rsa());
  auto pem = ClientCertificate::load(rsa.cert_pem + rsa.key_pem);
  REQUIRE(pem);
  CHECK(p12->sha1_thumbprint_hex() == pem->sha1_thumbprint_hex());
  CHECK(p12->sha1_thumbprint_hex().size() == 40);
  CHECK(ClientCertificate::load(rsa.pkcs12_no_password));
  CHECK(ClientCertificate::load(rsa.pkcs12_no_password, ""));
  CHECK(ClientCertificate::load(rsa.cert_pem + rsa.key_pem_encrypted, rsa.password));
  CHECK(ClientCertificate::load(ec.pkcs12, ec.password)->is_ec());

  auto wrong = ClientCertificate::load(rsa.pkcs12, "wrong");
  REQUIRE_FALSE(wrong);
  CHECK_THAT(wrong.error().message, Catch::Contains("wrong password"));
  CHECK_THAT(wrong.error().message, !Catch::Contains(rsa.password));
  auto wrong_pem = ClientCertificate::load(rsa.cert_pem + rsa.key_pem_encrypted, "wrong");
  REQUIRE_FALSE(wrong_pem);
  auto mismatch = ClientCertificate::load(rsa.cert_pem + other.key_pem);
  REQUIRE_FALSE(mismatch);
  CHECK_THAT(mismatch.error().message, Catch::Contains("does not match"));
  auto no_key = ClientCertificate::load(rsa.cert_pem);
  REQUIRE_FALSE(no_key);
  CHECK_THAT(no_key.error().message, Catch::Contains("no private key"));
  CHECK_FALSE(ClientCertificate::load("garbage"));
  auto file = ClientCertificate::load_file(test::write_temp_file(rsa.pkcs12, ".pfx"), rsa.password);
  CHECK(file);
  auto missing = ClientCertificate::load_file("/nonexistent/sp.pfx");
  REQUIRE_FALSE(missing);
  CHECK_THAT(missing.error().message, Catch::Contains("/nonexistent/sp.pfx"));
}

TEST_CASE("base64url round trip") {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\xff\xfe\x00\x01", 4)}) {
    CHECK(base64url_decode(base64url(s)) == s);
    CHECK(base64url(s).find('=') == std::string::npos);
  }
}
