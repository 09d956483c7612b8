// update_user_identities against a hand-written ComputeClient fake: which calls are made and
// what is reported, without sockets.
#include "catch_azure.hpp"

#include <boost/asio/io_context.hpp>
#include <set>

#include "azure/identity_updater.hpp"
#include "fake_clock.hpp"
#include "support/async.hpp"

using namespace aad;
using namespace aad::azure;
using namespace std::chrono_literals;

namespace {

std::string uami(const std::string& name) {
  return "/subscriptions/sub/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name;
}
std::string low(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A VM in memory. PATCHes touching a "denied" id fail with LinkedAuthorizationFailed naming
// the denied ids it touched; "missing" ids fail with FailedIdentityOperation.
class FakeCompute final : public ComputeClient {
 public:
  ComputeResource vm;
  std::set<std::string> denied, missing;
  std::optional<Error> get_error, patch_error;
  std::vector<IdentityPatch> patches;
  int gets = 0;

  boost::asio::awaitable<Result<ComputeResource>> get(const ComputeRef&, const Cancellation&) override {
    ++gets;
    if (get_error) co_return *get_error;
    co_return vm;
  }
  boost::asio::awaitable<Result<void>> patch_identity(const ComputeRef&, const IdentityPatch& patch,
                                                      const Cancellation&) override {
    patches.push_back(patch);
    if (patch_error) co_return *patch_error;
    std::string bad_denied, bad_missing;
    for (const auto& id : patch.ids()) {
      if (denied.count(id)) bad_denied += (bad_denied.empty() ? "" : ",") + id;
      if (missing.count(id)) bad_missing += (bad_missing.empty() ? "" : ",") + id;
    }
    if (!bad_denied.empty()) {
      Error e;
      e.status = 403;
      e.code = "LinkedAuthorizationFailed";
      e.message = "... does not have permission to perform action 'Microsoft.ManagedIdentity/userAssignedIdentities/"
                  "assign/action' on the linked scope(s) '" + bad_denied + "' or the linked scope(s) are invalid.";
      co_return e;
    }
    if (!bad_missing.empty()) {
      Error e;
      e.status = 400;
      e.code = "FailedIdentityOperation";
      e.message = "Identity operation failed with error 'Resource '" + bad_missing + "' was not found.'";
      co_return e;
    }
    auto& ids = vm.identity->user_assigned;
    for (const auto& [id, add] : patch.entries) {
      if (add) ids.push_back({id, "p", "c"});
      else std::erase_if(ids, [&](const UserAssignedIdentity& u) { return low(u.resource_id) == id; });
    }
    if (patch.omit_map) ids.clear();
    vm.identity->type = patch.type;
    co_return Result<void>{};
  }
};

struct Env {
  boost::asio::io_context io;
  test::FakeClock clock;
  FakeCompute arm;
  ComputeRef ref{ComputeRef::Kind::vm, "sub", "rg", "vm0", ""};
  Env() {
    arm.vm.provisioning_state = "Succeeded";
    arm.vm.identity = ComputeIdentity{"UserAssigned", "", "", {{uami("Manual"), "p", "c"}}};
  }
  UpdateResult update(std::vector<std::string> add, std::vector<std::string> remove, UpdateOptions o = {}) {
    return test::run_async(io, update_user_identities(arm, clock, ref, std::move(add), std::move(remove), o));
  }
};

}  // namespace

TEST_CASE("updater: nothing requested -> no GET, no PATCH") {
  Env env;
  auto r = env.update({}, {});
  CHECK(r.ok());
  CHECK(env.arm.gets == 0);
  CHECK(env.arm.patches.empty());
}

TEST_CASE("updater: already in the desired state -> GET only, all reported as done") {
  Env env;
  auto r = env.update({uami("MANUAL")}, {uami("gone")});
  CHECK(r.ok());
  CHECK(env.arm.gets == 1);
  CHECK(env.arm.patches.empty());
  CHECK(r.added == std::vector<std::string>{low(uami("manual"))});
  CHECK(r.removed == std::vector<std::string>{low(uami("gone"))});
}

TEST_CASE("updater: Deleting VM is never patched") {
  Env env;
  env.arm.vm.provisioning_state = "Deleting";
  auto r = env.update({uami("a")}, {});
  CHECK(env.arm.patches.empty());
  REQUIRE(r.failed.size() == 1);
  CHECK(r.failed[0].second.kind == Error::Kind::deleting);
}

TEST_CASE("updater: GET failure fails every requested id with that error") {
  Env env;
  Error e;
  e.status = 429;
  e.code = "OperationNotAllowed";
  env.arm.get_error = e;
  auto r = env.update({uami("a"), uami("b")}, {uami("manual")});
  CHECK(r.failed.size() == 3);
  CHECK(r.error_for(uami("A"))->status == 429);
  CHECK(env.arm.patches.empty());
}

TEST_CASE("updater: LinkedAuthorizationFailed and FailedIdentityOperation drop the named ids, the rest succeed") {
  Env env;
  env.arm.denied = {low(uami("denied"))};
  env.arm.missing = {low(uami("missing1")), low(uami("missing2"))};
  UpdateOptions o;
  o.retry_interval = 250ms;
  auto r = env.update({uami("ok1"), uami("Denied"), uami("missing1"), uami("ok2"), uami("missing2")}, {uami("manual")}, o);
  CHECK(r.added == std::vector<std::string>{low(uami("ok1")), low(uami("ok2"))});
  CHECK(r.removed == std::vector<std::string>{low(uami("manual"))});
  REQUIRE(r.failed.size() == 3);
  CHECK(r.error_for(uami("denied"))->code == "LinkedAuthorizationFailed");
  CHECK(r.error_for(uami("missing1"))->code == "FailedIdentityOperation");
  CHECK(r.error_for(uami("missing2"))->code == "FailedIdentityOperation");
  CHECK(r.error_for(uami("ok1")) == nullptr);
  CHECK(r.patches == 3);  // denied dropped, then both missing dropped, then success
  CHECK(env.clock.sleeps == std::vector<Millis>{250ms, 250ms});
  std::set<std::string> on_vm;
  for (const auto& u : env.arm.vm.identity->user_assigned) on_vm.insert(low(u.resource_id));
  CHECK(on_vm == std::set<std::string>{low(uami("ok1")), low(uami("ok2"))});
}

TEST_CASE("updater: when every id is named, no further PATCH") {
  Env env;
  env.arm.denied = {low(uami("a"))};
  auto r = env.update({uami("a")}, {});
  CHECK(r.patches == 1);
  REQUIRE(r.failed.size() == 1);
  CHECK(r.added.empty());
}

TEST_CASE("updater: other PATCH errors fail everything pending, nothing retried") {
  Env env;
  Error e;
  e.status = 409;
  e.code = "Conflict";
  env.arm.patch_error = e;
  auto r = env.update({uami("a"), uami("b")}, {});
  CHECK(r.patches == 1);
  CHECK(r.failed.size() == 2);
  CHECK(env.clock.sleeps.empty());
}

TEST_CASE("updater: more than 150 changes go out as several PATCHes, each at most 150") {
  Env env;
  std::vector<std::string> add;
  for (int i = 0; i < 320; ++i) add.push_back(uami("id" + std::to_string(i)));
  auto r = env.update(add, {uami("manual")});
  CHECK(r.ok());
  CHECK(r.added.size() == 320);
  CHECK(r.removed.size() == 1);
  REQUIRE(env.arm.patches.size() == 3);
  for (const auto& p : env.arm.patches) CHECK(p.entries.size() <= 150);
  CHECK(env.arm.vm.identity->user_assigned.size() == 320);
}

TEST_CASE("updater: retries are bounded") {
  Env env;
  UpdateOptions o;
  o.max_retries = 1;
  env.arm.denied = {low(uami("d1"))};
  env.arm.missing = {low(uami("m1"))};
  auto r = env.update({uami("d1"), uami("m1"), uami("ok")}, {}, o);
  // first PATCH drops d1, the retry fails on m1, and no retry is left: m1 and ok fail.
  CHECK(r.patches == 2);
  CHECK(r.failed.size() == 3);
  CHECK(r.added.empty());
}
