// Token sources against the Azure emulator: IMDS (system-assigned, client_id, msi_res_id,
// object_id; every injected fault) and AAD (secret, auxiliary tenants, certificate assertions).
#include "catch_azure.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "azure/aad_token_source.hpp"
#include "azure/certificate.hpp"
#include "azure/imds_token_source.hpp"
#include "azure_certs.hpp"
#include "emulator_fixture.hpp"
#include "fake_clock.hpp"

using namespace aad;
using namespace aad::azure;
using namespace std::chrono_literals;
namespace json = boost::json;
namespace asio = boost::asio;

namespace {

const std::string kArm = "https://management.azure.com/";

json::object jwt_claims(const std::string& token) {
  auto first = token.find('.');
  auto second = token.find('.', first + 1);
  return json::parse(base64url_decode(token.substr(first + 1, second - first - 1))).as_object();
}

struct ImdsEnv {
  test::AzureEmulator& emu = test::AzureEmulator::shared();
  test::FakeClock clock;
  std::string id1, id1_client, id2, id2_client, id2_principal;

  ImdsEnv() {
    emu.reset();
    auto a = emu.post("/admin/identities", {{"resourceGroup", "ids"}, {"name", "id-one"}}).as_object();
    auto b = emu.post("/admin/identities", {{"resourceGroup", "ids"}, {"name", "id-two"}}).as_object();
    id1 = json::value_to<std::string>(a.at("resourceId"));
    id1_client = json::value_to<std::string>(a.at("clientId"));
    id2 = json::value_to<std::string>(b.at("resourceId"));
    id2_client = json::value_to<std::string>(b.at("clientId"));
    id2_principal = json::value_to<std::string>(b.at("principalId"));
    emu.post("/admin/vms", {{"resourceGroup", "MC_rg"},
                            {"name", "node1"},
                            {"systemAssigned", true},
                            {"userAssignedIdentities", json::array{id1, id2}}});
    emu.admin(boost::beast::http::verb::put, "/admin/imds", {{"vm", "vm/node1"}});
  }
  ImdsOptions options() {
    ImdsOptions o;
    o.base_url = emu.url();
    o.retry.max_attempts = 4;
    o.retry.total_budget = 60s;
    return o;
  }
  Result<Token> token(ManagedIdentity id, const std::string& resource = kArm, ImdsOptions o = {}) {
    if (o.base_url == "http://169.254.169.254") o = options();
    ImdsTokenSource src(emu.client(), clock, std::move(id), o);
    return emu.run(src.get_token(resource));
  }
  void fault(json::object f) { emu.post("/admin/faults", f); }
};

}  // namespace

TEST_CASE("IMDS: system-assigned, client_id, msi_res_id, object_id") {
  ImdsEnv env;
  auto sys = env.token(ManagedIdentity::system_assigned());
  REQUIRE(sys);
  CHECK(sys->resource == kArm);
  CHECK(sys->token_type == "Bearer");
  CHECK(sys->raw.at("expires_in").is_string());
  CHECK(sys->raw.at("expires_on").is_string());
  CHECK(sys->raw.at("not_before").is_string());
  CHECK(jwt_claims(sys->access_token).at("aud").as_string() == kArm);
  CHECK(std::chrono::duration_cast<std::chrono::seconds>(sys->expires_on.time_since_epoch()).count() ==
        std::stoll(std::string(sys->raw.at("expires_on").as_string())));

  auto by_client = env.token(ManagedIdentity::client_id(env.id1_client));
  REQUIRE(by_client);
  CHECK(by_client->client_id == env.id1_client);

  auto by_res = env.token(ManagedIdentity::resource_id(env.id2));
  REQUIRE(by_res);
  CHECK(by_res->client_id == env.id2_client);
  CHECK(jwt_claims(by_res->access_token).at("xms_mirid").as_string() == env.id2);

  auto by_oid = env.token(ManagedIdentity::object_id(env.id2_principal));
  REQUIRE(by_oid);
  CHECK(by_oid->client_id == env.id2_client);

  auto scope = env.token(ManagedIdentity::client_id(env.id1_client), "https://vault.azure.net/.default");
  REQUIRE(scope);
  CHECK(scope->resource == "https://vault.azure.net");
  CHECK(env.emu.count("imds-token", "200") == 5);
}

TEST_CASE("IMDS: identity not assigned -> final 400 with IMDS's text, one call") {
  ImdsEnv env;
  auto r = env.token(ManagedIdentity::client_id("00000000-0000-0000-0000-000000000000"));
  REQUIRE_FALSE(r);
  CHECK(r.error().status == 400);
  CHECK(r.error().code == "invalid_request");
  CHECK(r.error().message == "Identity not found");
  CHECK_FALSE(r.error().retryable);
  CHECK(env.emu.count("imds-token") == 1);
  CHECK(env.clock.sleeps.empty());
}

TEST_CASE("IMDS: injected identity-not-found fault") {
  ImdsEnv env;
  env.fault({{"target", "imds-token"}, {"kind", "identity-not-found"}, {"identities", json::array{env.id1_client}}});
  auto r = env.token(ManagedIdentity::client_id(env.id1_client));
  REQUIRE_FALSE(r);
  CHECK(r.error().message == "Identity not found");
  CHECK(env.token(ManagedIdentity::client_id(env.id2_client)));
}

TEST_CASE("IMDS: retryable statuses are retried with backoff, then succeed") {
  for (int status : {404, 408, 410, 500, 503}) {
    INFO(status);
    ImdsEnv env;
    env.fault({{"target", "imds-token"}, {"kind", "status"}, {"status", status}, {"count", 2}});
    auto r = env.token(ManagedIdentity::client_id(env.id1_client));
    REQUIRE(r);
    CHECK(env.emu.count("imds-token") == 3);
    CHECK(env.emu.count("imds-token", std::to_string(status)) == 2);
    CHECK(env.clock.sleeps.size() == 2);
  }
}

TEST_CASE("IMDS: throttled (429 without Retry-After) is retried") {
  ImdsEnv env;
  env.fault({{"target", "imds-token"}, {"kind", "throttle"}, {"count", 1}});
  auto r = env.token(ManagedIdentity::system_assigned());
  REQUIRE(r);
  CHECK(env.emu.count("imds-token", "429") == 1);
  CHECK(env.clock.sleeps.size() == 1);
}

TEST_CASE("IMDS: persistent 5xx gives up after the attempts, with the upstream status") {
  ImdsEnv env;
  env.fault({{"target", "imds-token"}, {"kind", "status"}, {"status", 502}});
  auto r = env.token(ManagedIdentity::system_assigned());
  REQUIRE_FALSE(r);
  CHECK(r.error().status == 502);
  CHECK(r.error().retryable);
  CHECK(env.emu.count("imds-token") == 4);
}

TEST_CASE("IMDS: the retry budget bounds the total time") {
  ImdsEnv env;
  env.fault({{"target", "imds-token"}, {"kind", "status"}, {"status", 500}});
  auto o = env.options();
  o.retry.max_attempts = 100;
  o.retry.initial_delay = 1000ms;
  o.retry.max_delay = 1000ms;
  o.retry.total_budget = 3500ms;
  auto r = env.token(ManagedIdentity::system_assigned(), kArm, o);
  REQUIRE_FALSE(r);
  CHECK(env.emu.count("imds-token") == 4);  // at 0, 1, 2, 3 s; a 4th sleep would pass 3.5 s
}

TEST_CASE("IMDS: a dropped connection does not fail the token request") {
  ImdsEnv env;
  env.fault({{"target", "imds-token"}, {"kind", "drop"}, {"count", 1}});
  auto r = env.token(ManagedIdentity::system_assigned());
  REQUIRE(r);  // retried by the HTTP client (stale keep-alive rule) or by the backoff loop
  CHECK(env.emu.count("imds-token", "200") == 1);
}

namespace {

// Free coroutines rather than lambda coroutines with captures (GCC 12 mishandles those).
asio::awaitable<void> cancel_after(Cancellation cancel, std::chrono::milliseconds delay) {
  asio::steady_timer t(co_await asio::this_coro::executor, delay);
  co_await t.async_wait(asio::use_awaitable);
  cancel.cancel();
}

asio::awaitable<Result<Token>> token_cancelled_after(TokenSource& src, std::chrono::milliseconds delay) {
  Cancellation cancel;
  asio::co_spawn(co_await asio::this_coro::executor, cancel_after(cancel, delay), asio::detached);
  auto result = co_await src.get_token(kArm, cancel);
  co_return result;
}

}  // namespace

TEST_CASE("IMDS: a slow IMDS is abandoned when the caller cancels") {
  ImdsEnv env;
  env.fault({{"target", "imds-token"}, {"kind", "latency"}, {"latencyMs", 3000}});
  ImdsTokenSource src(env.emu.client(), env.clock, ManagedIdentity::system_assigned(), env.options());
  auto r = env.emu.run(token_cancelled_after(src, 200ms));
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == Error::Kind::cancelled);
}

TEST_CASE("IMDS: per-attempt timeout is a retryable transport error") {
  ImdsEnv env;
  env.fault({{"target", "imds-token"}, {"kind", "latency"}, {"latencyMs", 2000}, {"count", 1}});
  auto o = env.options();
  o.attempt_timeout = 300ms;
  auto r = env.token(ManagedIdentity::system_assigned(), kArm, o);
  REQUIRE(r);
  CHECK(env.clock.sleeps.size() == 1);
}

TEST_CASE("IMDS: empty resource is refused locally") {
  ImdsEnv env;
  auto r = env.token(ManagedIdentity::system_assigned(), "");
  REQUIRE_FALSE(r);
  CHECK(env.emu.count("imds-token") == 0);
}

namespace {

struct AadEnv {
  test::AzureEmulator& emu = test::AzureEmulator::shared();
  test::FakeClock clock{SystemTime(std::chrono::system_clock::now())};
  std::string client_id = "5a1e3c2b-8d7f-4e6a-9b0c-1d2e3f4a5b6c";
  std::string secret = "test-secret-value";

  AadEnv() { emu.reset(); }
  AadOptions options() {
    AadOptions o;
    o.authority_host = emu.url() + "/";
    return o;
  }
  void register_sp(json::object extra = {}) {
    json::object sp{{"clientId", client_id}, {"secret", secret}};
    for (auto& kv : extra) sp[kv.key()] = kv.value();
    emu.post("/admin/service-principals", sp);
  }
  Result<Token> run(TokenSource& src, const std::string& resource = kArm) { return emu.run(src.get_token(resource)); }
};

}  // namespace

TEST_CASE("AAD secret: v1 token with string numbers, resource echoed") {
  AadEnv env;
  env.register_sp();
  auto src = AadTokenSource::with_secret(env.emu.client(), env.clock, env.emu.tenant_id(), env.client_id, env.secret,
                                         env.options());
  auto t = env.run(*src);
  REQUIRE(t);
  CHECK(t->resource == kArm);
  CHECK(t->raw.at("expires_in").is_string());
  CHECK(t->raw.at("expires_on").is_string());
  auto claims = jwt_claims(t->access_token);
  CHECK(claims.at("appid").as_string() == env.client_id);
  CHECK(claims.at("tid").as_string() == env.emu.tenant_id());
}

TEST_CASE("AAD errors keep status, AADSTS codes and classification") {
  AadEnv env;
  env.register_sp();
  SECTION("wrong secret") {
    auto src = AadTokenSource::with_secret(env.emu.client(), env.clock, env.emu.tenant_id(), env.client_id, "wrong",
                                           env.options());
    auto t = env.run(*src);
    REQUIRE_FALSE(t);
    CHECK(t.error().status == 401);
    CHECK(t.error().code == "invalid_client");
    CHECK(t.error().aad_codes == std::vector<std::int64_t>{7000215});
    CHECK_FALSE(t.error().retryable);
    CHECK_THAT(t.error().describe(), !Catch::Contains("wrong"));
    CHECK(env.emu.count("aad-token") == 1);
  }
  SECTION("unknown application") {
    auto src = AadTokenSource::with_secret(env.emu.client(), env.clock, env.emu.tenant_id(), "unknown-app", "x",
                                           env.options());
    auto t = env.run(*src);
    REQUIRE_FALSE(t);
    CHECK(t.error().aad_codes == std::vector<std::int64_t>{700016});
  }
  SECTION("unknown tenant") {
    auto src = AadTokenSource::with_secret(env.emu.client(), env.clock, "no-such-tenant.example", env.client_id,
                                           env.secret, env.options());
    auto t = env.run(*src);
    REQUIRE_FALSE(t);
    CHECK(t.error().status == 400);
    CHECK(t.error().aad_codes == std::vector<std::int64_t>{90002});
  }
  SECTION("5xx and 429 are retried") {
    env.emu.post("/admin/faults", {{"target", "aad-token"}, {"kind", "status"}, {"status", 503}, {"count", 1}});
    env.emu.post("/admin/faults", {{"target", "aad-token"}, {"kind", "throttle"}, {"retryAfter", 2}, {"count", 1}});
    auto src = AadTokenSource::with_secret(env.emu.client(), env.clock, env.emu.tenant_id(), env.client_id,
                                           env.secret, env.options());
    auto t = env.run(*src);
    REQUIRE(t);
    CHECK(env.emu.count("aad-token") == 3);
    REQUIRE(env.clock.sleeps.size() == 2);
    CHECK(env.clock.sleeps[1] >= 2000ms);  // Retry-After honoured
  }
}

TEST_CASE("AAD auxiliary tenants: primary first, one token per auxiliary tenant") {
  AadEnv env;
  env.register_sp();
  std::string aux1 = "11111111-2222-3333-4444-555555555555", aux2 = "66666666-7777-8888-9999-000000000000";
  env.register_sp({{"tenantId", aux1}});
  env.register_sp({{"tenantId", aux2}});
  auto o = env.options();
  o.auxiliary_tenants = {aux1, aux2};
  auto src = AadTokenSource::with_secret(env.emu.client(), env.clock, env.emu.tenant_id(), env.client_id, env.secret, o);
  auto tokens = env.emu.run(src->get_tokens(kArm));
  REQUIRE(tokens);
  REQUIRE(tokens->size() == 3);
  CHECK(jwt_claims((*tokens)[0].access_token).at("tid").as_string() == env.emu.tenant_id());
  CHECK(jwt_claims((*tokens)[1].access_token).at("tid").as_string() == aux1);
  CHECK(jwt_claims((*tokens)[2].access_token).at("tid").as_string() == aux2);

  o.auxiliary_tenants = {aux1, "99999999-0000-0000-0000-000000000000"};
  auto bad = AadTokenSource::with_secret(env.emu.client(), env.clock, env.emu.tenant_id(), env.client_id, env.secret, o);
  auto failed = env.emu.run(bad->get_tokens(kArm));
  REQUIRE_FALSE(failed);
  CHECK_THAT(failed.error().message, Catch::Contains("auxiliary tenant 99999999"));
}

TEST_CASE("AAD certificate: assertions verified by the emulator (PEM, PKCS#12, RS256, PS256)") {
  AadEnv env;
  auto rsa = test::make_sp_certificate(test::KeyKind::rsa);
  env.register_sp({{"certificate", rsa.cert_pem}});
  struct Row {
    const char* name;
    Result<ClientCertificate> cert;
    AssertionAlgorithm alg;
  };
  std::vector<Row> rows;
  rows.push_back({"PEM RS256", ClientCertificate::load(rsa.cert_pem + rsa.key_pem), AssertionAlgorithm::rs256});
  rows.push_back({"PEM PS256", ClientCertificate::load(rsa.key_pem + rsa.cert_pem), AssertionAlgorithm::ps256});
  rows.push_back({"PEM encrypted key", ClientCertificate::load(rsa.cert_pem + rsa.key_pem_encrypted, rsa.password),
                  AssertionAlgorithm::automatic});
  rows.push_back({"PKCS#12 with password", ClientCertificate::load(rsa.pkcs12, rsa.password), AssertionAlgorithm::rs256});
  rows.push_back({"PKCS#12 without password", ClientCertificate::load(rsa.pkcs12_no_password),
                  AssertionAlgorithm::ps256});
  for (auto& row : rows) {
    INFO(row.name);
    REQUIRE(row.cert);
    auto o = env.options();
    o.algorithm = row.alg;
    auto src = AadTokenSource::with_certificate(env.emu.client(), env.clock, env.emu.tenant_id(), env.client_id,
                                                *row.cert, o);
    auto t = env.run(*src);
    REQUIRE(t);
    CHECK(jwt_claims(t->access_token).at("appidacr").as_string() == "2");
  }
}

TEST_CASE("AAD certificate: unregistered certificate and EC keys are refused with AAD's codes") {
  AadEnv env;
  auto registered = test::make_sp_certificate(test::KeyKind::rsa, "registered");
  auto other = test::make_sp_certificate(test::KeyKind::rsa, "other");
  auto ec = test::make_sp_certificate(test::KeyKind::ec, "ec");
  env.register_sp({{"certificates", json::array{registered.cert_pem, ec.cert_pem}}});

  auto other_cert = ClientCertificate::load(other.cert_pem + other.key_pem);
  REQUIRE(other_cert);
  auto src = AadTokenSource::with_certificate(env.emu.client(), env.clock, env.emu.tenant_id(), env.client_id,
                                              *other_cert, env.options());
  auto t = env.run(*src);
  REQUIRE_FALSE(t);
  CHECK(t.error().status == 401);
  CHECK(t.error().aad_codes == std::vector<std::int64_t>{700027});

  auto ec_cert = ClientCertificate::load(ec.cert_pem + ec.key_pem);
  REQUIRE(ec_cert);
  CHECK(ec_cert->is_ec());
  auto ec_src = AadTokenSource::with_certificate(env.emu.client(), env.clock, env.emu.tenant_id(), env.client_id,
                                                 *ec_cert, env.options());
  auto e = env.run(*ec_src);
  REQUIRE_FALSE(e);  // AAD accepts RS256/PS256 only
  CHECK(e.error().status == 400);
  CHECK_THAT(e.error().message, Catch::Contains("ES256"));
}

TEST_CASE("AAD certificate: an assertion that is not yet valid is refused (clock injected)") {
  AadEnv env;
  auto rsa = test::make_sp_certificate(test::KeyKind::rsa);
  env.register_sp({{"certificate", rsa.cert_pem}});
  env.clock.advance(std::chrono::hours(2));  // our clock runs ahead: nbf in the emulator's future
  auto cert = ClientCertificate::load(rsa.cert_pem + rsa.key_pem);
  REQUIRE(cert);
  auto src = AadTokenSource::with_certificate(env.emu.client(), env.clock, env.emu.tenant_id(), env.client_id, *cert,
                                              env.options());
  auto t = env.run(*src);
  REQUIRE_FALSE(t);
  CHECK(t.error().aad_codes == std::vector<std::int64_t>{700024});
}
