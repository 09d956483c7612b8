// Per VM/VMSS plan: AAI writes and the ARM add/remove lists, with the removal safety rules.
#include <catch2/catch.hpp>

#include "identity/mic/desired_state.hpp"
#include "identity/mic/plan.hpp"
#include "model_builders.hpp"

using namespace aad;
using namespace aad::identity::mic;
using namespace aad::test::mic;

namespace {

std::string low(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Pods, identities and bindings for one VMSS; desired() and "stored" AAIs from them.
struct Vmss {
  std::vector<kube::Pod> pods;
  std::vector<kube::AzureIdentityBinding> bindings;
  std::vector<kube::AzureIdentity> identities;

  std::vector<kube::AzureAssignedIdentity> desired() const {
    DesiredInputs in;
    for (const auto& p : pods) in.pods.push_back(&p);
    for (const auto& b : bindings) in.bindings.push_back(&b);
    for (const auto& i : identities) in.identities.push_back(&i);
    std::vector<kube::AzureAssignedIdentity> out;
    for (auto& [k, a] : desired_assignments(in).assignments) out.push_back(a);
    return out;
  }
  std::vector<kube::AzureAssignedIdentity> stored(const std::string& status = "Assigned") const {
    auto out = desired();
    for (auto& a : out) {
      a.status = status;
      a.meta.resource_version = "100";
      a.meta.uid = "uid-" + a.meta.name;
    }
    return out;
  }
};

Vmss one_identity_two_pods() {
  Vmss v;
  v.identities = {make_identity("default", "id1")};
  v.bindings = {make_binding("default", "b1", "id1", "sel")};
  v.pods = {make_pod("default", "p1", "node-0", "sel"), make_pod("default", "p2", "node-1", "sel")};
  return v;
}

}  // namespace

TEST_CASE("plan: new pods -> creates and one add, nothing else") {
  auto v = one_identity_two_pods();
  auto p = plan_assignments({v.desired(), {}, {}, false});
  CHECK(p.create.size() == 2);
  CHECK(p.update.empty());
  CHECK(p.remove.empty());
  CHECK(p.add_ids == std::vector<std::string>{low(uami_id("id1"))});
  CHECK(p.remove_ids.empty());
}

TEST_CASE("plan: steady state (resync) -> nothing at all") {
  auto v = one_identity_two_pods();
  auto current = v.stored();
  current[0].meta.resource_version = "999";
  current[0].azure_identity_ref->meta.resource_version = "555";  // identity touched, spec same
  auto p = plan_assignments({v.desired(), current, {}, false});
  CHECK(p.writes_nothing());
  CHECK(p.add_ids.empty());
  CHECK(p.remove_ids.empty());
  CHECK(p.verify.empty());
}

TEST_CASE("plan: drift check asks ARM for the Assigned identities without rewriting") {
  auto v = one_identity_two_pods();
  auto p = plan_assignments({v.desired(), v.stored(), {}, true});
  CHECK(p.writes_nothing());
  CHECK(p.verify.size() == 2);
  CHECK(p.add_ids == std::vector<std::string>{low(uami_id("id1"))});
}

TEST_CASE("plan: Created AAIs are retried") {
  auto v = one_identity_two_pods();
  auto p = plan_assignments({v.desired(), v.stored("Created"), {}, false});
  CHECK(p.retry.size() == 2);
  CHECK(p.create.empty());
  CHECK(p.add_ids.size() == 1);
}

TEST_CASE("plan: removing one of two pods sharing an identity keeps it on the VMSS") {
  auto v = one_identity_two_pods();
  auto current = v.stored();
  v.pods.pop_back();
  auto p = plan_assignments({v.desired(), current, {}, false});
  REQUIRE(p.remove.size() == 1);
  CHECK(p.remove[0].pod == "p2");
  CHECK(p.remove_ids.empty());
  // The last one goes: the identity goes too.
  v.pods.clear();
  p = plan_assignments({v.desired(), current, {}, false});
  CHECK(p.remove.size() == 2);
  CHECK(p.remove_ids == std::vector<std::string>{low(uami_id("id1"))});
}

TEST_CASE("plan: a same-named pod in another namespace still needs the identity") {
  Vmss v;
  v.identities = {make_identity("default", "id1")};
  v.bindings = {make_binding("default", "b1", "id1", "sel")};
  v.pods = {make_pod("ns-a", "web", "node-0", "sel"), make_pod("ns-b", "web", "node-1", "sel")};
  auto current = v.stored();
  v.pods.erase(v.pods.begin());
  auto p = plan_assignments({v.desired(), current, {}, false});
  CHECK(p.remove.size() == 1);
  CHECK(p.remove_ids.empty());
}

TEST_CASE("plan: immutable (case-insensitive) and cluster identities are never removed") {
  auto v = one_identity_two_pods();
  v.identities[0].client_id = "AbC-Client";
  auto current = v.stored();
  v.pods.clear();
  auto p = plan_assignments({v.desired(), current, {"abc-client"}, false});
  CHECK(p.remove.size() == 2);
  CHECK(p.remove_ids.empty());
}

TEST_CASE("plan: identities found on the VM before MIC are never removed") {
  auto v = one_identity_two_pods();
  auto current = v.stored();
  current[1].meta.annotations[std::string(kFoundOnVmAnnotation)] = "true";
  v.pods.clear();
  auto p = plan_assignments({v.desired(), current, {}, false});
  CHECK(p.remove.size() == 2);
  CHECK(p.remove_ids.empty());
}

TEST_CASE("plan: only Assigned (or legacy empty) type-0 AAIs lead to removal") {
  Vmss v;
  v.identities = {make_identity("default", "uami"), make_identity("default", "sp", 1)};
  v.bindings = {make_binding("default", "b1", "uami", "sel"), make_binding("default", "b2", "sp", "sel")};
  v.pods = {make_pod("default", "p", "n", "sel")};
  SECTION("Created: never assigned, nothing to remove") {
    auto current = v.stored("Created");
    auto p = plan_assignments({{}, current, {}, false});
    CHECK(p.remove.size() == 2);
    CHECK(p.remove_ids.empty());
  }
  SECTION("legacy empty status counts as Assigned") {
    auto current = v.stored("");
    auto p = plan_assignments({{}, current, {}, false});
    CHECK(p.remove_ids == std::vector<std::string>{low(uami_id("uami"))});
  }
}

TEST_CASE("plan: identity edited to another Azure identity -> update, new added, old removed") {
  auto v = one_identity_two_pods();
  auto current = v.stored();
  v.identities[0].resource_id = uami_id("id2");
  v.identities[0].client_id = "client-id2";
  auto p = plan_assignments({v.desired(), current, {}, false});
  REQUIRE(p.update.size() == 2);
  CHECK(p.update[0].after.meta.resource_version == "100");  // PUT on the stored object
  CHECK(p.update[0].after.azure_identity_ref->resource_id == uami_id("id2"));
  CHECK(p.add_ids == std::vector<std::string>{low(uami_id("id2"))});
  CHECK(p.remove_ids == std::vector<std::string>{low(uami_id("id1"))});
}

TEST_CASE("plan: pod moved to another node of the VMSS -> update of the nodename label") {
  auto v = one_identity_two_pods();
  auto current = v.stored();
  v.pods[0].node_name = "node-1";
  auto p = plan_assignments({v.desired(), current, {}, false});
  REQUIRE(p.update.size() == 1);
  CHECK(p.update[0].after.meta.labels.at("nodename") == "node-1");
  CHECK(p.update[0].after.node_name == "node-1");
  CHECK(p.remove_ids.empty());  // still needed by the moved pod
}

TEST_CASE("plan: a terminating AAI is finished first and the new one waits") {
  auto v = one_identity_two_pods();
  auto current = v.stored();
  current[0].meta.deletion_timestamp = "2026-01-01T00:00:00Z";
  auto p = plan_assignments({v.desired(), current, {}, false});
  CHECK(p.requeue);
  REQUIRE(p.remove.size() == 1);
  CHECK(p.create.empty());
  CHECK(p.remove_ids.empty());
}

TEST_CASE("identity_found_on_vm: present before and not held by MIC for another pod") {
  auto v = one_identity_two_pods();
  auto current = v.stored();
  auto id = low(uami_id("id1"));
  CHECK_FALSE(identity_found_on_vm(id, {}, {}, "x"));
  CHECK(identity_found_on_vm(id, {id}, {}, "x"));
  CHECK_FALSE(identity_found_on_vm(id, {id}, current, "x"));  // MIC assigned it for p1/p2
  CHECK(identity_found_on_vm(id, {id}, {current[0]}, current[0].key()));  // only itself
  current[0].meta.annotations[std::string(kFoundOnVmAnnotation)] = "true";
  CHECK(identity_found_on_vm(id, {id}, {current[0]}, "x"));  // held only by a found-on-vm AAI
}
