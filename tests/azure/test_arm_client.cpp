// ARM compute client and the identity updater against the Azure emulator: GET/PATCH of VMs and
// scale sets, every LRO shape, 429 per direction, error bodies, retriable identity errors.
#include "catch_azure.hpp"

#include <boost/json.hpp>
#include <set>

#include "azure/aad_token_source.hpp"
#include "azure/arm_client.hpp"
#include "azure/credentials.hpp"
#include "azure/identity_updater.hpp"
#include "emulator_fixture.hpp"
#include "fake_clock.hpp"

using namespace aad;
using namespace aad::azure;
using namespace std::chrono_literals;
namespace json = boost::json;
using verb = boost::beast::http::verb;

namespace {

struct ArmEnv {
  test::AzureEmulator& emu = test::AzureEmulator::shared();
  test::FakeClock clock{SystemTime(std::chrono::system_clock::now())};
  std::string client_id = "0b6c3e2a-1f4d-4c8b-9a7e-6d5c4b3a2f1e";
  std::unique_ptr<AadTokenSource> tokens;
  std::unique_ptr<ArmComputeClient> arm;
  ComputeRef vm, vmss;

  explicit ArmEnv(std::string audience = "https://management.azure.com/") {
    emu.reset();
    emu.post("/admin/service-principals", {{"clientId", client_id}, {"secret", "arm-secret"}});
    AadOptions ao;
    ao.authority_host = emu.url() + "/";
    tokens = AadTokenSource::with_secret(emu.client(), clock, emu.tenant_id(), client_id, "arm-secret", ao);
    ArmOptions o;
    o.base_url = emu.url();
    o.audience = audience;
    arm = std::make_unique<ArmComputeClient>(emu.client(), *tokens, clock, o);
    vm = {ComputeRef::Kind::vm, emu.subscription_id(), "MC_rg", "node1", ""};
    vmss = {ComputeRef::Kind::vmss, emu.subscription_id(), "MC_rg", "aks-pool-vmss", "0"};
  }
  std::string identity(const std::string& name, json::object extra = {}) {
    json::object spec{{"resourceGroup", "ids"}, {"name", name}};
    for (auto& kv : extra) spec[kv.key()] = kv.value();
    return json::value_to<std::string>(emu.post("/admin/identities", spec).as_object().at("resourceId"));
  }
  void make_vm(json::array ids, bool system = false) {
    emu.post("/admin/vms", {{"resourceGroup", "MC_rg"}, {"name", "node1"}, {"systemAssigned", system},
                            {"userAssignedIdentities", ids}});
  }
  void make_vmss(json::array ids, bool system = false) {
    emu.post("/admin/vmss", {{"resourceGroup", "MC_rg"}, {"name", "aks-pool-vmss"}, {"capacity", 2},
                             {"systemAssigned", system}, {"userAssignedIdentities", ids}});
  }
  // Lower-cased ids assigned to the resource, as the emulator sees them.
  std::set<std::string> assigned(const ComputeRef& ref) {
    auto view = emu.admin(verb::get, "/admin/resource?id=" + ref.arm_path()).as_object();
    std::set<std::string> out;
    for (const auto& u : view.at("userAssignedIdentities").as_array())
      out.insert(to_lower(json::value_to<std::string>(u.as_object().at("resourceId"))));
    return out;
  }
  std::string identity_type(const ComputeRef& ref) {
    auto view = emu.admin(verb::get, "/admin/resource?id=" + ref.arm_path()).as_object();
    return json::value_to<std::string>(view.at("identityType"));
  }
  UpdateResult update(const ComputeRef& ref, std::vector<std::string> add, std::vector<std::string> remove,
                      UpdateOptions o = {}) {
    return emu.run(update_user_identities(*arm, clock, ref, std::move(add), std::move(remove), o));
  }
  static std::string to_lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
};

}  // namespace

TEST_CASE("ARM GET: VM and VMSS identity blocks parsed") {
  ArmEnv env;
  auto a = env.identity("id-a");
  env.make_vm(json::array{a}, true);
  env.make_vmss(json::array{});
  auto vm = env.emu.run(env.arm->get(env.vm));
  REQUIRE(vm);
  CHECK(vm->provisioning_state == "Succeeded");
  REQUIRE(vm->identity);
  CHECK(vm->identity->type == "SystemAssigned, UserAssigned");
  CHECK_FALSE(vm->identity->principal_id.empty());
  REQUIRE(vm->identity->user_assigned.size() == 1);
  CHECK(ArmEnv::to_lower(vm->identity->user_assigned[0].resource_id) == ArmEnv::to_lower(a));
  CHECK_FALSE(vm->identity->user_assigned[0].client_id.empty());
  auto ss = env.emu.run(env.arm->get(env.vmss));
  REQUIRE(ss);
  CHECK(ss->current_identity().user_assigned.empty());
  CHECK(env.arm->stats().token_fetches == 1);  // the bearer token is reused
}

TEST_CASE("ARM GET: 404 error bodies parsed") {
  ArmEnv env;
  auto no_group = env.emu.run(env.arm->get(env.vm));
  REQUIRE_FALSE(no_group);
  CHECK(no_group.error().status == 404);
  CHECK(no_group.error().code == "ResourceGroupNotFound");
  CHECK_THAT(no_group.error().message, Catch::Contains("MC_rg"));
  env.emu.post("/admin/vms", {{"resourceGroup", "MC_rg"}, {"name", "another-node"}});
  auto r = env.emu.run(env.arm->get(env.vm));
  REQUIRE_FALSE(r);
  CHECK(r.error().status == 404);
  CHECK(r.error().code == "ResourceNotFound");
  CHECK_THAT(r.error().message, Catch::Contains("node1"));
}

TEST_CASE("ARM: token for the wrong audience is refused by ARM") {
  ArmEnv env("https://vault.azure.net/");
  env.make_vm(json::array{});
  auto r = env.emu.run(env.arm->get(env.vm));
  REQUIRE_FALSE(r);
  CHECK(r.error().status == 401);
  CHECK(r.error().code == "InvalidAuthenticationTokenAudience");
}

TEST_CASE("ARM PATCH: every long-running operation shape completes") {
  struct Row {
    const char* name;
    const char* lro;
  };
  for (auto row : {Row{"async 200 Updating", R"({"mode":"async","initialStatus":200,"pollsUntilDone":2})"},
                   Row{"async 201", R"({"mode":"async","initialStatus":201})"},
                   Row{"async 202", R"({"mode":"async","initialStatus":202,"pollsUntilDone":3})"},
                   Row{"location 202", R"({"mode":"location","pollsUntilDone":2})"},
                   Row{"synchronous 200", R"({"mode":"sync"})"}}) {
    INFO(row.name);
    ArmEnv env;
    env.emu.admin(verb::patch, "/admin/settings", json::parse(std::string(R"({"arm":{"lro":)") + row.lro + "}}"));
    auto keep = env.identity("keep"), a = env.identity("id-a"), b = env.identity("id-b");
    env.make_vm(json::array{keep, b});
    auto r = env.update(env.vm, {a}, {b});
    CHECK(r.ok());
    CHECK(r.patches == 1);
    CHECK(env.assigned(env.vm) == std::set<std::string>{ArmEnv::to_lower(keep), ArmEnv::to_lower(a)});
    CHECK(env.emu.count("arm-patch") == 1);
    if (std::string(row.lro).find("sync") == std::string::npos) CHECK(env.emu.count("arm-poll") >= 1);
  }
}

TEST_CASE("ARM PATCH: Retry-After of the operation is slept on the injected clock") {
  ArmEnv env;
  env.emu.admin(verb::patch, "/admin/settings", json::parse(R"({"arm":{"lro":{"retryAfter":7,"pollsUntilDone":2}}})"));
  auto a = env.identity("id-a");
  env.make_vm(json::array{});
  auto r = env.update(env.vm, {a}, {});
  CHECK(r.ok());
  REQUIRE_FALSE(env.clock.sleeps.empty());
  for (auto s : env.clock.sleeps) CHECK(s == 7000ms);
}

TEST_CASE("ARM PATCH: an operation that ends Failed reports its error and nothing changes") {
  ArmEnv env;
  auto a = env.identity("id-a");
  env.make_vm(json::array{});
  env.emu.post("/admin/faults", {{"target", "arm-patch"}, {"kind", "lro-failed"}, {"code", "InternalOperationError"},
                                 {"message", "something broke"}});
  auto r = env.update(env.vm, {a}, {});
  REQUIRE(r.failed.size() == 1);
  CHECK(r.failed[0].second.code == "InternalOperationError");
  CHECK(r.failed[0].second.message == "something broke");
  CHECK(env.assigned(env.vm).empty());
}

TEST_CASE("ARM: system-assigned and untouched identities survive; removing the last keeps SystemAssigned") {
  ArmEnv env;
  auto manual = env.identity("manual"), a = env.identity("id-a");
  env.make_vmss(json::array{manual, a}, true);
  auto r = env.update(env.vmss, {}, {a});
  CHECK(r.ok());
  CHECK(env.assigned(env.vmss) == std::set<std::string>{ArmEnv::to_lower(manual)});
  CHECK(env.identity_type(env.vmss) == "SystemAssigned, UserAssigned");
  auto last = env.update(env.vmss, {}, {manual});
  CHECK(last.ok());
  CHECK(env.assigned(env.vmss).empty());
  CHECK(env.identity_type(env.vmss) == "SystemAssigned");
}

TEST_CASE("ARM: removing the only identity of a VM gives type None") {
  ArmEnv env;
  auto a = env.identity("id-a");
  env.make_vm(json::array{a});
  auto r = env.update(env.vm, {}, {ArmEnv::to_lower(a)});
  CHECK(r.ok());
  CHECK(env.identity_type(env.vm) == "None");
}

TEST_CASE("ARM: nothing to change -> no PATCH; Deleting -> no PATCH") {
  ArmEnv env;
  auto a = env.identity("Id-A");
  env.make_vm(json::array{a});
  auto r = env.update(env.vm, {ArmEnv::to_lower(a)}, {env.identity("absent")});
  CHECK(r.ok());
  CHECK(env.emu.count("arm-patch") == 0);
  CHECK(env.emu.count("arm-get") == 1);

  env.emu.admin(verb::patch, "/admin/resource?id=" + env.vm.arm_path(), {{"provisioningState", "Deleting"}});
  auto d = env.update(env.vm, {env.identity("new")}, {});
  REQUIRE(d.failed.size() == 1);
  CHECK(d.failed[0].second.kind == Error::Kind::deleting);
  CHECK(env.emu.count("arm-patch") == 0);
}

TEST_CASE("ARM: more than 150 identities go out in PATCHes of at most 150") {
  ArmEnv env;
  json::array ids;
  for (int i = 0; i < 170; ++i) ids.push_back(json::object{{"resourceGroup", "ids"}, {"name", "bulk" + std::to_string(i)}});
  env.emu.post("/admin/state", {{"identities", ids}});
  env.make_vmss(json::array{});
  std::vector<std::string> add;
  for (int i = 0; i < 170; ++i)
    add.push_back("/subscriptions/" + env.emu.subscription_id() +
                  "/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/bulk" + std::to_string(i));
  auto r = env.update(env.vmss, add, {});
  CHECK(r.ok());
  CHECK(r.added.size() == 170);
  CHECK(r.patches == 2);
  CHECK(env.emu.count("arm-patch") == 2);
  CHECK(env.assigned(env.vmss).size() == 170);
}

TEST_CASE("ARM: LinkedAuthorizationFailed and FailedIdentityOperation drop the named ids, the rest is assigned") {
  ArmEnv env;
  auto good1 = env.identity("good1"), good2 = env.identity("good2");
  auto denied = env.identity("denied", {{"assignDenied", true}});
  std::string missing = "/subscriptions/" + env.emu.subscription_id() +
                        "/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/does-not-exist";
  env.make_vmss(json::array{});
  UpdateOptions o;
  o.retry_interval = 100ms;
  auto r = env.update(env.vmss, {good1, denied, missing, good2}, {}, o);
  CHECK(r.added.size() == 2);
  REQUIRE(r.failed.size() == 2);
  REQUIRE(r.error_for(denied));
  CHECK(r.error_for(denied)->code == "LinkedAuthorizationFailed");
  CHECK(r.error_for(denied)->status == 403);
  REQUIRE(r.error_for(missing));
  CHECK(r.error_for(missing)->code == "FailedIdentityOperation");
  CHECK(env.assigned(env.vmss) == std::set<std::string>{ArmEnv::to_lower(good1), ArmEnv::to_lower(good2)});
  CHECK(r.patches == 3);
}

TEST_CASE("ARM: injected linked-authorization-failed / failed-identity-operation faults") {
  for (std::string kind : {"linked-authorization-failed", "failed-identity-operation"}) {
    INFO(kind);
    ArmEnv env;
    auto a = env.identity("a"), b = env.identity("b");
    env.make_vm(json::array{});
    env.emu.post("/admin/faults", {{"target", "arm-patch"}, {"kind", kind}, {"identities", json::array{b}}});
    auto r = env.update(env.vm, {a, b}, {});
    CHECK(r.added == std::vector<std::string>{ArmEnv::to_lower(a)});
    REQUIRE(r.failed.size() == 1);
    CHECK(r.failed[0].first == ArmEnv::to_lower(b));
    CHECK(env.assigned(env.vm) == std::set<std::string>{ArmEnv::to_lower(a)});
  }
}

TEST_CASE("ARM: 429 Retry-After blocks that direction only, until it expires") {
  ArmEnv env;
  auto a = env.identity("a");
  env.make_vm(json::array{});
  env.emu.post("/admin/faults", {{"target", "arm-get"}, {"kind", "throttle"}, {"retryAfter", 30}, {"count", 1}});
  auto first = env.emu.run(env.arm->get(env.vm));
  REQUIRE_FALSE(first);
  CHECK(first.error().status == 429);
  CHECK(first.error().code == "OperationNotAllowed");
  REQUIRE(first.error().retry_after);
  CHECK(*first.error().retry_after == 30s);

  auto second = env.emu.run(env.arm->get(env.vm));  // refused locally
  REQUIRE_FALSE(second);
  CHECK(second.error().kind == Error::Kind::throttled);
  CHECK(env.emu.count("arm-get") == 1);

  // Writes are another direction: a PATCH still goes out.
  IdentityPatch p;
  p.type = "UserAssigned";
  p.entries = {{ArmEnv::to_lower(a), true}};
  auto patched = env.emu.run(env.arm->patch_identity(env.vm, p));
  CHECK(patched);
  CHECK(env.emu.count("arm-patch") == 1);

  env.clock.advance(29s);
  CHECK_FALSE(env.emu.run(env.arm->get(env.vm)));
  CHECK(env.emu.count("arm-get") == 1);
  env.clock.advance(2s);
  CHECK(env.emu.run(env.arm->get(env.vm)));
  CHECK(env.emu.count("arm-get") == 2);
}

TEST_CASE("ARM: throttled PATCH blocks writes; updater reports the throttle for every id") {
  ArmEnv env;
  auto a = env.identity("a");
  env.make_vm(json::array{});
  env.emu.post("/admin/faults", {{"target", "arm-patch"}, {"kind", "throttle"}, {"retryAfter", 60}, {"count", 1}});
  auto r = env.update(env.vm, {a}, {});
  REQUIRE(r.failed.size() == 1);
  CHECK(r.failed[0].second.status == 429);
  auto again = env.update(env.vm, {a}, {});
  REQUIRE(again.failed.size() == 1);
  CHECK(again.failed[0].second.kind == Error::Kind::throttled);
  CHECK(env.emu.count("arm-patch") == 1);
  CHECK(env.emu.count("arm-get") == 2);  // reads were not blocked
}

TEST_CASE("ARM: 5xx on GET is reported with its status") {
  ArmEnv env;
  env.make_vm(json::array{});
  env.emu.post("/admin/faults", {{"target", "arm-get"}, {"kind", "status"}, {"status", 503}, {"count", 1}});
  auto r = env.emu.run(env.arm->get(env.vm));
  REQUIRE_FALSE(r);
  CHECK(r.error().status == 503);
  CHECK(r.error().retryable);
}

TEST_CASE("ARM: a slow ARM answer hits the request timeout (transport error, retryable)") {
  ArmEnv env;
  env.make_vm(json::array{});
  ArmOptions o;
  o.base_url = env.emu.url();
  o.request_timeout = 300ms;
  ArmComputeClient arm(env.emu.client(), *env.tokens, env.clock, o);
  env.emu.post("/admin/faults", {{"target", "arm-get"}, {"kind", "latency"}, {"latencyMs", 2000}, {"count", 1}});
  auto r = env.emu.run(arm.get(env.vm));
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == Error::Kind::transport);
  CHECK(r.error().retryable);
  CHECK(env.emu.run(env.arm->get(env.vm)));  // the next call (default timeout) is answered
}

TEST_CASE("ARM: the bearer token is reused until shortly before it expires (injected clock)") {
  ArmEnv env;
  env.make_vm(json::array{});
  REQUIRE(env.emu.run(env.arm->get(env.vm)));
  REQUIRE(env.emu.run(env.arm->get(env.vm)));
  CHECK(env.arm->stats().token_fetches == 1);
  env.clock.advance(std::chrono::minutes(56));  // AAD tokens live 3599 s; 5 min margin
  REQUIRE(env.emu.run(env.arm->get(env.vm)));
  CHECK(env.arm->stats().token_fetches == 2);
  CHECK(env.emu.count("aad-token") == 2);
}

TEST_CASE("credentials from the cloud config: managed identity and service principal reach ARM") {
  ArmEnv env;
  auto a = env.identity("mic-identity");
  env.make_vm(json::array{a});
  env.emu.admin(verb::put, "/admin/imds", {{"vm", "vm/node1"}});
  auto client_id = json::value_to<std::string>(
      env.emu.admin(verb::get, "/admin/resource?id=" + env.vm.arm_path())
          .as_object()
          .at("userAssignedIdentities")
          .as_array()
          .at(0)
          .as_object()
          .at("clientId"));
  EndpointOverrides o{env.emu.url(), "", env.emu.url(), env.emu.url()};

  auto mi = parse_cloud_config(R"({"cloud":"AzurePublicCloud","subscriptionId":"s","resourceGroup":"MC_rg",
      "useManagedIdentityExtension":true,"userAssignedIdentityID":")" + client_id + "\"}", "azure.json");
  REQUIRE(mi);
  auto sp = parse_cloud_config(R"({"cloud":"AzurePublicCloud","subscriptionId":"s","resourceGroup":"MC_rg",
      "tenantId":")" + env.emu.tenant_id() + R"(","aadClientId":")" + env.client_id + R"(","aadClientSecret":"arm-secret"})",
                               "azure.json");
  REQUIRE(sp);
  for (const auto* config : {&*mi, &*sp}) {
    auto endpoints = resolve_endpoints(*config, o);
    REQUIRE(endpoints);
    auto source = make_arm_token_source(*config, *endpoints, env.emu.client(), env.clock);
    REQUIRE(source);
    ArmOptions ao;
    ao.base_url = endpoints->arm_base_url;
    ao.audience = endpoints->arm_audience;
    ArmComputeClient arm(env.emu.client(), **source, env.clock, ao);
    auto vm = env.emu.run(arm.get(env.vm));
    REQUIRE(vm);
    CHECK(vm->name == "node1");
  }
  CHECK(env.emu.count("imds-token", "200") == 1);
}

namespace {

// Hands out an expired (but otherwise valid) ARM token first, then real ones from AAD.
class ExpiredFirst final : public TokenSource {
 public:
  ExpiredFirst(test::AzureEmulator& emu, TokenSource& real, Clock& clock) : emu_(emu), real_(real), clock_(clock) {}
  boost::asio::awaitable<Result<Token>> get_token(const std::string& resource, const Cancellation& cancel) override {
    if (calls_++ == 0) {
      Token t;
      t.access_token = expired_;
      t.expires_on = clock_.now() + std::chrono::hours(1);  // looks fresh to the client
      co_return t;
    }
    auto r = co_await real_.get_token(resource, cancel);
    co_return r;
  }
  std::string describe() const override { return "expired-first"; }
  void prepare() {
    expired_ = json::value_to<std::string>(
        emu_.post("/admin/tokens", {{"aud", "https://management.azure.com/"}, {"expiresIn", -600}})
            .as_object()
            .at("access_token"));
  }
  int calls_ = 0;

 private:
  test::AzureEmulator& emu_;
  TokenSource& real_;
  Clock& clock_;
  std::string expired_;
};

}  // namespace

TEST_CASE("ARM: a cached token refused with 401 is replaced once and the call repeated") {
  ArmEnv env;
  env.make_vm(json::array{});
  ArmOptions o;
  o.base_url = env.emu.url();
  SECTION("a token fetched for this very call and refused: final, no loop") {
    ExpiredFirst tokens(env.emu, *env.tokens, env.clock);
    tokens.prepare();
    ArmComputeClient arm(env.emu.client(), tokens, env.clock, o);
    auto first = env.emu.run(arm.get(env.vm));
    REQUIRE_FALSE(first);
    CHECK(first.error().status == 401);
    CHECK(first.error().code == "ExpiredAuthenticationToken");
    CHECK(tokens.calls_ == 1);
    CHECK(env.emu.count("arm-get") == 1);
  }
  SECTION("a cached token refused: one refresh, the call succeeds") {
    ExpiredFirst tokens(env.emu, *env.tokens, env.clock);
    tokens.prepare();
    ArmComputeClient arm(env.emu.client(), tokens, env.clock, o);
    // The expired token is fetched and cached by a call that fails for another reason.
    env.emu.post("/admin/faults", {{"target", "arm-get"}, {"kind", "status"}, {"status", 503}, {"count", 1}});
    auto first = env.emu.run(arm.get(env.vm));
    REQUIRE_FALSE(first);
    CHECK(first.error().status == 503);
    auto second = env.emu.run(arm.get(env.vm));
    REQUIRE(second);
    CHECK(tokens.calls_ == 2);
    CHECK(env.emu.count("arm-get", "401") == 1);
    CHECK(env.emu.count("arm-get", "200") == 1);
  }
}
