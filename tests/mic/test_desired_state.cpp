// Desired AzureAssignedIdentities (behaviour reference 2.5): matching, namespaces, validation,
// naming, deterministic conflicts, and the comparison that keeps resyncs from rewriting AAIs.
#include <catch2/catch.hpp>

#include "identity/mic/desired_state.hpp"
#include "model_builders.hpp"

using namespace aad;
using namespace aad::identity::mic;
using namespace aad::test::mic;

namespace {

struct World {
  std::vector<kube::Pod> pods;
  std::vector<kube::AzureIdentityBinding> bindings;
  std::vector<kube::AzureIdentity> identities;
  bool force_namespaced = false;

  DesiredState desired() const {
    DesiredInputs in;
    for (const auto& p : pods) in.pods.push_back(&p);
    for (const auto& b : bindings) in.bindings.push_back(&b);
    for (const auto& i : identities) in.identities.push_back(&i);
    in.force_namespaced = force_namespaced;
    return desired_assignments(in);
  }
};

}  // namespace

TEST_CASE("desired: a labelled pod gets an AAI in default named pod-ns-identity") {
  World w;
  w.identities = {make_identity("team", "id1")};
  w.bindings = {make_binding("team", "b1", "id1", "sel")};
  w.pods = {make_pod("apps", "web", "node-a", "sel")};
  auto d = w.desired();
  REQUIRE(d.assignments.size() == 1);
  const auto& a = d.assignments.begin()->second;
  CHECK(d.assignments.begin()->first == "default/web-apps-id1");
  CHECK(a.meta.ns == "default");
  CHECK(a.meta.name == "web-apps-id1");
  CHECK(a.meta.labels == kube::StringMap{{"nodename", "node-a"}});
  CHECK(a.meta.finalizers == std::vector<std::string>{std::string(kAssignedFinalizer)});
  CHECK(a.pod == "web");
  CHECK(a.pod_namespace == "apps");
  CHECK(a.node_name == "node-a");
  CHECK(a.status.empty());
  CHECK(a.available_replicas == 1);
  REQUIRE(a.azure_identity_ref);
  CHECK(a.azure_identity_ref->meta.name == "id1");
  CHECK(a.azure_identity_ref->resource_id == uami_id("id1"));
  REQUIRE(a.azure_binding_ref);
  CHECK(a.azure_binding_ref->meta.name == "b1");
  // The embedded copies carry apiVersion and kind (the original's fix #1057).
  auto encoded = a.encode();
  auto& ref = encoded.at("spec").as_object().at("azureIdentityRef").as_object();
  CHECK(ref.at("kind").as_string() == "AzureIdentity");
  CHECK(ref.at("apiVersion").as_string() == "aadpodidentity.k8s.io/v1");
}

TEST_CASE("desired: pods without node, label or matching selector get nothing") {
  World w;
  w.identities = {make_identity("default", "id1")};
  w.bindings = {make_binding("default", "b1", "id1", "sel")};
  w.pods = {make_pod("default", "unscheduled", "", "sel"), make_pod("default", "unlabelled", "n", ""),
            make_pod("default", "other", "n", "SEL")};  // selector match is case-sensitive
  CHECK(w.desired().assignments.empty());
}

TEST_CASE("desired: the identity is looked up in the binding's namespace") {
  World w;
  w.identities = {make_identity("ns-a", "id1")};
  w.bindings = {make_binding("ns-b", "b1", "id1", "sel")};  // no id1 in ns-b
  w.pods = {make_pod("ns-b", "p", "n", "sel")};
  CHECK(w.desired().assignments.empty());
  w.identities.push_back(make_identity("ns-b", "id1"));
  auto d = w.desired();
  REQUIRE(d.assignments.size() == 1);
  CHECK(d.assignments.begin()->second.azure_identity_ref->meta.ns == "ns-b");
}

TEST_CASE("desired: type 0 identities with an invalid resource id are ignored, other types kept") {
  World w;
  w.identities = {make_identity("default", "bad", 0, "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x"),
                  make_identity("default", "sp", 1, ""), make_identity("default", "good", 0)};
  w.identities.push_back(make_identity("default", "lower", 0,
                                  "/subscriptions/S/resourcegroups/RG/providers/microsoft.managedidentity/userassignedidentities/n"));
  w.bindings = {make_binding("default", "b1", "bad", "sel"), make_binding("default", "b2", "sp", "sel"),
                make_binding("default", "b3", "good", "sel"), make_binding("default", "b4", "lower", "sel")};
  w.pods = {make_pod("default", "p", "n", "sel")};
  auto d = w.desired();
  CHECK(d.assignments.size() == 3);
  CHECK_FALSE(d.assignments.count("default/p-default-bad"));
  CHECK(d.assignments.count("default/p-default-sp"));
  CHECK(d.assignments.count("default/p-default-lower"));
  REQUIRE(d.warnings.size() == 1);
  CHECK_THAT(d.warnings[0], Catch::Contains("default/bad"));
  CHECK_FALSE(valid_user_assigned_id(""));
  CHECK_FALSE(valid_user_assigned_id(uami_id("x") + "/extra"));
}

TEST_CASE("desired: namespaced mode keeps only same-namespace matches and puts the AAI there") {
  World w;
  w.identities = {make_identity("team", "id1"), make_identity("other", "id2")};
  w.bindings = {make_binding("team", "b1", "id1", "sel"), make_binding("other", "b2", "id2", "sel")};
  w.pods = {make_pod("team", "p", "n", "sel")};
  SECTION("global flag") {
    w.force_namespaced = true;
    auto d = w.desired();
    REQUIRE(d.assignments.size() == 1);
    CHECK(d.assignments.begin()->first == "team/p-team-id1");
  }
  SECTION("annotation on one identity") {
    w.identities[1].meta.annotations["aadpodidentity.k8s.io/Behavior"] = "namespaced";
    w.identities[0].meta.annotations["aadpodidentity.k8s.io/Behavior"] = "namespaced";
    w.pods.push_back(make_pod("apps", "q", "n", "sel"));
    auto d = w.desired();
    CHECK(d.assignments.size() == 1);
    CHECK(d.assignments.count("team/p-team-id1"));
  }
  SECTION("default mode matches across namespaces") {
    auto d = w.desired();
    CHECK(d.assignments.size() == 2);
    CHECK(d.assignments.count("default/p-team-id1"));
    CHECK(d.assignments.count("default/p-team-id2"));
  }
}

TEST_CASE("desired: name conflicts across namespaces resolve to the first binding namespace") {
  World w;
  // Same identity and binding names in two namespaces: both reach AAI p-default-shared.
  w.identities = {make_identity("zeta", "shared", 0, uami_id("from-zeta")), make_identity("alpha", "shared", 0, uami_id("from-alpha"))};
  w.bindings = {make_binding("zeta", "b", "shared", "sel"), make_binding("alpha", "b", "shared", "sel")};
  w.pods = {make_pod("default", "p", "n", "sel")};
  auto d = w.desired();
  REQUIRE(d.assignments.size() == 1);
  const auto& a = d.assignments.at("default/p-default-shared");
  CHECK(a.azure_identity_ref->meta.ns == "alpha");
  CHECK(a.azure_binding_ref->meta.ns == "alpha");
  CHECK(d.warnings.size() == 1);
  // Input order does not matter.
  std::swap(w.identities[0], w.identities[1]);
  std::swap(w.bindings[0], w.bindings[1]);
  CHECK(w.desired().assignments.at("default/p-default-shared").azure_identity_ref->meta.ns == "alpha");
}

TEST_CASE("desired: several bindings with one selector give several identities") {
  World w;
  w.identities = {make_identity("default", "a"), make_identity("default", "b", 1)};
  w.bindings = {make_binding("default", "ba", "a", "sel"), make_binding("default", "bb", "b", "sel")};
  w.pods = {make_pod("default", "p1", "n1", "sel"), make_pod("default", "p2", "n2", "sel")};
  auto d = w.desired();
  CHECK(d.assignments.size() == 4);
  CHECK(d.assignments.at("default/p2-default-b").node_name == "n2");
}

TEST_CASE("same_assignment ignores resourceVersion and metadata, not identity or node changes") {
  World w;
  w.identities = {make_identity("default", "id1")};
  w.bindings = {make_binding("default", "b1", "id1", "sel")};
  w.pods = {make_pod("default", "p", "n", "sel")};
  auto desired = w.desired().assignments.begin()->second;
  auto current = desired;
  current.status = "Assigned";
  current.meta.resource_version = "42";
  current.azure_identity_ref->meta.resource_version = "7";
  current.azure_identity_ref->meta.annotations["kubectl.kubernetes.io/last-applied-configuration"] = "{}";
  current.azure_binding_ref->meta.resource_version = "8";
  CHECK(same_assignment(current, desired));

  auto moved = current;
  moved.meta.labels["nodename"] = "other";
  CHECK_FALSE(same_assignment(moved, desired));
  auto edited = current;
  edited.azure_identity_ref->client_id = "new-client";
  CHECK_FALSE(same_assignment(edited, desired));
  auto new_rid = current;
  new_rid.azure_identity_ref->resource_id = uami_id("id2");
  CHECK_FALSE(same_assignment(new_rid, desired));
  auto namespaced = current;
  namespaced.azure_identity_ref->meta.annotations["aadpodidentity.k8s.io/Behavior"] = "namespaced";
  CHECK_FALSE(same_assignment(namespaced, desired));
  auto legacy = current;
  legacy.azure_binding_ref.reset();
  CHECK_FALSE(same_assignment(legacy, desired));
}
