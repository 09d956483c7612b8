// Pure logic of lib/kube: kubeconfig and in-cluster parsing, codecs, backoff, rate limiting,
// Retry-After, times; and the streaming HTTP reader against a local server.
#include "catch_kube.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <fstream>

#include "kube/cache.hpp"
#include "kube/config.hpp"
#include "kube/models.hpp"
#include "kube/rate.hpp"
#include "support/async.hpp"
#include "support/test_certs.hpp"

using namespace aad;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

std::string b64(const std::string& s) { return kube::base64_encode(s); }

std::string kubeconfig_text(const std::string& user_block, const std::string& cluster_extra = {}) {
  return "apiVersion: v1\nkind: Config\ncurrent-context: ctx\n"
         "clusters:\n- name: c1\n  cluster:\n    server: https://10.1.2.3:6443/\n" +
         cluster_extra +
         "contexts:\n- name: ctx\n  context:\n    cluster: c1\n    user: u1\n    namespace: team\n"
         "- name: other\n  context:\n    cluster: c1\n    user: u2\n"
         "users:\n- name: u1\n  user:\n" +
         user_block + "- name: u2\n  user:\n    token: second\n";
}

json::object obj(const std::string& text) { return json::parse(text).as_object(); }

}  // namespace

TEST_CASE("kubeconfig: current context, CA data, client cert data, token") {
  auto& pki = test::test_pki();
  auto text = kubeconfig_text("    client-certificate-data: " + b64(pki.client.cert_pem) +
                                  "\n    client-key-data: " + b64(pki.client.key_pem) + "\n    token: abc\n",
                              "    certificate-authority-data: " + b64(pki.ca.cert_pem) + "\n");
  auto c = kube::parse_kubeconfig(text, "/nowhere");
  CHECK(c.server == "https://10.1.2.3:6443");
  CHECK(c.ns == "team");
  CHECK(c.token == "abc");
  CHECK(c.tls.ca_pem == pki.ca.cert_pem);
  CHECK(c.tls.cert_pem == pki.client.cert_pem);
  CHECK(c.tls.key_pem == pki.client.key_pem);
  CHECK_FALSE(c.tls.insecure_skip_verify);
  auto o = kube::parse_kubeconfig(text, "/nowhere", "other");
  CHECK(o.token == "second");
  CHECK(o.ns == "default");
}

TEST_CASE("kubeconfig: files relative to the kubeconfig, tokenFile, insecure-skip-tls-verify") {
  auto dir = std::filesystem::temp_directory_path() / ("kubecfg-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto& pki = test::test_pki();
  std::ofstream(dir / "ca.pem") << pki.ca.cert_pem;
  std::ofstream(dir / "tok") << "file-token\n";
  auto text = kubeconfig_text("    tokenFile: tok\n", "    certificate-authority: ca.pem\n    insecure-skip-tls-verify: true\n");
  std::ofstream(dir / "config") << text;
  auto c = kube::load_kubeconfig((dir / "config").string());
  CHECK(c.tls.ca_pem == pki.ca.cert_pem);
  CHECK(c.token_file == (dir / "tok").string());
  CHECK(c.tls.insecure_skip_verify);
  CHECK(c.source.find("context ctx") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("kubeconfig: each broken piece has its own error") {
  auto msg = [](const std::string& text, const std::string& ctx = {}) {
    try {
      kube::parse_kubeconfig(text, "/nowhere", ctx);
    } catch (const kube::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(msg("{ unclosed"), Catch::Contains("invalid YAML"));
  CHECK_THAT(msg("apiVersion: v1\n"), Catch::Contains("no current-context"));
  CHECK_THAT(msg(kubeconfig_text("    token: x\n"), "missing"), Catch::Contains("context \"missing\" not found"));
  CHECK_THAT(msg(kubeconfig_text("    client-certificate-data: " + b64("x") + "\n")),
             Catch::Contains("without key"));
  CHECK_THAT(msg(kubeconfig_text("    token: x\n", "    certificate-authority: /does/not/exist\n")),
             Catch::Contains("certificate-authority /does/not/exist"));
  CHECK_THAT(msg(kubeconfig_text("    tokenFile: /does/not/exist\n")), Catch::Contains("tokenFile"));
  CHECK_THAT(msg(kubeconfig_text("    token: x\n", "    certificate-authority-data: '!!!'\n")),
             Catch::Contains("base64"));
  CHECK_THAT(msg("current-context: a\ncontexts:\n- name: a\n  context:\n    cluster: nope\n"),
             Catch::Contains("cluster \"nope\" not found"));
  CHECK_THAT(msg("current-context: a\ncontexts:\n- name: a\n  context:\n    cluster: c\nclusters:\n- name: c\n  cluster: {}\n"),
             Catch::Contains("has no server"));
  CHECK_THAT(msg(kubeconfig_text("    exec:\n      command: foo\n")), Catch::Contains("not supported"));
  CHECK_THROWS_AS(kube::load_kubeconfig("/does/not/exist"), kube::ConfigError);
}

TEST_CASE("in-cluster: env and service-account directory, with clear errors") {
  auto dir = std::filesystem::temp_directory_path() / ("sa-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  kube::InClusterOptions o;
  o.dir = dir.string();
  std::map<std::string, std::string> env{{"KUBERNETES_SERVICE_HOST", "fd00::1"}, {"KUBERNETES_SERVICE_PORT", "443"}};
  o.getenv = [&](const std::string& k) -> std::optional<std::string> {
    auto it = env.find(k);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  auto err = [&] {
    try {
      kube::in_cluster(o);
    } catch (const kube::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(err(), Catch::Contains("service account token"));
  std::ofstream(dir / "token") << "t0k";
  CHECK_THAT(err(), Catch::Contains("service account CA"));
  std::ofstream(dir / "ca.crt") << test::test_pki().ca.cert_pem;
  std::ofstream(dir / "namespace") << "kube-system\n";
  auto c = kube::in_cluster(o);
  CHECK(c.server == "https://[fd00::1]:443");
  CHECK(c.token_file == (dir / "token").string());
  CHECK(c.ns == "kube-system");
  env.erase("KUBERNETES_SERVICE_PORT");
  CHECK_THAT(err(), Catch::Contains("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("pod codec: the fields we use, unknown fields ignored, round trip keeps the rest") {
  auto o = obj(R"({"apiVersion":"v1","kind":"Pod",
    "metadata":{"name":"p","namespace":"ns","uid":"u1","resourceVersion":"42","labels":{"aadpodidbinding":"sel"},
      "annotations":{"a":"b"},"deletionTimestamp":"2024-01-02T03:04:05Z",
      "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"r1","controller":true,"extra":1}],
      "managedFields":[{"x":1}]},
    "spec":{"nodeName":"n1","hostNetwork":true,"containers":[{"name":"c","image":"i"}]},
    "status":{"phase":"Running","podIP":"10.0.0.1","podIPs":[{"ip":"10.0.0.1"},{"ip":"fd00::1"}],"qosClass":"BestEffort"}})");
  auto p = kube::Pod::decode(o);
  REQUIRE(p);
  CHECK(p->key() == "ns/p");
  CHECK(p->meta.labels.at("aadpodidbinding") == "sel");
  CHECK(p->meta.annotations.at("a") == "b");
  CHECK(p->meta.deletion_timestamp.value() == "2024-01-02T03:04:05Z");
  REQUIRE(p->meta.owner_references.size() == 1);
  CHECK(p->meta.owner_references[0].controller.value());
  CHECK(p->node_name == "n1");
  CHECK(p->host_network);
  CHECK(p->phase == "Running");
  CHECK(p->pod_ips == std::vector<std::string>{"10.0.0.1", "fd00::1"});
  CHECK(kube::index::pod_ips(*p) == std::vector<std::string>{"10.0.0.1", "fd00::1"});
  CHECK(p->encode() == o);  // nothing changed: byte-identical JSON
  auto q = *p;
  q.node_name = "n2";
  q.meta.labels.erase("aadpodidbinding");
  auto e = q.encode();
  CHECK(e.at("spec").at("nodeName") == "n2");
  CHECK(e.at("spec").at("containers").as_array().size() == 1);  // unknown field kept for PUT
  CHECK(e.at("metadata").at("labels").as_object().empty());
  CHECK(e.at("metadata").at("ownerReferences").at(0).at("extra") == 1);
}

TEST_CASE("codecs: missing optional fields default, a wrong type is a clear error for that object") {
  auto p = kube::Pod::decode(obj(R"({"metadata":{"name":"p"}})"));
  REQUIRE(p);
  CHECK(p->node_name.empty());
  CHECK_FALSE(p->host_network);
  CHECK(p->pod_ips.empty());
  auto bad = kube::Pod::decode(obj(R"({"metadata":{"name":"p","namespace":"n"},"spec":{"hostNetwork":"yes"}})"));
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message, Catch::Contains("Pod n/p") && Catch::Contains("spec.hostNetwork: expected boolean"));
  auto badlabels = kube::Pod::decode(obj(R"({"metadata":{"name":"p","labels":{"a":1}}})"));
  REQUIRE_FALSE(badlabels);
  CHECK_THAT(badlabels.error().message, Catch::Contains("metadata.labels"));
  auto id = kube::AzureIdentity::decode(obj(R"({"metadata":{"name":"i"},"spec":{"type":"0"}})"));
  REQUIRE_FALSE(id);
  CHECK_THAT(id.error().message, Catch::Contains("spec.type: expected 32-bit integer"));
  auto aai = kube::AzureAssignedIdentity::decode(
      obj(R"({"metadata":{"name":"a"},"spec":{"azureIdentityRef":{"spec":{"clientID":7}}}})"));
  REQUIRE_FALSE(aai);
  CHECK_THAT(aai.error().message, Catch::Contains("spec.azureIdentityRef") && Catch::Contains("clientID"));
}

TEST_CASE("CRD codecs: section 1 field names, embedded identity/binding, states") {
  auto o = obj(R"({"apiVersion":"aadpodidentity.k8s.io/v1","kind":"AzureAssignedIdentity",
    "metadata":{"name":"p-ns-id","namespace":"default","labels":{"nodename":"n1"},
      "finalizers":["azureassignedidentity.finalizers.aadpodidentity.k8s.io"]},
    "spec":{"azureIdentityRef":{"apiVersion":"aadpodidentity.k8s.io/v1","kind":"AzureIdentity",
        "metadata":{"name":"id","namespace":"ns","resourceVersion":"5"},
        "spec":{"type":1,"clientID":"cid","resourceID":"/subscriptions/s","tenantID":"t",
                "clientPassword":{"name":"sec","namespace":"ns"},"auxiliaryTenantIDs":["a1","a2"],
                "adEndpoint":"https://login/","replicas":null}},
      "azureBindingRef":{"apiVersion":"aadpodidentity.k8s.io/v1","kind":"AzureIdentityBinding",
        "metadata":{"name":"b","namespace":"ns"},"spec":{"azureIdentity":"id","selector":"sel","weight":3}},
      "pod":"p","podNamespace":"ns","nodename":"n1","replicas":1},
    "status":{"status":"Assigned","availableReplicas":1}})");
  auto a = kube::AzureAssignedIdentity::decode(o);
  REQUIRE(a);
  CHECK(a->pod == "p");
  CHECK(a->pod_namespace == "ns");
  CHECK(a->node_name == "n1");
  CHECK(a->replicas.value() == 1);
  CHECK(a->status == kube::kAssignedIDAssigned);
  CHECK(a->available_replicas == 1);
  REQUIRE(a->azure_identity_ref);
  CHECK(a->azure_identity_ref->type == 1);
  CHECK(a->azure_identity_ref->client_id == "cid");
  CHECK(a->azure_identity_ref->client_password->name == "sec");
  CHECK(a->azure_identity_ref->auxiliary_tenant_ids.size() == 2);
  CHECK_FALSE(a->azure_identity_ref->replicas);
  CHECK(a->azure_binding_ref->selector == "sel");
  CHECK(a->azure_binding_ref->weight == 3);
  CHECK(kube::index::assigned_pod(*a) == std::vector<std::string>{"ns/p"});
  CHECK(kube::index::assigned_node(*a) == std::vector<std::string>{"n1"});
  auto back = a->encode();
  CHECK(back.at("spec").at("azureIdentityRef").at("spec").at("clientID") == "cid");
  CHECK(back.at("status") == o.at("status"));
  CHECK(back.at("spec").at("nodename") == "n1");
  auto ex = kube::AzurePodIdentityException::decode(
      obj(R"({"metadata":{"name":"e"},"spec":{"podLabels":{"app":"x"}},"status":{"status":"ok"}})"));
  REQUIRE(ex);
  CHECK(ex->pod_labels.at("app") == "x");
  auto id0 = kube::AzureIdentity{};
  id0.meta.name = "n";
  CHECK(id0.encode().at("spec").at("type") == 0);  // type 0 is written explicitly
}

TEST_CASE("CRD codecs read the camelCase keys only, as v1.8.17's readers do") {
  // v1.8.17 decodes through client-go's case-sensitive JSON (section 1.9.2): an object still
  // carrying pre-1.6 keys is invisible until MIC's type upgrade (identity/mic/type_upgrade)
  // rewrites it. Reading old keys here would assign and serve identities the original ignores.
  auto id = kube::AzureIdentity::decode(obj(R"({"metadata":{"name":"id"},
    "spec":{"ClientID":"c","ResourceID":"/subscriptions/s","clientid":"c2"}})"));
  REQUIRE(id);
  CHECK(id->client_id.empty());
  CHECK(id->resource_id.empty());
  CHECK(id->encode().at("spec").at("ClientID") == "c");  // kept for the upgrade to rename
  auto b = kube::AzureIdentityBinding::decode(obj(R"({"metadata":{"name":"b"},"spec":{"Selector":"s"}})"));
  REQUIRE(b);
  CHECK(b->selector.empty());
}

TEST_CASE("secret, configmap, lease and event codecs") {
  auto s = kube::Secret::decode(obj(R"({"metadata":{"name":"s"},"type":"Opaque","data":{"clientSecret":")" +
                                        b64("p@ss\n") + R"("}})"));
  REQUIRE(s);
  CHECK(s->data.at("clientSecret") == "p@ss\n");
  CHECK(s->encode().at("data").at("clientSecret").as_string() == b64("p@ss\n"));
  CHECK_FALSE(kube::Secret::decode(obj(R"({"metadata":{"name":"s"},"data":{"k":"!!"}})")));
  auto l = kube::Lease::decode(obj(R"({"metadata":{"name":"l"},"spec":{"holderIdentity":"me",
    "leaseDurationSeconds":15,"acquireTime":"2024-01-01T00:00:00.000000Z","renewTime":"2024-01-01T00:00:01.500000Z",
    "leaseTransitions":3}})"));
  REQUIRE(l);
  CHECK(l->holder_identity.value() == "me");
  CHECK(l->lease_transitions.value() == 3);
  auto e = kube::Event::decode(obj(R"({"metadata":{"name":"e"},"involvedObject":{"kind":"Pod","name":"p"},
    "reason":"R","message":"M","type":"Warning","count":2,"source":{"component":"mic"}})"));
  REQUIRE(e);
  CHECK(e->involved_object.kind == "Pod");
  CHECK(e->count == 2);
  CHECK(e->source_component == "mic");
}

TEST_CASE("times: RFC 3339 and MicroTime") {
  auto t = kube::parse_time("2024-02-29T12:34:56.123456Z");
  REQUIRE(t);
  CHECK(kube::format_micro_time(*t) == "2024-02-29T12:34:56.123456Z");
  CHECK(kube::format_time(*t) == "2024-02-29T12:34:56Z");
  auto z = kube::parse_time("2024-02-29T14:34:56+02:00");
  REQUIRE(z);
  CHECK(kube::format_time(*z) == "2024-02-29T12:34:56Z");
  CHECK_FALSE(kube::parse_time("yesterday"));
}

TEST_CASE("backoff: 0.8 s doubling to 30 s, reset after a healthy period") {
  kube::Backoff b;
  auto t0 = kube::Clock::time_point{} + 1h;
  std::vector<long long> got;
  for (int i = 0; i < 8; ++i) got.push_back(b.next(t0 + std::chrono::seconds(i)).count());
  CHECK(got == std::vector<long long>{800, 1600, 3200, 6400, 12800, 25600, 30000, 30000});
  CHECK(b.next(t0 + 10s).count() == 30000);
  CHECK(b.next(t0 + 10s + 121s).count() == 800);  // healthy for longer than reset_after
  b.reset();
  CHECK(b.next(t0 + 200s).count() == 800);
  kube::Backoff j({}, [] { return 0.5; });
  kube::BackoffOptions jo;
  jo.jitter = 1.0;
  kube::Backoff jittered(jo, [] { return 0.5; });
  CHECK(jittered.next(t0).count() == 1200);
}

TEST_CASE("token bucket: burst then qps, with an injected clock") {
  auto t0 = kube::Clock::time_point{} + 1h;
  kube::TokenBucket b(2.0, 3, t0);
  CHECK(b.try_take(t0));
  CHECK(b.try_take(t0));
  CHECK(b.try_take(t0));
  CHECK_FALSE(b.try_take(t0));
  CHECK(b.try_take(t0 + 500ms));
  CHECK_FALSE(b.try_take(t0 + 500ms));
  // reserve: goes into debt and says how long to wait
  kube::TokenBucket r(10.0, 1, t0);
  CHECK(r.reserve(t0) == kube::Clock::duration::zero());
  CHECK(r.reserve(t0) == std::chrono::duration_cast<kube::Clock::duration>(100ms));
  CHECK(r.reserve(t0) == std::chrono::duration_cast<kube::Clock::duration>(200ms));
  kube::TokenBucket unlimited(0, 1, t0);
  for (int i = 0; i < 100; ++i) CHECK(unlimited.try_take(t0));
}

TEST_CASE("Retry-After: seconds, bounded, fallback for dates") {
  CHECK(kube::parse_retry_after("3", 1s, 30s) == 3s);
  CHECK(kube::parse_retry_after("3600", 1s, 30s) == 30s);
  CHECK(kube::parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1s, 30s) == 1s);
  CHECK(kube::parse_retry_after("", 2s, 30s) == 2s);
}

TEST_CASE("resource paths and query escaping") {
  CHECK(kube::resources::pods.path("ns", "p") == "/api/v1/namespaces/ns/pods/p");
  CHECK(kube::resources::pods.path() == "/api/v1/pods");
  CHECK(kube::resources::nodes.path("ignored", "n") == "/api/v1/nodes/n");
  CHECK(kube::resources::azure_assigned_identities.path("default", "a", "status") ==
        "/apis/aadpodidentity.k8s.io/v1/namespaces/default/azureassignedidentities/a/status");
  CHECK(kube::resources::leases.api_version() == "coordination.k8s.io/v1");
  CHECK(kube::query_string({{"fieldSelector", "spec.nodeName=n 1"}, {"x", ""}}) == "?fieldSelector=spec.nodeName%3Dn%201");
}

TEST_CASE("watch event parsing") {
  auto ev = kube::parse_watch_event(R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}})");
  REQUIRE(ev);
  CHECK(ev->type == "BOOKMARK");
  CHECK(kube::object_resource_version(ev->object) == "9");
  CHECK_FALSE(kube::parse_watch_event("not json"));
  CHECK_FALSE(kube::parse_watch_event(R"({"type":"ADDED"})"));
  auto e = kube::Error::from_response(0, R"({"kind":"Status","code":410,"reason":"Expired","message":"too old"})");
  CHECK(e.gone());
  CHECK(e.code == 410);
  auto c = kube::Error::from_response(409, R"({"kind":"Status","code":409,"reason":"Conflict","message":"m"})");
  CHECK(c.conflict());
  CHECK_FALSE(c.already_exists());
  CHECK(c.describe() == "409 Conflict: m");
}

TEST_CASE("change notifier: timeout, wake-up by notify, generations, notifier destroyed first") {
  boost::asio::io_context io;
  auto n = std::make_unique<kube::ChangeNotifier>();
  CHECK_FALSE(test::run_async(io, n->wait(50ms)));
  auto gen = n->generation();
  n->notify();
  CHECK(test::run_async(io, n->wait_since(gen, 10s)));  // already changed: returns at once
  std::vector<bool> woke;
  for (int i = 0; i < 2; ++i)
    boost::asio::co_spawn(io, [&]() -> boost::asio::awaitable<void> { woke.push_back(co_await n->wait(30s)); },
                          boost::asio::detached);
  io.restart();
  io.poll();
  CHECK(woke.empty());
  n->notify();
  io.restart();
  io.run_for(5s);
  CHECK(woke == std::vector<bool>{true, true});
  woke.clear();
  boost::asio::co_spawn(io, [&]() -> boost::asio::awaitable<void> { woke.push_back(co_await n->wait(30s)); },
                        boost::asio::detached);
  io.restart();
  io.poll();
  n.reset();  // waiters keep the shared state; they wake as "changed"
  io.restart();
  io.run_for(5s);
  CHECK(woke == std::vector<bool>{true});
}

TEST_CASE("32-bit fields reject larger numbers instead of truncating them") {
  auto big = obj(R"({"metadata":{"name":"i","namespace":"n"},"spec":{"type":4294967297,"clientID":"c"}})");
  auto decoded = kube::AzureIdentity::decode(big);
  REQUIRE_FALSE(decoded);
  CHECK(decoded.error().describe().find("type") != std::string::npos);
  auto ok = kube::AzureIdentity::decode(obj(R"({"metadata":{"name":"i","namespace":"n"},"spec":{"type":1}})"));
  REQUIRE(ok);
  CHECK(ok->type == 1);
}
