#include <catch2/catch.hpp>

#include "identity/nmi/request.hpp"

using namespace aad;
using namespace aad::identity::nmi;

TEST_CASE("token paths: 'metadata' in any case, an optional trailing slash") {
  CHECK(classify("/metadata/identity/oauth2/token", false) == Route::token);
  CHECK(classify("/METADATA/identity/oauth2/token", false) == Route::token);
  CHECK(classify("/MetaData/identity/oauth2/token/", false) == Route::token);  // msal-node
}

TEST_CASE("token-like paths that are not token paths get 400, never the proxy") {
  for (auto path : {"/metadata/identity/oauth2/tokenXYZ", "/metadata/identity/oauth2/token/extra",
                    "/metadata/identity//oauth2/token", "/metadata/identity/x/oauth2/y/token",
                    "/metadata/identity\\oauth2\\token", "/prefix/Metadata/identity/oauth2/token"}) {
    INFO(path);
    CHECK(classify(path, false) == Route::malformed_token);
  }
}

TEST_CASE("other routes") {
  CHECK(classify("/host/token", false) == Route::host_token);
  CHECK(classify("/host/token/", false) == Route::host_token);
  CHECK(classify("/metadata/instance", true) == Route::blocked_instance);
  CHECK(classify("/Metadata/instance/compute", true) == Route::blocked_instance);
  CHECK(classify("/metadata/instance", false) == Route::proxy);
  // Only "/metadata" is case-insensitive in the token route (as the original); other letter cases of
  // a token path are refused, never proxied (the original forwarded them to IMDS).
  CHECK(classify("/metadata/Identity/oauth2/token", false) == Route::malformed_token);
  CHECK(classify("/metadata/IDENTITY/OAuth2/Token", false) == Route::malformed_token);
  CHECK(classify("/metadata/scheduledevents", true) == Route::proxy);
  CHECK(classify("/", false) == Route::proxy);
}

TEST_CASE("routes are chosen on the decoded path") {
  CHECK(classify("/metadata/%69nstance", true) == Route::blocked_instance);
  CHECK(classify("/METADATA/INSTANCE/compute", true) == Route::blocked_instance);
  CHECK(classify("/metadata/identity/oauth2/%74oken", false) == Route::token);
  CHECK(classify("/metadata/%zz", false) == Route::malformed_token);
  CHECK(decode_path("/a%2Fb+c") == std::optional<std::string>("/a/b+c"));
}

TEST_CASE("token query parameters, decoded once") {
  QueryError err;
  auto q = parse_token_query(
      "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id=ABC&mi_res_id=%2Fsubscriptions%2Fs", err);
  REQUIRE(q);
  CHECK(q->resource == "https://vault.azure.net");
  CHECK(q->client_id == "ABC");
  CHECK(q->resource_id == "/subscriptions/s");
  CHECK(q->api_version == "2018-02-01");

  auto both = parse_token_query("resource=r&msi_res_id=first&mi_res_id=second", err);
  REQUIRE(both);
  CHECK(both->resource_id == "first");  // msi_res_id wins over mi_res_id

  auto repeated = parse_token_query("resource=a&resource=b&object_id=o&x=1&&", err);
  REQUIRE(repeated);
  CHECK(repeated->resource == "a");
  CHECK(repeated->object_id == "o");

  auto plus = parse_token_query("resource=a+b%20c", err);
  REQUIRE(plus);
  CHECK(plus->resource == "a b c");

  auto literal = parse_token_query("resource=https://management.azure.com/", err);
  REQUIRE(literal);
  CHECK(literal->resource == "https://management.azure.com/");

  auto empty = parse_token_query("", err);
  REQUIRE(empty);
  CHECK(empty->resource.empty());
}

TEST_CASE("malformed percent-encoding is an error") {
  for (auto bad : {"resource=%", "resource=%4", "resource=%zz", "res%GGource=x"}) {
    INFO(bad);
    QueryError err;
    CHECK_FALSE(parse_token_query(bad, err));
    CHECK(err.description.find("percent-encoding") != std::string::npos);
  }
}

TEST_CASE("split_target") {
  CHECK(split_target("/a?b=c") == std::pair<std::string_view, std::string_view>{"/a", "b=c"});
  CHECK(split_target("/a") == std::pair<std::string_view, std::string_view>{"/a", ""});
  CHECK(split_target("/a?") == std::pair<std::string_view, std::string_view>{"/a", ""});
}

TEST_CASE("errors are JSON in IMDS's shape, with Retry-After when asked") {
  http::Request req{http::Verb::get, "/metadata/identity/oauth2/token", 11};
  auto res = error_response(req, {http::Status::service_unavailable, "identity_not_ready",
                                  "identity \"x\" is not \"assigned\" yet", 20});
  CHECK(res.result() == http::Status::service_unavailable);
  CHECK(res.body() == R"({"error":"identity_not_ready","error_description":"identity \"x\" is not \"assigned\" yet"})");
  CHECK(res[http::bhttp::field::content_type] == "application/json; charset=utf-8");
  CHECK(res[http::bhttp::field::retry_after] == "20");
  CHECK(res[http::bhttp::field::content_length] == std::to_string(res.body().size()));
  auto plain = error_response(req, {http::Status::bad_request, "invalid_request", "bad", std::nullopt});
  CHECK(plain.find(http::bhttp::field::retry_after) == plain.end());
}
