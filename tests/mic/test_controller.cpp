// The MIC controller in-process against the real kube-apiserver and the Azure emulator: the
// acceptance scenarios of the original's e2e suite that need no real cloud (behaviour
// reference section 6), plus ARM call counting for coalescing, resyncs and throttling.
#include <catch2/catch.hpp>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>

#include "mic_fixture.hpp"

using namespace aad;
using namespace aad::test::mic;
using namespace std::chrono_literals;
namespace json = boost::json;
using verb = boost::beast::http::verb;

namespace {

std::string low(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One VMSS with two nodes, one identity and its binding in the test namespace.
struct OneIdentity {
  MicFixture& f;
  std::string vmss;
  AzureIdentityInfo id;
  explicit OneIdentity(MicFixture& fx, std::vector<std::string> preexisting = {}, bool system = false) : f(fx) {
    id = f.azure_identity("id1");
    vmss = f.make_vmss("pool", preexisting, system);
    f.create_node("pool-0", f.vmss_provider_id("pool", 0));
    f.create_node("pool-1", f.vmss_provider_id("pool", 1));
    f.create_identity("id1", id);
    f.create_binding("b1", "id1", "sel1");
  }
};

}  // namespace

TEST_CASE("mic: single identity assigned with its pod and removed with it", "[mic][integration]") {
  MicFixture f;
  OneIdentity s(f);
  REQUIRE(f.wait_for([&] { return f.mic->engine().caches_synced() && f.mic->leading(); }));
  auto start = std::chrono::steady_clock::now();
  f.create_pod("p1", "pool-0", "sel1");
  auto name = f.aai_name("p1", "id1");
  REQUIRE(f.wait_for([&] { return f.aai_status(name, "Assigned"); }));
  auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("figure: pod create -> AAI Assigned: %.2f s\n", elapsed);
  auto a = f.aai(name);
  REQUIRE(a);
  CHECK(a->meta.labels.at("nodename") == "pool-0");
  CHECK(a->pod == "p1");
  CHECK(a->pod_namespace == f.ns);
  CHECK(a->node_name == "pool-0");
  CHECK(a->meta.finalizers == std::vector<std::string>{"azureassignedidentity.finalizers.aadpodidentity.k8s.io"});
  REQUIRE(a->azure_identity_ref);
  CHECK(a->azure_identity_ref->client_id == s.id.client_id);
  CHECK(a->azure_binding_ref->meta.name == "b1");
  CHECK(f.assigned(s.vmss) == std::set<std::string>{low(s.id.resource_id)});
  CHECK(f.arm_calls("arm-patch") == 1);
  // The binding got a "binding applied" event.
  REQUIRE(f.wait_for([&] {
    for (const auto& e : f.events_for(f.ns, "b1"))
      if (e.reason == "binding applied" && e.type == "Normal") return true;
    return false;
  }, 10s));

  // Metrics under the original's names, plus ARM calls by operation and result.
  auto text = f.registry.render();
  CHECK_THAT(text, Catch::Contains("aadpodidentity_assigned_identity_addition_count 1"));
  CHECK_THAT(text, Catch::Contains("aadpodidentity_mic_new_leader_election_count 1"));
  CHECK_THAT(text, Catch::Contains("aadpodidentity_mic_arm_calls_total{operation=\"vmss_update\",result=\"ok\"} 1"));
  CHECK_THAT(text, Catch::Contains("aadpodidentity_cloud_provider_operations_duration_seconds_count{operation_type=\"vmss_get\"} 1"));
  CHECK_THAT(text, Catch::Contains("aadpodidentity_mic_is_leader 1"));

  f.delete_pod("p1");
  REQUIRE(f.wait_for([&] { return f.aai_gone(name); }));
  CHECK(f.assigned(s.vmss).empty());
  CHECK(f.arm_calls("arm-patch") == 2);
  CHECK_THAT(f.registry.render(), Catch::Contains("aadpodidentity_assigned_identity_deletion_count 1"));
}

TEST_CASE("mic: an ARM PATCH slower than the lease does not cost the leadership", "[mic][integration]") {
  MicFixture f;  // lease 3 s, renew deadline 2 s
  OneIdentity s(f);
  REQUIRE(f.wait_for([&] { return f.mic->leading() && f.mic->engine().working(); }));
  auto holder = f.mic->elector().observed_holder();
  f.emu.post("/admin/faults", {{"target", "arm-patch"}, {"kind", "latency"}, {"latencyMs", 5000}, {"count", 1}});
  f.create_pod("p1", "pool-0", "sel1");
  auto name = f.aai_name("p1", "id1");
  bool stayed_leader = true;
  REQUIRE(f.wait_for([&] {
    stayed_leader = stayed_leader && f.mic->leading();
    return f.aai_status(name, "Assigned");
  }, 30s));
  CHECK(stayed_leader);
  CHECK(f.mic->elector().observed_holder() == holder);
  CHECK(f.arm_calls("arm-patch") == 1);
}

// Another holder takes the Lease while the leader's ARM PATCH is in flight: the leader's run()
// ends "lost" and it writes nothing more, neither the AAI for that PATCH nor anything later.
TEST_CASE("mic: a leader whose Lease is taken over stops writing at once", "[mic][integration]") {
  MicFixture f;
  OneIdentity s(f);
  REQUIRE(f.wait_for([&] { return f.mic->leading() && f.mic->engine().working(); }));
  f.emu.post("/admin/faults", {{"target", "arm-patch"}, {"kind", "latency"}, {"latencyMs", 3000}, {"count", 1}});
  f.create_pod("p1", "pool-0", "sel1");
  auto name = f.aai_name("p1", "id1");
  REQUIRE(f.wait_for([&] { return f.aai_status(name, "Created"); }));
  // The fault is consumed when the PATCH reaches the emulator.
  REQUIRE(f.wait_for([&] { return f.emu.admin(verb::get, "/admin/faults").as_array().empty(); }, 10s));
  f.steal_lease("aad-pod-identity-mic", "intruder");
  REQUIRE(f.wait_for([&] { return f.mic_done; }, 30s));
  CHECK(f.mic_end == kube::LeadershipEnd::lost);
  CHECK_FALSE(f.mic->leading());
  // The PATCH it sent still lands in Azure; the AAI stays Created (the next leader finishes it).
  REQUIRE(f.wait_for([&] { return f.arm_calls("arm-patch") == 1; }, 10s));
  auto gets = f.arm_calls("arm-get");
  auto rv = f.aai(name)->meta.resource_version;
  f.delete_pod("p1");  // work for a leader, not for this replica any more
  f.settle(1500ms);
  auto a = f.aai(name);
  REQUIRE(a);
  CHECK(a->status == "Created");
  CHECK(a->meta.resource_version == rv);
  CHECK(f.arm_calls("arm-patch") == 1);
  CHECK(f.arm_calls("arm-get") == gets);
  auto holder = f.kube.kubectl({"get", "lease", "aad-pod-identity-mic", "-n", f.ns, "-o",
                                "jsonpath={.spec.holderIdentity}"});
  CHECK(holder.out == "intruder");  // not renewed over by the former leader
}

TEST_CASE("mic: resyncs and metadata edits cause no ARM call and no AAI rewrite", "[mic][integration]") {
  MicTestOptions o;
  o.resync_period = 1s;
  o.drift_interval = 1500ms;  // a drift check is one GET and no PATCH when nothing drifted
  MicFixture f(o);
  OneIdentity s(f);
  f.create_pod("p1", "pool-0", "sel1");
  auto name = f.aai_name("p1", "id1");
  REQUIRE(f.wait_for([&] { return f.aai_status(name, "Assigned"); }));
  auto rv = f.aai(name)->meta.resource_version;
  auto patches = f.arm_calls("arm-patch");
  // A metadata-only edit of the identity and binding (the original rewrote AAIs for these).
  f.kube.kubectl({"label", "azureidentity", "id1", "-n", f.ns, "touched=yes"});
  f.kube.kubectl({"annotate", "azureidentitybinding", "b1", "-n", f.ns, "touched=yes"});
  f.settle(4s);  // several resyncs and drift checks
  CHECK(f.aai(name)->meta.resource_version == rv);
  CHECK(f.arm_calls("arm-patch") == patches);
  CHECK(f.mic->engine().stats().reconciles >= 2);  // the resyncs did run
}

TEST_CASE("mic: deleting the identity or the binding removes the AAI and the identity", "[mic][integration]") {
  MicFixture f;
  OneIdentity s(f);
  f.create_pod("p1", "pool-0", "sel1");
  auto name = f.aai_name("p1", "id1");
  REQUIRE(f.wait_for([&] { return f.aai_status(name, "Assigned"); }));
  SECTION("identity") { f.delete_identity("id1"); }
  SECTION("binding") { f.delete_binding("b1"); }
  REQUIRE(f.wait_for([&] { return f.aai_gone(name); }));
  CHECK(f.assigned(s.vmss).empty());
}

TEST_CASE("mic: identity updated to another Azure identity moves the assignment", "[mic][integration]") {
  MicFixture f;
  OneIdentity s(f);
  f.create_pod("p1", "pool-0", "sel1");
  auto name = f.aai_name("p1", "id1");
  REQUIRE(f.wait_for([&] { return f.aai_status(name, "Assigned"); }));
  auto id2 = f.azure_identity("id2");
  f.update_identity("id1", id2);
  REQUIRE(f.wait_for([&] {
    auto a = f.aai(name);
    return a && a->status == "Assigned" && a->azure_identity_ref->client_id == id2.client_id;
  }));
  REQUIRE(f.wait_for([&] { return f.assigned(s.vmss) == std::set<std::string>{low(id2.resource_id)}; }, 10s));
}

TEST_CASE("mic: two pods on one VMSS share an identity; deleting one keeps it", "[mic][integration]") {
  MicFixture f;
  OneIdentity s(f);
  f.create_pod("p1", "pool-0", "sel1");
  f.create_pod("p2", "pool-1", "sel1");
  REQUIRE(f.wait_for([&] {
    return f.aai_status(f.aai_name("p1", "id1"), "Assigned") && f.aai_status(f.aai_name("p2", "id1"), "Assigned");
  }));
  f.delete_pod("p1");
  REQUIRE(f.wait_for([&] { return f.aai_gone(f.aai_name("p1", "id1")); }));
  f.settle(1s);
  CHECK(f.assigned(s.vmss) == std::set<std::string>{low(s.id.resource_id)});
  CHECK(f.aai_status(f.aai_name("p2", "id1"), "Assigned"));
  // Same pod name in another namespace on the VMSS also keeps it (names compared with namespaces).
  auto other = f.kube.new_namespace("mic-other");
  f.create_pod("p2", "pool-0", "sel1", other);
  REQUIRE(f.wait_for([&] { return f.aai_status("p2-" + other + "-id1", "Assigned"); }));
  f.delete_pod("p2");
  REQUIRE(f.wait_for([&] { return f.aai_gone(f.aai_name("p2", "id1")); }));
  f.settle(1s);
  CHECK(f.assigned(s.vmss) == std::set<std::string>{low(s.id.resource_id)});
}

TEST_CASE("mic: system-assigned and pre-existing user identities are untouched", "[mic][integration]") {
  MicFixture f;
  auto cluster = f.azure_identity("cluster-identity");
  auto manual = f.azure_identity("manually-attached");
  OneIdentity s(f, {cluster.resource_id, manual.resource_id}, true);
  auto before = f.resource_view(s.vmss);
  auto principal = json::value_to<std::string>(before.at("systemAssigned").as_object().at("principalId"));
  // One pod uses id1 (MIC assigns it), another the manually attached identity.
  f.create_identity("manual", manual);
  f.create_binding("b-manual", "manual", "sel-manual");
  f.create_pod("p1", "pool-0", "sel1");
  f.create_pod("p2", "pool-1", "sel-manual");
  REQUIRE(f.wait_for([&] {
    return f.aai_status(f.aai_name("p1", "id1"), "Assigned") && f.aai_status(f.aai_name("p2", "manual"), "Assigned");
  }));
  CHECK(f.assigned(s.vmss) ==
        std::set<std::string>{low(cluster.resource_id), low(manual.resource_id), low(s.id.resource_id)});
  CHECK(f.aai(f.aai_name("p2", "manual"))->meta.annotations.at("aadpodidentity.k8s.io/found-on-vm") == "true");
  f.delete_pod("p1");
  f.delete_pod("p2");
  REQUIRE(f.wait_for([&] { return f.aais().empty(); }));
  f.settle(500ms);
  // id1 (MIC's) removed; the cluster identity and the manually attached one stay.
  CHECK(f.assigned(s.vmss) == std::set<std::string>{low(cluster.resource_id), low(manual.resource_id)});
  auto after = f.resource_view(s.vmss);
  CHECK(json::value_to<std::string>(after.at("systemAssigned").as_object().at("principalId")) == principal);
  CHECK(json::value_to<std::string>(after.at("identityType")).find("SystemAssigned") != std::string::npos);
}

TEST_CASE("mic: an immutable identity stays after its pod is deleted", "[mic][integration]") {
  MicTestOptions o;
  o.immutable_client_ids = {"0c1d2e3f-aaaa-4bbb-8ccc-1234567890ab"};  // the flag value, lower-cased
  MicFixture f(o);
  auto vmss = f.make_vmss("pool");
  f.create_node("pool-0", f.vmss_provider_id("pool", 0));
  auto id = f.azure_identity("immutable", "0C1D2E3F-AAAA-4BBB-8CCC-1234567890AB");
  f.create_identity("immutable", id);
  f.create_binding("b1", "immutable", "sel1");
  f.create_pod("p1", "pool-0", "sel1");
  auto name = f.aai_name("p1", "immutable");
  REQUIRE(f.wait_for([&] { return f.aai_status(name, "Assigned"); }));
  f.delete_pod("p1");
  REQUIRE(f.wait_for([&] { return f.aai_gone(name); }));
  f.settle(500ms);
  CHECK(f.assigned(vmss) == std::set<std::string>{low(id.resource_id)});
}

TEST_CASE("mic: an identity removed by hand is re-added by the drift reconcile", "[mic][integration]") {
  MicTestOptions o;
  o.drift_interval = 2s;
  MicFixture f(o);
  OneIdentity s(f);
  f.create_pod("p1", "pool-0", "sel1");
  REQUIRE(f.wait_for([&] { return f.aai_status(f.aai_name("p1", "id1"), "Assigned"); }));
  f.emu.admin(verb::patch, "/admin/resource?id=" + s.vmss,
              json::object{{"removeIdentities", json::array{json::value(s.id.resource_id)}}});
  REQUIRE(f.assigned(s.vmss).empty());
  REQUIRE(f.wait_for([&] { return f.assigned(s.vmss) == std::set<std::string>{low(s.id.resource_id)}; }, 30s));
  CHECK(f.aai_status(f.aai_name("p1", "id1"), "Assigned"));
}

// A found-on-vm identity stays MIC-free only while MIC never puts it there itself: once someone
// detaches it and the drift reconcile re-adds it, MIC owns it and removes it with the last pod.
TEST_CASE("mic: a found-on-vm identity re-added by the drift reconcile goes with its pod", "[mic][integration]") {
  MicTestOptions o;
  o.drift_interval = 1s;
  MicFixture f(o);
  auto detached = f.azure_identity("detached");  // removed by hand, re-added by MIC
  auto kept = f.azure_identity("kept");          // never touched: stays MIC-free
  auto vmss = f.make_vmss("pool", {detached.resource_id, kept.resource_id});
  f.create_node("pool-0", f.vmss_provider_id("pool", 0));
  f.create_identity("detached", detached);
  f.create_identity("kept", kept);
  f.create_binding("b-detached", "detached", "sel-detached");
  f.create_binding("b-kept", "kept", "sel-kept");
  f.create_pod("p1", "pool-0", "sel-detached");
  f.create_pod("p2", "pool-0", "sel-kept");
  auto n1 = f.aai_name("p1", "detached"), n2 = f.aai_name("p2", "kept");
  auto found = [&](const std::string& name) {
    auto a = f.aai(name);
    return a && a->meta.annotations.count("aadpodidentity.k8s.io/found-on-vm") == 1;
  };
  REQUIRE(f.wait_for([&] { return f.aai_status(n1, "Assigned") && f.aai_status(n2, "Assigned"); }));
  CHECK(found(n1));
  CHECK(found(n2));
  auto patches = f.arm_calls("arm-patch");
  CHECK(patches == 0);  // both were already there

  f.emu.admin(verb::patch, "/admin/resource?id=" + vmss,
              json::object{{"removeIdentities", json::array{json::value(detached.resource_id)}}});
  REQUIRE(f.wait_for([&] { return f.assigned(vmss).count(low(detached.resource_id)) == 1; }, 30s));
  REQUIRE(f.wait_for([&] { return !found(n1); }, 10s));  // MIC put it there: no longer found-on-vm
  CHECK(f.arm_calls("arm-patch") == patches + 1);
  // Later drift checks find everything in place: no PATCH, no AAI rewrite.
  auto rv1 = f.aai(n1)->meta.resource_version, rv2 = f.aai(n2)->meta.resource_version;
  f.settle(2500ms);
  CHECK(f.aai(n1)->meta.resource_version == rv1);
  CHECK(f.aai(n2)->meta.resource_version == rv2);
  CHECK(f.arm_calls("arm-patch") == patches + 1);
  CHECK(found(n2));  // checked by every drift pass, never re-added: still not MIC's

  f.delete_pod("p1");
  f.delete_pod("p2");
  REQUIRE(f.wait_for([&] { return f.aais().empty(); }));
  REQUIRE(f.wait_for([&] { return f.assigned(vmss) == std::set<std::string>{low(kept.resource_id)}; }, 10s));
  f.settle(500ms);
  CHECK(f.assigned(vmss) == std::set<std::string>{low(kept.resource_id)});
}

// Behaviour reference 2.11: a status patch the apiserver refuses gives a Warning
// "status update error" on the AAI, for Assigned and for Unassigned, and is retried. The refusal
// comes from a ValidatingAdmissionPolicy on two AAI names only.
TEST_CASE("mic: a refused AAI status update is a Warning event on the AAI and is retried", "[mic][integration]") {
  MicTestOptions o;
  o.start = false;
  MicFixture f(o);
  auto id1 = f.azure_identity("id1"), id2 = f.azure_identity("id2");
  auto vmss = f.make_vmss("pool");
  f.create_node("pool-0", f.vmss_provider_id("pool", 0));
  f.create_identity("id1", id1);
  f.create_identity("id2", id2);
  f.create_binding("b1", "id1", "sel1");
  f.create_binding("b2", "id2", "sel2");
  auto n1 = f.aai_name("p1", "id1"), n2 = f.aai_name("p2", "id2"), probe = "probe-" + f.ns;
  auto policy = "mic-refuse-status-" + f.ns;
  auto refused = [](const std::string& name, const std::string& status) {
    return "(object.metadata.name == '" + name + "' && has(object.status) && has(object.status.status) && "
           "object.status.status == '" + status + "')";
  };
  json::object rule{{"apiGroups", json::array{"aadpodidentity.k8s.io"}}, {"apiVersions", json::array{"*"}},
                    {"operations", json::array{"UPDATE"}}, {"resources", json::array{"azureassignedidentities"}}};
  f.apply({{"apiVersion", "admissionregistration.k8s.io/v1"},
           {"kind", "ValidatingAdmissionPolicy"},
           {"metadata", {{"name", policy}}},
           {"spec",
            {{"failurePolicy", "Fail"},
             {"matchConstraints", {{"resourceRules", json::array{rule}}}},
             {"validations", json::array{json::object{
                                 {"expression", "!(" + refused(n1, "Assigned") + " || " + refused(n2, "Unassigned") +
                                                    " || " + refused(probe, "Assigned") + ")"},
                                 {"message", "refused by the test policy"}}}}}}});
  f.apply({{"apiVersion", "admissionregistration.k8s.io/v1"},
           {"kind", "ValidatingAdmissionPolicyBinding"},
           {"metadata", {{"name", policy}}},
           {"spec", {{"policyName", policy}, {"validationActions", json::array{"Deny"}}}}});
  // The policy is in force once it refuses the probe's status change.
  f.apply({{"apiVersion", "aadpodidentity.k8s.io/v1"},
           {"kind", "AzureAssignedIdentity"},
           {"metadata", {{"name", probe}, {"namespace", "default"}}},
           {"spec", {{"pod", "none"}, {"podNamespace", f.ns}}}});
  REQUIRE(f.wait_for([&] {
    auto r = f.kube.kubectl({"patch", "azureassignedidentity", probe, "-n", "default", "--type=merge", "-p",
                             R"({"status":{"status":"Assigned"}})"});
    return r.exit_code != 0 && r.err.find("refused by the test policy") != std::string::npos;
  }, 30s));
  f.kube.kubectl({"delete", "azureassignedidentity", probe, "-n", "default"});
  f.start_controller();

  auto warning_on = [&](const std::string& aai, const std::string& status) {
    for (const auto& e : f.events_for("default", aai))
      if (e.type == "Warning" && e.reason == "status update error" && e.involved_object.kind == "AzureAssignedIdentity" &&
          e.message.find("status to " + status) != std::string::npos &&
          e.message.find("refused by the test policy") != std::string::npos)
        return true;
    return false;
  };
  f.create_pod("p1", "pool-0", "sel1");
  f.create_pod("p2", "pool-0", "sel2");
  REQUIRE(f.wait_for([&] { return f.aai_status(n2, "Assigned"); }));
  REQUIRE(f.wait_for([&] { return warning_on(n1, "Assigned"); }, 30s));
  CHECK(f.aai_status(n1, "Created"));  // on the VMSS, but not marked Assigned
  CHECK(f.assigned(vmss) == std::set<std::string>{low(id1.resource_id), low(id2.resource_id)});

  f.delete_pod("p2");
  REQUIRE(f.wait_for([&] { return warning_on(n2, "Unassigned"); }, 30s));
  CHECK(f.assigned(vmss) == std::set<std::string>{low(id1.resource_id)});  // removed from Azure first
  CHECK(f.aai(n2).has_value());  // kept until its status could be written

  // Without the policy both retries go through.
  f.remove_object("validatingadmissionpolicybinding", policy);
  f.remove_object("validatingadmissionpolicy", policy);
  REQUIRE(f.wait_for([&] { return f.aai_status(n1, "Assigned") && f.aai_gone(n2); }, 60s));
}

TEST_CASE("mic: one valid and two non-existent identities in one batch", "[mic][integration]") {
  MicFixture f;
  auto vmss = f.make_vmss("pool");
  f.create_node("pool-0", f.vmss_provider_id("pool", 0));
  auto good = f.azure_identity("good");
  // Well-formed ids of identities that do not exist in Azure.
  AzureIdentityInfo missing1{"/subscriptions/" + f.emu.subscription_id() +
                                 "/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/missing1",
                             "11111111-1111-4111-8111-111111111111"};
  AzureIdentityInfo missing2{"/subscriptions/" + f.emu.subscription_id() +
                                 "/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/missing2",
                             "22222222-2222-4222-8222-222222222222"};
  f.create_identity("good", good);
  f.create_identity("missing1", missing1);
  f.create_identity("missing2", missing2);
  f.create_binding("b-good", "good", "sel");
  f.create_binding("b-missing1", "missing1", "sel");
  f.create_binding("b-missing2", "missing2", "sel");
  f.create_pod("p1", "pool-0", "sel");
  REQUIRE(f.wait_for([&] { return f.aai_status(f.aai_name("p1", "good"), "Assigned"); }));
  f.settle(1s);
  CHECK(f.aai_status(f.aai_name("p1", "missing1"), "Created"));
  CHECK(f.aai_status(f.aai_name("p1", "missing2"), "Created"));
  CHECK(f.assigned(vmss) == std::set<std::string>{low(good.resource_id)});
  // A Warning event names the reason on the failed binding.
  REQUIRE(f.wait_for([&] {
    for (const auto& e : f.events_for(f.ns, "b-missing1"))
      if (e.type == "Warning" && e.reason == "binding apply error" &&
          e.message.find("FailedIdentityOperation") != std::string::npos)
        return true;
    return false;
  }, 10s));
  // Later invalid identities do not unassign the valid one.
  f.create_pod("p2", "pool-0", "sel");
  REQUIRE(f.wait_for([&] { return f.aai_status(f.aai_name("p2", "good"), "Assigned"); }));
  f.settle(1s);
  CHECK(f.assigned(vmss) == std::set<std::string>{low(good.resource_id)});
  CHECK(f.aai_status(f.aai_name("p1", "good"), "Assigned"));
}

TEST_CASE("mic: name conflict across namespaces resolves to the first namespace", "[mic][integration]") {
  MicFixture f;
  auto vmss = f.make_vmss("pool");
  f.create_node("pool-0", f.vmss_provider_id("pool", 0));
  auto ns_a = f.kube.new_namespace("a-mic");  // sorts before "zz-..."
  auto ns_z = f.kube.new_namespace("zz-mic");
  auto id_a = f.azure_identity("from-a");
  auto id_z = f.azure_identity("from-z");
  f.create_identity("shared", id_z, 0, ns_z);
  f.create_binding("shared", "shared", "sel", ns_z);
  f.create_identity("shared", id_a, 0, ns_a);
  f.create_binding("shared", "shared", "sel", ns_a);
  f.create_pod("p1", "pool-0", "sel");
  auto name = f.aai_name("p1", "shared");
  REQUIRE(f.wait_for([&] { return f.aai_status(name, "Assigned"); }));
  auto a = f.aai(name);
  CHECK(a->azure_identity_ref->meta.ns == ns_a);
  CHECK(a->azure_binding_ref->meta.ns == ns_a);
  CHECK(f.assigned(vmss) == std::set<std::string>{low(id_a.resource_id)});
  CHECK(f.aais().size() == 1);
}

TEST_CASE("mic: changing the pod's label moves the assignment", "[mic][integration]") {
  MicFixture f;
  OneIdentity s(f);
  auto id2 = f.azure_identity("id2");
  f.create_identity("id2", id2);
  f.create_binding("b2", "id2", "sel2");
  f.create_pod("p1", "pool-0", "sel1");
  REQUIRE(f.wait_for([&] { return f.aai_status(f.aai_name("p1", "id1"), "Assigned"); }));
  f.relabel_pod("p1", "sel2");
  REQUIRE(f.wait_for([&] {
    return f.aai_status(f.aai_name("p1", "id2"), "Assigned") && f.aai_gone(f.aai_name("p1", "id1"));
  }));
  REQUIRE(f.wait_for([&] { return f.assigned(s.vmss) == std::set<std::string>{low(id2.resource_id)}; }, 10s));
}

TEST_CASE("mic: a deleted node's AAIs are removed without ARM calls", "[mic][integration]") {
  MicFixture f;
  auto vm = f.make_vm("standalone-vm");
  auto id = f.azure_identity("id1");
  f.create_node("standalone-vm", f.vm_provider_id("standalone-vm"));
  f.create_identity("id1", id);
  f.create_binding("b1", "id1", "sel1");
  f.create_pod("p1", "standalone-vm", "sel1");
  auto name = f.aai_name("p1", "id1");
  REQUIRE(f.wait_for([&] { return f.aai_status(name, "Assigned"); }));
  f.settle(500ms);
  auto gets = f.arm_calls("arm-get"), patches = f.arm_calls("arm-patch");
  f.delete_node("standalone-vm");
  REQUIRE(f.wait_for([&] { return f.aai_gone(name); }));
  f.settle(500ms);
  CHECK(f.arm_calls("arm-get") == gets);
  CHECK(f.arm_calls("arm-patch") == patches);
  REQUIRE(f.wait_for([&] {
    for (const auto& e : f.events_for(f.ns, "b1"))
      if (e.reason == "binding removed") return true;
    return false;
  }, 10s));
}

TEST_CASE("mic: 20 pods on one VMSS with one identity -> one PATCH", "[mic][integration]") {
  MicFixture f;
  OneIdentity s(f);
  REQUIRE(f.wait_for([&] { return f.mic->leading() && f.mic->engine().working(); }));
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) f.create_pod("p" + std::to_string(i), i % 2 ? "pool-1" : "pool-0", "sel1");
  REQUIRE(f.wait_for([&] {
    int assigned = 0;
    for (const auto& a : f.aais()) assigned += a.status == "Assigned";
    return assigned == 20;
  }, 120s));
  auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("figure: 20 pods on one VMSS: all Assigned in %.2f s with %ld PATCH, %ld GET\n", elapsed,
              f.arm_calls("arm-patch"), f.arm_calls("arm-get"));
  CHECK(f.arm_calls("arm-patch") == 1);
  // And deleting them all: one PATCH removes the identity.
  for (int i = 0; i < 20; ++i) f.delete_pod("p" + std::to_string(i));
  REQUIRE(f.wait_for([&] { return f.aais().empty(); }, 120s));
  f.settle(500ms);
  CHECK(f.assigned(s.vmss).empty());
  CHECK(f.arm_calls("arm-patch") == 2);
}

TEST_CASE("mic: 429 with Retry-After is honoured (no PATCH before it expires)", "[mic][integration]") {
  MicFixture f;
  OneIdentity s(f);
  REQUIRE(f.wait_for([&] { return f.mic->leading() && f.mic->engine().working(); }));
  f.emu.post("/admin/faults", {{"target", "arm-patch"}, {"kind", "throttle"}, {"retryAfter", 3}, {"count", 1}});
  f.create_pod("p1", "pool-0", "sel1");
  auto name = f.aai_name("p1", "id1");
  REQUIRE(f.wait_for([&] { return f.arm_calls("arm-patch", "429") == 1; }, 30s));
  CHECK(f.aai_status(name, "Created"));
  REQUIRE(f.wait_for([&] { return f.aai_status(name, "Assigned"); }, 30s));
  CHECK(f.arm_calls("arm-patch") == 2);
  CHECK(f.arm_calls("arm-patch", "429") == 1);
  // From the emulator's own request log: the retry came after the Retry-After ran out.
  auto log = f.emu.admin(verb::get, "/admin/requests?class=arm-patch").as_object();
  auto& entries = log.at("entries").as_array();
  REQUIRE(entries.size() == 2);
  auto seconds = [](const json::object& e) {  // "YYYY-MM-DDTHH:MM:SS.fffffffZ" -> seconds of the day
    auto ts = json::value_to<std::string>(e.at("ts"));
    return std::stoi(ts.substr(11, 2)) * 3600.0 + std::stoi(ts.substr(14, 2)) * 60.0 + std::stod(ts.substr(17, 9));
  };
  const auto& throttled = entries[0].as_object();
  const auto& retried = entries[1].as_object();
  CHECK(throttled.at("status").as_int64() == 429);
  double answered = seconds(throttled) + static_cast<double>(throttled.at("durationMs").as_int64()) / 1000.0;
  double gap = seconds(retried) - answered;
  if (gap < 0) gap += 86400;  // midnight
  std::printf("figure: PATCH retried %.2f s after a 429 with Retry-After: 3\n", gap);
  CHECK(gap >= 2.8);
}

TEST_CASE("mic: 40 pods over 5 identities on two scale sets", "[mic][integration]") {
  MicFixture f;
  auto ss_a = f.make_vmss("pool-a");
  auto ss_b = f.make_vmss("pool-b");
  for (int i = 0; i < 2; ++i) {
    f.create_node("pool-a-" + std::to_string(i), f.vmss_provider_id("pool-a", i));
    f.create_node("pool-b-" + std::to_string(i), f.vmss_provider_id("pool-b", i));
  }
  std::set<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto name = "id" + std::to_string(i);
    auto id = f.azure_identity(name);
    ids.insert(low(id.resource_id));
    f.create_identity(name, id);
    f.create_binding("b" + std::to_string(i), name, "sel" + std::to_string(i));
  }
  REQUIRE(f.wait_for([&] { return f.mic->leading() && f.mic->engine().working(); }));
  auto start = std::chrono::steady_clock::now();
  const char* nodes[] = {"pool-a-0", "pool-a-1", "pool-b-0", "pool-b-1"};
  for (int i = 0; i < 40; ++i) f.create_pod("p" + std::to_string(i), nodes[i % 4], "sel" + std::to_string(i % 5));
  REQUIRE(f.wait_for([&] {
    int assigned = 0;
    for (const auto& a : f.aais()) assigned += a.status == "Assigned";
    return assigned == 40;
  }, 150s));
  auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto patches = f.arm_calls("arm-patch"), gets = f.arm_calls("arm-get");
  std::printf("figure: 40 pods / 5 identities / 2 VMSS: all Assigned in %.2f s with %ld PATCH, %ld GET\n", elapsed,
              patches, gets);
  CHECK(f.assigned(ss_a) == ids);
  CHECK(f.assigned(ss_b) == ids);
  // Every PATCH adds at least one identity a scale set did not have yet.
  CHECK(patches <= 10);
}

TEST_CASE("mic: namespaced mode keeps bindings to their namespace and puts AAIs there", "[mic][integration]") {
  MicTestOptions o;
  o.force_namespaced = true;
  MicFixture f(o);
  auto vmss = f.make_vmss("pool");
  f.create_node("pool-0", f.vmss_provider_id("pool", 0));
  auto id = f.azure_identity("id1");
  auto other_ns = f.kube.new_namespace("mic-other");
  auto other_id = f.azure_identity("other");
  f.create_identity("id1", id);
  f.create_binding("b1", "id1", "sel");
  f.create_identity("other", other_id, 0, other_ns);  // same selector, another namespace
  f.create_binding("b-other", "other", "sel", other_ns);
  f.create_pod("p1", "pool-0", "sel");
  auto name = f.aai_name("p1", "id1");
  REQUIRE(f.wait_for([&] {
    auto a = f.aai(name, f.ns);
    return a && a->status == "Assigned";
  }));
  f.settle(1s);
  auto all = f.aais();
  REQUIRE(all.size() == 1);
  CHECK(all[0].meta.ns == f.ns);
  CHECK(f.assigned(vmss) == std::set<std::string>{low(id.resource_id)});
}

TEST_CASE("mic: the namespaced annotation on one identity alone", "[mic][integration]") {
  MicFixture f;
  auto vmss = f.make_vmss("pool");
  f.create_node("pool-0", f.vmss_provider_id("pool", 0));
  auto id = f.azure_identity("id1");
  f.create_identity("id1", id);
  f.kube.kubectl({"annotate", "azureidentity", "id1", "-n", f.ns, "aadpodidentity.k8s.io/Behavior=namespaced"});
  f.create_binding("b1", "id1", "sel");
  auto other_ns = f.kube.new_namespace("mic-other");
  f.create_pod("p1", "pool-0", "sel", other_ns);  // another namespace: no match
  f.create_pod("p2", "pool-0", "sel");             // same namespace: AAI in the identity's namespace
  REQUIRE(f.wait_for([&] {
    auto a = f.aai(f.aai_name("p2", "id1"), f.ns);
    return a && a->status == "Assigned";
  }));
  f.settle(1s);
  CHECK(f.aais().size() == 1);
}
