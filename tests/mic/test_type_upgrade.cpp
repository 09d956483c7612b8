// The v1.6 type upgrade (lib/identity/mic/type_upgrade): key renaming as pure functions, and the
// whole procedure against a real kube-apiserver. Pre-1.6 objects only survive on CRDs that keep
// unknown fields (the schema-less CRDs of those releases), so this test installs the test CRDs
// of tests/kube with x-kubernetes-preserve-unknown-fields on every object node, on its own
// apiserver (never on one shared with other tests).
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/stream_parser.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "identity/mic/type_upgrade.hpp"
#include "kube/client.hpp"
#include "kube/config.hpp"
#include "kube/models.hpp"
#include "kube/resource.hpp"
#include "kube/typed.hpp"
#include "support/async.hpp"
#include "support/catch_result.hpp"
#include "support/kube_testenv.hpp"
#include "support/server_fixture.hpp"

using namespace aad;
namespace json = boost::json;
namespace mic = aad::identity::mic;
namespace res = aad::kube::resources;
using Outcome = mic::TypeUpgradeReport::Outcome;

namespace {

json::object parse(const std::string& s) { return json::parse(s).as_object(); }

}  // namespace

// ----------------------------------------------------------------------------------------------
// Pure renaming
// ----------------------------------------------------------------------------------------------

TEST_CASE("type upgrade renames the capitalised and pre-1.6 lower-case keys of an AzureIdentity") {
  auto o = parse(R"({"apiVersion":"aadpodidentity.k8s.io/v1","kind":"AzureIdentity",
    "metadata":{"name":"id","namespace":"ns","labels":{"ClientID":"label-kept"}},
    "spec":{"Type":1,"ClientID":"c","resourceid":"r","TenantID":"t","adendpoint":"e","adresourceid":"a",
            "ClientPassword":{"Name":"sec","Namespace":"ns"},"AuxiliaryTenantIDs":["x"],"Custom":"kept"},
    "Status":{"AvailableReplicas":1}})");
  CHECK(mic::legacy_keys::upgrade_identity(o));
  const auto& spec = o.at("spec").as_object();
  CHECK(spec.at("type") == 1);
  CHECK(spec.at("clientID") == "c");
  CHECK(spec.at("resourceID") == "r");
  CHECK(spec.at("tenantID") == "t");
  CHECK(spec.at("adEndpoint") == "e");
  CHECK(spec.at("adResourceID") == "a");
  CHECK(spec.at("auxiliaryTenantIDs").as_array().size() == 1);
  CHECK(spec.at("clientPassword") == json::parse(R"({"name":"sec","namespace":"ns"})"));
  CHECK(spec.at("Custom") == "kept");  // unknown keys are not ours to drop
  for (const char* old : {"Type", "ClientID", "resourceid", "TenantID", "adendpoint", "ClientPassword"})
    CHECK_FALSE(spec.contains(old));
  CHECK(o.at("status").at("availableReplicas") == 1);
  CHECK_FALSE(o.contains("Status"));
  CHECK(o.at("metadata").at("labels").at("ClientID") == "label-kept");  // metadata is not touched

  auto d = kube::AzureIdentity::decode(o);
  REQUIRE(d);
  CHECK(d->client_id == "c");
  CHECK(d->client_password->name == "sec");

  // A second pass finds nothing to do.
  CHECK_FALSE(mic::legacy_keys::upgrade_identity(o));
}

TEST_CASE("type upgrade: the camelCase key wins over a variant; among variants the last one") {
  auto o = parse(R"({"metadata":{"name":"id"},"spec":{"ClientID":"old","clientID":"new","CLIENTID":"older"}})");
  CHECK(mic::legacy_keys::upgrade_identity(o));
  CHECK(o.at("spec") == json::parse(R"({"clientID":"new"})"));

  auto v = parse(R"({"metadata":{"name":"id"},"spec":{"ClientID":"first","clientid":"last"}})");
  CHECK(mic::legacy_keys::upgrade_identity(v));
  CHECK(v.at("spec") == json::parse(R"({"clientID":"last"})"));
}

TEST_CASE("type upgrade renames binding and exception keys, never the pod label keys") {
  auto b = parse(R"({"metadata":{"name":"b"},"spec":{"AzureIdentity":"id","Selector":"sel","Weight":2}})");
  CHECK(mic::legacy_keys::upgrade_binding(b));
  CHECK(b.at("spec") == json::parse(R"({"azureIdentity":"id","selector":"sel","weight":2})"));

  auto e = parse(R"({"metadata":{"name":"e"},"spec":{"PodLabels":{"App":"x","podlabels":"y"}},"Status":{"Status":"s"}})");
  CHECK(mic::legacy_keys::upgrade_exception(e));
  CHECK(e.at("spec") == json::parse(R"({"podLabels":{"App":"x","podlabels":"y"}})"));
  CHECK(e.at("status") == json::parse(R"({"status":"s"})"));

  auto camel = parse(R"({"metadata":{"name":"b"},"spec":{"azureIdentity":"id","selector":"sel"}})");
  CHECK_FALSE(mic::legacy_keys::upgrade_binding(camel));
}

TEST_CASE("type upgrade renames an AzureAssignedIdentity and its embedded copies") {
  auto a = parse(R"({"metadata":{"name":"p-ns-id","labels":{"nodename":"n1"}},
    "spec":{"azureidentityref":{"metadata":{"name":"id"},"spec":{"ClientID":"c","resourceid":"r"}},
            "AzureBindingRef":{"metadata":{"name":"b"},"spec":{"Selector":"sel"}},
            "Pod":"p","podnamespace":"ns","NodeName":"n1"},
    "Status":{"Status":"Assigned","AvailableReplicas":1}})");
  auto c = mic::legacy_keys::upgrade_assigned(a);
  CHECK(c.any);
  CHECK(c.identity_ref);
  CHECK(c.binding_ref);
  auto d = kube::AzureAssignedIdentity::decode(a);
  REQUIRE(d);
  CHECK(d->pod == "p");
  CHECK(d->pod_namespace == "ns");
  CHECK(d->node_name == "n1");
  CHECK(d->status == "Assigned");
  CHECK(d->available_replicas == 1);
  CHECK(d->azure_identity_ref->client_id == "c");
  CHECK(d->azure_identity_ref->resource_id == "r");
  CHECK(d->azure_binding_ref->selector == "sel");
  // The copies get the TypeMeta an embedded resource needs (the original's fix #1057).
  CHECK(a.at("spec").at("azureIdentityRef").at("kind") == "AzureIdentity");
  CHECK(a.at("spec").at("azureIdentityRef").at("apiVersion") == "aadpodidentity.k8s.io/v1");
  CHECK(a.at("spec").at("azureBindingRef").at("kind") == "AzureIdentityBinding");

  // Only the AAI's own key renamed: the copies are reported unchanged.
  auto b = parse(R"({"metadata":{"name":"x"},"spec":{"Pod":"p","azureIdentityRef":{"apiVersion":"aadpodidentity.k8s.io/v1",
    "kind":"AzureIdentity","spec":{"clientID":"c"}}}})");
  auto cb = mic::legacy_keys::upgrade_assigned(b);
  CHECK(cb.any);
  CHECK_FALSE(cb.identity_ref);
  CHECK_FALSE(cb.binding_ref);
  CHECK_FALSE(mic::legacy_keys::upgrade_assigned(b).any);
}

// ----------------------------------------------------------------------------------------------
// Against the apiserver
// ----------------------------------------------------------------------------------------------

namespace {

// Marks every object node of a CRD schema that lists properties as keeping unknown fields.
void keep_unknown_fields(json::value& node) {
  if (!node.is_object()) return;
  auto& o = node.get_object();
  if (auto* p = o.if_contains("properties"); p && p->is_object()) {
    for (auto& kv : p->get_object()) keep_unknown_fields(kv.value());
    o["x-kubernetes-preserve-unknown-fields"] = true;  // last: inserting invalidates `p`
  }
  if (auto* items = o.if_contains("items")) keep_unknown_fields(*items);
}

void install_legacy_crds(test::KubeTestenv& kube) {
  // The CRDs are YAML (the manifest's verbatim copy): kubectl turns them into JSON offline.
  auto src = test::KubeTestenv::source_root() + "/tests/kube/testdata/crds.yaml";
  auto converted = kube.kubectl({"create", "--dry-run=client", "--validate=false", "-o", "json", "-f", src});
  if (converted.exit_code != 0) throw std::runtime_error("kubectl convert crds: " + converted.err);
  json::array crds;  // kubectl prints one JSON document per CRD, back to back
  json::stream_parser sp;
  std::string_view rest = converted.out;
  while (rest.find_first_not_of(" \t\r\n") != std::string_view::npos) {
    auto used = sp.write_some(rest.data(), rest.size());
    rest.remove_prefix(used);
    if (!sp.done()) sp.finish();
    crds.push_back(sp.release());
    sp.reset();
  }
  std::string out = "# a leading comment keeps kubectl in YAML mode (a JSON stream has no ---)\n";
  for (auto& crd : crds) {
    for (auto& v : crd.at("spec").at("versions").as_array())
      keep_unknown_fields(v.at("schema").at("openAPIV3Schema"));
    out += json::serialize(crd) + "\n---\n";
  }
  auto path = std::filesystem::temp_directory_path() / "aad-legacy-crds.yaml";
  std::ofstream(path, std::ios::trunc) << out;
  auto r = kube.kubectl({"apply", "-f", path.string()});
  if (r.exit_code != 0) throw std::runtime_error("kubectl apply legacy crds: " + r.err);
  r = kube.kubectl({"wait", "--for", "condition=established", "--timeout=60s", "-f", path.string()});
  if (r.exit_code != 0) throw std::runtime_error("kubectl wait legacy crds: " + r.err);
  std::filesystem::remove(path);
}

struct Env {
  boost::asio::io_context io;
  test::KubeTestenv& kube;
  std::unique_ptr<kube::Client> client;

  static test::KubeTestenv& own_apiserver() {
    static test::KubeTestenv instance{test::KubeTestenv::Options{}};  // legacy CRDs stay private
    static bool installed = (install_legacy_crds(instance), true);
    (void)installed;
    return instance;
  }
  Env() : kube(own_apiserver()) {
    auto config = kube::load_kubeconfig(kube.kubeconfig(), "");
    client = std::make_unique<kube::Client>(io.get_executor(), config,
                                            kube::ClientOptions{.qps = 100, .burst = 200});
  }
  template <typename T>
  T run(boost::asio::awaitable<T> aw) {
    return test::run_async(io, std::move(aw), std::chrono::seconds(120));
  }
  json::object create(const kube::Resource& r, const std::string& ns, const std::string& body) {
    auto obj = parse(body);  // named: no temporaries in coroutine arguments (GCC 12)
    auto made = run(client->create(r, ns, std::move(obj)));
    REQUIRE(made);
    return *made;
  }
  json::object get(const kube::Resource& r, const std::string& ns, const std::string& name) {
    auto got = run(client->get(r, ns, name));
    REQUIRE(got);
    return *got;
  }
  mic::TypeUpgradeResult upgrade(mic::TypeUpgradeOptions o) { return run(mic::run_type_upgrade(*client, std::move(o))); }
};

std::string rv(const json::object& o) { return kube::object_resource_version(o); }
const json::object& spec(const json::object& o) { return o.at("spec").as_object(); }

// name -> resourceVersion of every object of the four kinds in a namespace.
std::map<std::string, std::string> versions(Env& env, const std::string& ns) {
  std::map<std::string, std::string> out;
  for (const auto* r : {&res::azure_identities, &res::azure_identity_bindings, &res::azure_pod_identity_exceptions,
                        &res::azure_assigned_identities}) {
    kube::ListOptions options;
    auto l = env.run(env.client->list(*r, ns, std::move(options)));
    REQUIRE(l);
    for (const auto& o : l->items) out[r->resource + "/" + kube::object_key(o)] = rv(o);
  }
  return out;
}

// An embedded copy as pre-1.6 MIC wrote it: the object with lower-case keys.
json::object legacy_copy(json::object o, std::initializer_list<std::pair<const char*, const char*>> renames) {
  auto& s = o.at("spec").as_object();
  for (auto [from, to] : renames) {
    if (auto* v = s.if_contains(from)) {
      json::value x = *v;
      s.erase(from);
      s[to] = std::move(x);
    }
  }
  o.erase("apiVersion");  // the original's bug #1057: copies without TypeMeta
  o.erase("kind");
  return o;
}

const char* kRid = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/";

}  // namespace

TEST_CASE("type upgrade against the apiserver: capitalised objects rewritten, state kept, recorded once") {
  Env env;
  const auto ns = env.kube.new_namespace("upgrade");
  const auto mic_ns = env.kube.new_namespace("mic");

  // --- pre-1.6 objects, written through the raw API ---
  auto id1 = env.create(res::azure_identities, ns, fmt::format(R"({{"metadata":{{"name":"id1"}},
      "spec":{{"Type":0,"ClientID":"c1","ResourceID":"{}id1"}}}})", kRid));
  REQUIRE(spec(id1).contains("ClientID"));  // precondition: the legacy CRD kept the old key
  REQUIRE_FALSE(spec(id1).contains("clientID"));
  auto sp = env.create(res::azure_identities, ns, fmt::format(R"({{"metadata":{{"name":"sp"}},
      "spec":{{"type":1,"clientid":"c2","tenantid":"t","ClientPassword":{{"Name":"sec","Namespace":"{}"}}}}}})", ns));
  // Already camelCase (e.g. written by a run that crashed before recording): left alone, and an
  // AAI still embedding its old-keyed copy gets the current object.
  auto id2 = env.create(res::azure_identities, ns, fmt::format(R"({{"metadata":{{"name":"id2"}},
      "spec":{{"type":0,"clientID":"c3","resourceID":"{}id2"}}}})", kRid));
  // Malformed: a wrong type behind an old key, and one the apiserver refuses once renamed.
  // They come first in list order ("a..."), the others must still be upgraded.
  auto bad = env.create(res::azure_identities, ns, R"({"metadata":{"name":"a-bad"},"spec":{"ClientID":5}})");
  auto refused = env.create(res::azure_identity_bindings, ns,
                            R"({"metadata":{"name":"a-refused"},"spec":{"Selector":"s","Metadata":"not-an-object"}})");
  auto b1 = env.create(res::azure_identity_bindings, ns,
                       R"({"metadata":{"name":"b1"},"spec":{"AzureIdentity":"id1","Selector":"sel"}})");
  auto ex = env.create(res::azure_pod_identity_exceptions, ns,
                       R"({"metadata":{"name":"ex"},"spec":{"PodLabels":{"App":"x"}}})");

  auto id1_copy = legacy_copy(id1, {});  // id1 is already old-keyed
  auto b1_copy = legacy_copy(b1, {});
  auto aai_body = [&](const std::string& name, const json::object& idc, const json::object& bc) {
    return fmt::format(R"({{"metadata":{{"name":"{}","labels":{{"nodename":"node1"}},
        "finalizers":["azureassignedidentity.finalizers.aadpodidentity.k8s.io"]}},
        "spec":{{"azureidentityref":{},"azurebindingref":{},"Pod":"pod1","podnamespace":"{}","NodeName":"node1"}},
        "Status":{{"Status":"Assigned","AvailableReplicas":1}}}})",
                       name, json::serialize(idc), json::serialize(bc), ns);
  };
  auto aai = env.create(res::azure_assigned_identities, ns, aai_body("pod1-" + ns + "-id1", id1_copy, b1_copy));
  // Same AAI shape, but its copy says clientID "old": a change MIC has not processed yet.
  auto stale_copy = id1_copy;
  stale_copy["spec"].as_object()["ClientID"] = "old";
  auto stale = env.create(res::azure_assigned_identities, ns, aai_body("pod2-" + ns + "-id1", stale_copy, b1_copy));
  auto id2_copy = legacy_copy(id2, {{"clientID", "clientid"}, {"resourceID", "resourceid"}});
  auto resumed = env.create(res::azure_assigned_identities, ns, aai_body("pod3-" + ns + "-id2", id2_copy, b1_copy));
  REQUIRE(aai.contains("Status"));

  const auto before = versions(env, ns);
  mic::TypeUpgradeOptions opts;
  opts.ns = mic_ns;
  opts.version = "v-test";

  // --- disabled: nothing is read or written, no ConfigMap ---
  {
    auto off = opts;
    off.enabled = false;
    auto r = env.upgrade(off);
    REQUIRE(r);
    CHECK(r->outcome == Outcome::disabled);
    CHECK(versions(env, ns) == before);
    auto cm = env.run(env.client->get(res::configmaps, mic_ns, "aad-pod-identity-config"));
    REQUIRE_FALSE(cm);
    CHECK(cm.error().not_found());
  }

  // --- the upgrade ---
  auto r = env.upgrade(opts);
  REQUIRE(r);
  CHECK(r->outcome == Outcome::upgraded);
  CHECK(r->recorded_version == "v-test");
  CHECK(r->identities.listed == 4);
  CHECK(r->identities.rewritten == 2);  // id1, sp
  CHECK(r->identities.unchanged == 1);  // id2
  CHECK(r->identities.skipped == 1);    // a-bad
  CHECK(r->bindings.rewritten == 1);
  CHECK(r->bindings.skipped == 1);  // a-refused (422 from the apiserver)
  CHECK(r->exceptions.rewritten == 1);
  CHECK(r->assigned.rewritten == 3);
  REQUIRE(r->skipped.size() == 2);
  CHECK_THAT(r->skipped[0], Catch::Contains("AzureIdentity " + ns + "/a-bad") && Catch::Contains("clientID"));
  CHECK_THAT(r->skipped[1], Catch::Contains("AzureIdentityBinding " + ns + "/a-refused"));

  auto id1_now = env.get(res::azure_identities, ns, "id1");
  CHECK(spec(id1_now) == json::parse(fmt::format(R"({{"type":0,"clientID":"c1","resourceID":"{}id1"}})", kRid)));
  CHECK(rv(id1_now) != rv(id1));
  auto sp_now = env.get(res::azure_identities, ns, "sp");
  CHECK(spec(sp_now) ==
        json::parse(fmt::format(R"({{"type":1,"clientID":"c2","tenantID":"t","clientPassword":{{"name":"sec","namespace":"{}"}}}})", ns)));
  CHECK(rv(env.get(res::azure_identities, ns, "id2")) == rv(id2));
  auto bad_now = env.get(res::azure_identities, ns, "a-bad");
  CHECK(rv(bad_now) == rv(bad));  // left exactly as it was, not deleted
  CHECK(spec(bad_now).at("ClientID") == 5);
  CHECK(rv(env.get(res::azure_identity_bindings, ns, "a-refused")) == rv(refused));
  auto b1_now = env.get(res::azure_identity_bindings, ns, "b1");
  CHECK(spec(b1_now) == json::parse(R"({"azureIdentity":"id1","selector":"sel"})"));
  CHECK(spec(env.get(res::azure_pod_identity_exceptions, ns, "ex")) == json::parse(R"({"podLabels":{"App":"x"}})"));

  // The AAI: state, label, finalizer kept; copies are now the current objects with TypeMeta, so
  // MIC sees an AAI exactly as it would write it and assigns nothing again.
  auto aai_now = env.get(res::azure_assigned_identities, ns, "pod1-" + ns + "-id1");
  auto typed = kube::AzureAssignedIdentity::decode(aai_now);
  REQUIRE(typed);
  CHECK(typed->status == "Assigned");
  CHECK(typed->available_replicas == 1);
  CHECK(typed->meta.labels == kube::StringMap{{"nodename", "node1"}});
  CHECK(typed->meta.finalizers == std::vector<std::string>{"azureassignedidentity.finalizers.aadpodidentity.k8s.io"});
  CHECK(typed->pod == "pod1");
  CHECK(typed->pod_namespace == ns);
  CHECK(typed->node_name == "node1");
  CHECK_FALSE(aai_now.contains("Status"));
  REQUIRE(typed->azure_identity_ref);
  CHECK(typed->azure_identity_ref->client_id == "c1");
  CHECK(typed->azure_identity_ref->meta.resource_version == rv(id1_now));
  CHECK(typed->azure_identity_ref->meta.uid == id1_now.at("metadata").at("uid").as_string());
  const auto& ref = spec(aai_now).at("azureIdentityRef").as_object();
  CHECK(ref.at("apiVersion") == "aadpodidentity.k8s.io/v1");
  CHECK(ref.at("kind") == "AzureIdentity");
  CHECK_FALSE(ref.at("metadata").as_object().contains("managedFields"));
  REQUIRE(typed->azure_binding_ref);
  CHECK(typed->azure_binding_ref->selector == "sel");
  CHECK(typed->azure_binding_ref->meta.resource_version == rv(b1_now));

  // The stale copy keeps its (renamed) content and version: MIC still sees the pending change.
  auto stale_now = kube::AzureAssignedIdentity::decode(env.get(res::azure_assigned_identities, ns, "pod2-" + ns + "-id1"));
  REQUIRE(stale_now);
  CHECK(stale_now->azure_identity_ref->client_id == "old");
  CHECK(stale_now->azure_identity_ref->meta.resource_version == rv(id1));
  CHECK(stale_now->status == "Assigned");
  CHECK(stale_now->azure_identity_ref->raw.at("kind") == "AzureIdentity");
  // Resumed after a crash: id2 was already upgraded; the AAI's old-keyed copy becomes id2.
  auto resumed_now = kube::AzureAssignedIdentity::decode(env.get(res::azure_assigned_identities, ns, "pod3-" + ns + "-id2"));
  REQUIRE(resumed_now);
  CHECK(resumed_now->azure_identity_ref->client_id == "c3");
  CHECK(resumed_now->azure_identity_ref->meta.resource_version == rv(id2));
  (void)resumed;
  (void)stale;

  auto cm = env.run(kube::get<kube::ConfigMap>(*env.client, mic_ns, "aad-pod-identity-config"));
  REQUIRE(cm);
  CHECK(cm->data == kube::StringMap{{"type-upgrade-status", "v-test"}});

  // --- re-run: recorded, so nothing is listed or written ---
  const auto after = versions(env, ns);
  auto again = env.upgrade(opts);
  REQUIRE(again);
  CHECK(again->outcome == Outcome::already_done);
  CHECK(again->recorded_version == "v-test");
  CHECK(again->identities.listed == 0);
  CHECK(versions(env, ns) == after);

  // --- a crash before recording: a full second pass rewrites nothing; other ConfigMap keys kept ---
  auto cm_edit = *cm;
  cm_edit.data = {{"other", "kept"}};
  REQUIRE(env.run(kube::update(*env.client, cm_edit)));
  auto second = env.upgrade(opts);
  REQUIRE(second);
  CHECK(second->outcome == Outcome::upgraded);
  CHECK(second->identities.rewritten + second->bindings.rewritten + second->exceptions.rewritten +
            second->assigned.rewritten ==
        0);
  CHECK(second->skipped.size() == 2);  // still there, still untouched
  CHECK(versions(env, ns) == after);
  auto cm2 = env.run(kube::get<kube::ConfigMap>(*env.client, mic_ns, "aad-pod-identity-config"));
  REQUIRE(cm2);
  CHECK(cm2->data == kube::StringMap{{"other", "kept"}, {"type-upgrade-status", "v-test"}});
}

TEST_CASE("type upgrade with a custom ConfigMap name and key; an unreachable apiserver is an error") {
  Env env;
  const auto mic_ns = env.kube.new_namespace("mic");
  mic::TypeUpgradeOptions opts;
  opts.ns = mic_ns;
  opts.config_map_name = "custom-config";
  opts.status_key = "custom-key";
  auto r = env.upgrade(opts);
  REQUIRE(r);
  CHECK(r->outcome == Outcome::upgraded);
  auto cm = env.run(kube::get<kube::ConfigMap>(*env.client, mic_ns, "custom-config"));
  REQUIRE(cm);
  REQUIRE(cm->data.contains("custom-key"));
  CHECK_FALSE(cm->data.at("custom-key").empty());  // our version when none is given

  // No apiserver: an error, nothing recorded (the caller retries or exits like the original).
  kube::Config dead = kube::load_kubeconfig(env.kube.kubeconfig(), "");
  dead.server = "https://127.0.0.1:1";
  kube::Client client(env.io.get_executor(), dead, kube::ClientOptions{.max_retries = 0});
  auto failed = env.run(mic::run_type_upgrade(client, opts));
  REQUIRE_FALSE(failed);
  CHECK(failed.error().code == 0);
}

// ----------------------------------------------------------------------------------------------
// 409 handling, on a scripted apiserver (the real one gives no way to change an object between
// our LIST and our PUT).
// ----------------------------------------------------------------------------------------------

namespace {

struct ScriptedApiserver {
  int identity_conflicts = 1;  // PUTs of the identity answered 409 before one succeeds
  std::vector<json::object> identity_puts;
  std::vector<json::object> configmap_puts;
  test::ServerFixture fx{[this](http::Request& req, const http::RequestContext&) -> boost::asio::awaitable<http::Response> {
    std::string target(req.target());
    auto reply = [&](http::Status st, const std::string& body) {
      return http::make_response(req, st, body, "application/json");
    };
    const std::string crd = "/apis/aadpodidentity.k8s.io/v1/";
    const std::string identity = crd + "namespaces/ns/azureidentities/id";
    if (req.method() == http::Verb::get && target.starts_with("/api/v1/namespaces/mic/configmaps/aad-pod-identity-config"))
      co_return reply(http::Status::ok, R"({"metadata":{"name":"aad-pod-identity-config","namespace":"mic","resourceVersion":"1"}})");
    if (req.method() == http::Verb::put && target.starts_with("/api/v1/namespaces/mic/configmaps/")) {
      configmap_puts.push_back(json::parse(req.body()).as_object());
      co_return reply(http::Status::ok, req.body());
    }
    if (req.method() == http::Verb::get && target.starts_with(crd + "azureidentities?"))
      co_return reply(http::Status::ok, R"({"metadata":{"resourceVersion":"9"},"items":[{"metadata":{"name":"id",
          "namespace":"ns","resourceVersion":"5"},"spec":{"ClientID":"listed"}}]})");
    if (req.method() == http::Verb::get && target == identity)  // the fresh copy after a conflict
      co_return reply(http::Status::ok, R"({"metadata":{"name":"id","namespace":"ns","resourceVersion":"6"},
          "spec":{"ClientID":"fresh"}})");
    if (req.method() == http::Verb::put && target == identity) {
      identity_puts.push_back(json::parse(req.body()).as_object());
      if (static_cast<int>(identity_puts.size()) <= identity_conflicts)
        co_return reply(http::Status::conflict, R"({"kind":"Status","code":409,"reason":"Conflict",
            "message":"the object has been modified"})");
      co_return reply(http::Status::ok, req.body());
    }
    if (req.method() == http::Verb::get && target.starts_with(crd))  // the other kinds: empty lists
      co_return reply(http::Status::ok, R"({"metadata":{"resourceVersion":"9"},"items":[]})");
    co_return reply(http::Status::not_found, R"({"kind":"Status","code":404,"reason":"NotFound"})");
  }};

  mic::TypeUpgradeResult upgrade(int max_conflict_retries) {
    return fx.run([this, max_conflict_retries]() -> boost::asio::awaitable<mic::TypeUpgradeResult> {
      kube::Config cfg;
      cfg.server = "http://127.0.0.1:" + std::to_string(fx.port());
      kube::ClientOptions co;
      co.qps = 0;
      co.max_retries = 0;
      kube::Client client(co_await boost::asio::this_coro::executor, cfg, co);
      mic::TypeUpgradeOptions o;
      o.ns = "mic";
      o.version = "v-test";
      o.max_conflict_retries = max_conflict_retries;
      auto r = co_await mic::run_type_upgrade(client, o);
      co_return r;
    });
  }
};

}  // namespace

TEST_CASE("type upgrade: a 409 is retried on a fresh GET of the object") {
  ScriptedApiserver api;
  auto r = api.upgrade(5);
  REQUIRE(r);
  CHECK(r->outcome == Outcome::upgraded);
  CHECK(r->identities.rewritten == 1);
  REQUIRE(api.identity_puts.size() == 2);
  CHECK(api.identity_puts[0].at("spec") == json::parse(R"({"clientID":"listed"})"));
  CHECK(rv(api.identity_puts[0]) == "5");
  // The retry is built from what the server holds now, not from the stale listed copy.
  CHECK(api.identity_puts[1].at("spec") == json::parse(R"({"clientID":"fresh"})"));
  CHECK(rv(api.identity_puts[1]) == "6");
  REQUIRE(api.configmap_puts.size() == 1);
  CHECK(api.configmap_puts[0].at("data").at("type-upgrade-status") == "v-test");
}

TEST_CASE("type upgrade: endless conflicts are an error and nothing is recorded") {
  ScriptedApiserver api;
  api.identity_conflicts = 100;
  auto r = api.upgrade(2);
  REQUIRE_FALSE(r);
  CHECK(r.error().conflict());
  CHECK(api.identity_puts.size() == 3);  // the first PUT and two retries
  CHECK(api.configmap_puts.empty());
}
