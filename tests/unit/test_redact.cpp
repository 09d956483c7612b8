#include <catch2/catch.hpp>

#include "core/redact.hpp"

using namespace aad;

namespace {
const std::string kJwt =
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tLyJ9.c2lnbmF0dXJlLXZhbHVl";
}

TEST_CASE("sensitive keys") {
  for (auto k : {"client_secret", "access_token", "refresh_token", "Authorization", "clientPassword",
                 "client_assertion", "password", "privateKey"})
    CHECK(redact::is_sensitive_key(k));
  for (auto k : {"expires_on", "expires_in", "token_type", "resource", "client_id", "msi_res_id", "namespace"})
    CHECK_FALSE(redact::is_sensitive_key(k));
}

TEST_CASE("JWTs are masked anywhere in free text") {
  auto out = redact::text("got " + kJwt + " from IMDS");
  CHECK(out.find("eyJ") == std::string::npos);
  CHECK(out.rfind("got [redacted ", 0) == 0);
  CHECK(out.ends_with(" from IMDS"));
}

TEST_CASE("form, JSON and header credentials are masked, their neighbours kept") {
  auto form = redact::text("grant_type=client_credentials&client_id=abc&client_secret=s3cr3t&resource=x");
  CHECK(form.find("s3cr3t") == std::string::npos);
  CHECK(form.find("client_id=abc") != std::string::npos);
  CHECK(form.find("resource=x") != std::string::npos);

  auto json = redact::text(R"({"access_token":"opaque-value","expires_on":"1700000000","token_type":"Bearer"})");
  CHECK(json.find("opaque-value") == std::string::npos);
  CHECK(json.find(R"("expires_on":"1700000000")") != std::string::npos);
  CHECK(json.find(R"("token_type":"Bearer")") != std::string::npos);

  auto header = redact::text("Authorization: Bearer abc.def-ghi");
  CHECK(header.find("abc.def-ghi") == std::string::npos);
  CHECK(header.find("Authorization: Bearer [redacted") == 0);

  auto assertion = redact::text("client_assertion=" + kJwt + "&x=1");
  CHECK(assertion.find("eyJ") == std::string::npos);
  CHECK(assertion.ends_with("&x=1"));
}

TEST_CASE("basic credentials and every cookie pair are masked") {
  auto basic = redact::text("Authorization: Basic dXNlcjpwYXNz");
  CHECK(basic.find("dXNlcjpwYXNz") == std::string::npos);
  auto cookie = redact::text("Cookie: a=b; other=SECRET\nnext line");
  CHECK(cookie.find("SECRET") == std::string::npos);
  CHECK(cookie.ends_with("\nnext line"));
}

TEST_CASE("plain text passes through unchanged") {
  std::string s = "pod default/demo matched identity demo-id (clientID 00000000-0000-0000-0000-000000000000)";
  CHECK(redact::text(s) == s);
  CHECK(redact::secret("abcd") == "[redacted 4 bytes]");
}
