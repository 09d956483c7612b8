#include <catch2/catch.hpp>

#include "identity/matching.hpp"

using namespace aad;
using namespace aad::identity;
using Outcome = Selection::Outcome;

namespace {

kube::Pod pod(std::string ns, std::string name, std::string selector) {
  kube::Pod p;
  p.meta.ns = std::move(ns);
  p.meta.name = std::move(name);
  if (!selector.empty()) p.meta.labels["aadpodidbinding"] = std::move(selector);
  p.node_name = "node-1";
  return p;
}

kube::AzureIdentity make_identity(std::string ns, std::string name, std::string client_id) {
  kube::AzureIdentity id;
  id.meta.ns = std::move(ns);
  id.meta.name = std::move(name);
  id.client_id = std::move(client_id);
  id.resource_id = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" +
                   id.meta.name;
  return id;
}

kube::AzureIdentityBinding binding(std::string ns, std::string name, std::string identity_name, std::string selector) {
  kube::AzureIdentityBinding b;
  b.meta.ns = std::move(ns);
  b.meta.name = std::move(name);
  b.azure_identity = std::move(identity_name);
  b.selector = std::move(selector);
  return b;
}

kube::AzureAssignedIdentity aai(const kube::Pod& p, const kube::AzureIdentity& id, std::string status) {
  kube::AzureAssignedIdentity a;
  a.meta.ns = "default";
  a.meta.name = p.meta.name + "-" + p.meta.ns + "-" + id.meta.name;
  a.pod = p.meta.name;
  a.pod_namespace = p.meta.ns;
  a.node_name = p.node_name;
  a.azure_identity_ref = id;
  a.status = std::move(status);
  return a;
}

template <typename T>
std::vector<const T*> ptrs(const std::vector<T>& v) {
  std::vector<const T*> out;
  for (const auto& x : v) out.push_back(&x);
  return out;
}

}  // namespace

TEST_CASE("bound identities: selector equality, binding order, identity in the binding's namespace") {
  auto p = pod("apps", "web", "web-id");
  std::vector<kube::AzureIdentity> ids{make_identity("apps", "id-a", "A"), make_identity("other", "id-b", "B"),
                                       make_identity("zzz", "id-a", "Z")};
  std::vector<kube::AzureIdentityBinding> bs{binding("zzz", "b1", "id-a", "web-id"),
                                             binding("apps", "b2", "id-a", "web-id"),
                                             binding("other", "b3", "id-b", "web-id"),
                                             binding("apps", "b4", "missing", "web-id"),
                                             binding("apps", "b5", "id-a", "not-this")};
  auto bound = bound_identities(p, ptrs(bs), ptrs(ids), false);
  REQUIRE(bound.size() == 3);
  CHECK(bound[0].binding->meta.name == "b2");  // (apps, b2) sorts first
  CHECK(bound[0].identity->client_id == "A");
  CHECK(bound[1].identity->client_id == "B");  // cross-namespace allowed by default
  CHECK(bound[2].identity->client_id == "Z");

  auto namespaced = bound_identities(p, ptrs(bs), ptrs(ids), true);
  REQUIRE(namespaced.size() == 1);
  CHECK(namespaced[0].identity->client_id == "A");

  ids[1].meta.annotations["aadpodidentity.k8s.io/Behavior"] = "namespaced";
  CHECK(bound_identities(p, ptrs(bs), ptrs(ids), false).size() == 2);  // id-b opted into namespaced
  CHECK(bound_identities(pod("apps", "x", ""), ptrs(bs), ptrs(ids), false).empty());
}

TEST_CASE("exceptions: same namespace, any label, value case-insensitive") {
  auto p = pod("kube-system", "mic-1", "");
  p.meta.labels["app"] = "MIC";
  kube::AzurePodIdentityException e;
  e.meta.ns = "kube-system";
  e.pod_labels = {{"component", "mic"}, {"app", "mic"}};
  CHECK(is_excepted(p, {&e}));
  e.meta.ns = "default";
  CHECK_FALSE(is_excepted(p, {&e}));
}

TEST_CASE("the MIC short-circuit") {
  auto p = pod("Default", "mic-abc-123", "");
  p.meta.owner_references.push_back({"apps/v1", "ReplicaSet", "mic-5d8f", "uid", true, true});
  CHECK(is_mic_pod(p, "default"));
  CHECK_FALSE(is_mic_pod(p, "kube-system"));
  p.meta.owner_references[0].name = "web-5d8f";
  CHECK_FALSE(is_mic_pod(p, "default"));
  // Only the ReplicaSet of a Deployment named exactly "mic" (the original: any name starting "mic").
  for (auto name : {"microservice-7d9f", "mic-frontend-abc", "mic", "mic-", "mic-7d9f-x", "mic-7D9F", "mic-abc",
                    "mic-7d9f5b6c4x2", "Mic-7d9f", "xmic-7d9f", "mic-7d9f "}) {
    INFO(name);
    p.meta.owner_references[0].name = name;
    CHECK_FALSE(is_mic_pod(p, "default"));
  }
  for (auto name : {"mic-5d8f", "mic-b", "mic-7d9f5b6c4x", "mic-bcdfghjklm", "mic-nprstvwxz2", "mic-456789"}) {
    INFO(name);
    p.meta.owner_references[0].name = name;
    CHECK(is_mic_pod(p, "default"));
  }
  // The first ReplicaSet owner decides; owners of other kinds do not count.
  p.meta.owner_references[0] = {"apps/v1", "ReplicaSet", "microservice-7d9f", "uid", true, true};
  p.meta.owner_references.push_back({"apps/v1", "ReplicaSet", "mic-5d8f", "uid2", false, false});
  CHECK_FALSE(is_mic_pod(p, "default"));
  p.meta.owner_references[0] = {"apps/v1", "StatefulSet", "mic", "uid", true, true};
  CHECK(is_mic_pod(p, "default"));
}

TEST_CASE("NMI selection: found, wait or never, never a guess") {
  auto p = pod("apps", "web", "web-id");
  auto a = make_identity("apps", "id-a", "AAAA-1111");
  auto b = make_identity("apps", "id-b", "BBBB-2222");
  std::vector<kube::AzureIdentityBinding> bs{binding("apps", "ba", "id-a", "web-id"),
                                             binding("apps", "bb", "id-b", "web-id")};
  std::vector<kube::AzureIdentity> ids{a, b};
  auto bound = bound_identities(p, ptrs(bs), ptrs(ids), false);

  SECTION("assigned identity found by client_id, case-insensitively") {
    std::vector<kube::AzureAssignedIdentity> aais{aai(p, a, "Assigned"), aai(p, b, "Assigned")};
    auto s = select_identity(p, ptrs(aais), bound, {"bbbb-2222", ""}, false);
    REQUIRE(s.outcome == Outcome::found);
    CHECK(s.identity->meta.name == "id-b");
    auto by_resource = select_identity(p, ptrs(aais), bound, {"", "/SUBSCRIPTIONS/s/resourcegroups/rg/providers/"
                                                                  "Microsoft.ManagedIdentity/userAssignedIdentities/id-a"},
                                       false);
    REQUIRE(by_resource.outcome == Outcome::found);
    CHECK(by_resource.identity->meta.name == "id-a");
  }
  SECTION("nothing requested: deterministic first by (namespace, name)") {
    std::vector<kube::AzureAssignedIdentity> aais{aai(p, b, "Assigned"), aai(p, a, "Assigned")};
    for (int i = 0; i < 3; ++i) CHECK(select_identity(p, ptrs(aais), bound, {}, false).identity->meta.name == "id-a");
  }
  SECTION("Created means wait; legacy empty status is usable") {
    std::vector<kube::AzureAssignedIdentity> created{aai(p, a, "Created")};
    CHECK(select_identity(p, ptrs(created), bound, {"AAAA-1111", ""}, false).outcome == Outcome::wait);
    std::vector<kube::AzureAssignedIdentity> legacy{aai(p, a, "")};
    CHECK(select_identity(p, ptrs(legacy), bound, {}, false).outcome == Outcome::found);
  }
  SECTION("bound but no AAI yet: wait") {
    CHECK(select_identity(p, {}, bound, {"aaaa-1111", ""}, false).outcome == Outcome::wait);
  }
  SECTION("never: unlabelled pod, unbound client_id, another pod's AAI") {
    CHECK(select_identity(pod("apps", "web", ""), {}, bound, {}, false).outcome == Outcome::never);
    auto unbound = select_identity(p, {}, bound, {"cccc-3333", ""}, false);
    CHECK(unbound.outcome == Outcome::never);
    CHECK(unbound.reason == "the requested identity is not bound to this pod");
    auto other = pod("apps", "other", "other-id");
    std::vector<kube::AzureAssignedIdentity> theirs{aai(other, a, "Assigned")};
    CHECK(select_identity(p, ptrs(theirs), {}, {"AAAA-1111", ""}, false).outcome == Outcome::never);
  }
  SECTION("namespaced mode drops identities from other namespaces") {
    auto foreign = make_identity("elsewhere", "id-x", "XXXX");
    std::vector<kube::AzureAssignedIdentity> aais{aai(p, foreign, "Assigned")};
    CHECK(select_identity(p, ptrs(aais), {}, {}, false).outcome == Outcome::found);
    CHECK(select_identity(p, ptrs(aais), {}, {}, true).outcome == Outcome::never);
  }
}
