// lib/kube against the real apiserver (KubeTestenv): auth, CRUD + conflict per kind, CRD
// validation and pruning, paging, selectors, patches, preconditions; retries and rate limit
// against a local server.
#include "catch_kube.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <fstream>

#include "helpers.hpp"
#include "kube/typed.hpp"
#include "support/server_fixture.hpp"
#include "support/test_certs.hpp"

using namespace aad;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace json = boost::json;
using test::KubeEnv;

namespace {

json::object parse(const std::string& s) { return json::parse(s).as_object(); }

void write_file(const std::filesystem::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::trunc);
  out << s;
}

std::string port_of(const std::string& url) { return url.substr(url.rfind(':') + 1); }

// The generic CRUD + conflict + patch + selector + precondition scenario for one kind.
template <typename T>
void crud_scenario(KubeEnv& env, T obj, std::function<void(T&)> mutate) {
  auto& c = *env.client;
  const auto ns = obj.meta.ns;
  const auto name = obj.meta.name;
  obj.meta.labels["suite"] = "kube";

  auto created = env.run(kube::create(c, obj));
  REQUIRE(created);
  CHECK(created->meta.name == name);
  CHECK_FALSE(created->meta.uid.empty());
  CHECK_FALSE(created->meta.resource_version.empty());

  auto again = env.run(kube::create(c, obj));
  REQUIRE_FALSE(again);
  CHECK(again.error().already_exists());

  auto got = env.run(kube::get<T>(c, ns, name));
  REQUIRE(got);
  CHECK(got->meta.uid == created->meta.uid);

  auto changed = *got;
  mutate(changed);
  auto updated = env.run(kube::update(c, changed));
  REQUIRE(updated);
  CHECK(updated->meta.resource_version != got->meta.resource_version);

  // A PUT with the old resourceVersion is a conflict, reported as such.
  auto stale = *got;
  stale.meta.annotations["stale"] = "yes";
  auto conflict = env.run(kube::update(c, stale));
  REQUIRE_FALSE(conflict);
  CHECK(conflict.error().conflict());
  CHECK(conflict.error().code == 409);

  // JSON merge patch and JSON patch.
  auto merged = env.run(kube::patch<T>(c, ns, name, kube::PatchType::merge, R"({"metadata":{"labels":{"m":"1"}}})"));
  REQUIRE(merged);
  CHECK(merged->meta.labels.at("m") == "1");
  CHECK(merged->meta.labels.at("suite") == "kube");
  auto jp = env.run(kube::patch<T>(c, ns, name, kube::PatchType::json,
                                   R"([{"op":"add","path":"/metadata/annotations","value":{"j":"2"}}])"));
  REQUIRE(jp);
  CHECK(jp->meta.annotations.at("j") == "2");
  auto badpatch = env.run(kube::patch<T>(c, ns, name, kube::PatchType::json,
                                         R"([{"op":"test","path":"/metadata/labels/m","value":"nope"}])"));
  REQUIRE_FALSE(badpatch);
  CHECK(badpatch.error().code >= 400);

  // Label selector on list.
  kube::ListOptions lo;
  lo.label_selector = "m=1";
  auto listed = env.run(kube::list<T>(c, ns, lo));
  REQUIRE(listed);
  bool found = false;
  for (auto& i : listed->items) found |= i.meta.name == name;
  CHECK(found);
  CHECK(listed->errors.empty());
  lo.label_selector = "m=2";
  auto none = env.run(kube::list<T>(c, ns, lo));
  REQUIRE(none);
  for (auto& i : none->items) CHECK(i.meta.name != name);

  // Delete with preconditions: a wrong resourceVersion is refused, the right one works.
  auto wrong = *jp;
  wrong.meta.resource_version = got->meta.resource_version;
  auto refused = env.run(kube::remove(c, wrong, true));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().conflict());
  auto removed = env.run(kube::remove(c, *jp, true));
  REQUIRE(removed);
  auto gone = env.run(kube::get<T>(c, ns, name));
  if (gone) CHECK(gone->meta.deletion_timestamp.has_value());  // finalizers keep it around
  else CHECK(gone.error().not_found());
}

}  // namespace

TEST_CASE("auth: bearer token and client certificate contexts of a kubeconfig") {
  for (std::string ctx : {"", "kube-testenv-cert"}) {
    KubeEnv env(ctx);
    auto ns = env.run(env.client->get(kube::resources::namespaces, "", "default"));
    REQUIRE(ns);
    CHECK(kube::object_key(*ns) == "default");
  }
  KubeEnv env("kube-testenv-cert");
  CHECK(env.config.token.empty());
  CHECK_FALSE(env.config.tls.cert_pem.empty());
}

TEST_CASE("auth: in-cluster style (token file + CA), RBAC applies, token re-read after rotation") {
  auto& kube = test::KubeTestenv::shared();
  auto ns = kube.new_namespace("incluster");
  REQUIRE(kube.kubectl({"-n", ns, "create", "serviceaccount", "reader"}).exit_code == 0);
  REQUIRE(kube.kubectl({"-n", ns, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods"}).exit_code == 0);
  REQUIRE(kube.kubectl({"-n", ns, "create", "rolebinding", "reader", "--role=pod-reader",
                        "--serviceaccount=" + ns + ":reader"}).exit_code == 0);
  auto token = kube.token("reader", ns);
  REQUIRE_FALSE(token.empty());

  auto dir = std::filesystem::temp_directory_path() / ("kube-sa-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  write_file(dir / "token", token + "\n");
  write_file(dir / "ca.crt", kube.ca_cert_pem());
  write_file(dir / "namespace", ns);
  kube::InClusterOptions o;
  o.dir = dir.string();
  auto port = port_of(kube.server_url());
  o.getenv = [&](const std::string& k) -> std::optional<std::string> {
    if (k == "KUBERNETES_SERVICE_HOST") return "127.0.0.1";
    if (k == "KUBERNETES_SERVICE_PORT") return port;
    return std::nullopt;
  };
  auto cfg = kube::in_cluster(o);
  CHECK(cfg.ns == ns);
  asio::io_context io;
  kube::ClientOptions co;
  co.token_reload = 0ms;  // re-read on every request
  co.max_retries = 0;
  kube::Client client(io.get_executor(), cfg, co);
  auto ok = test::run_async(io, kube::list<kube::Pod>(client, ns));
  REQUIRE(ok);
  auto denied = test::run_async(io, kube::list<kube::Pod>(client, "default"));
  REQUIRE_FALSE(denied);
  CHECK(denied.error().forbidden());
  CHECK_THAT(denied.error().message, Catch::Contains("system:serviceaccount:" + ns + ":reader"));

  write_file(dir / "token", "not-a-valid-token");
  auto unauth = test::run_async(io, kube::list<kube::Pod>(client, ns));
  REQUIRE_FALSE(unauth);
  CHECK(unauth.error().unauthorized());
  write_file(dir / "token", kube.token("reader", ns));  // "rotated"
  CHECK(test::run_async(io, kube::list<kube::Pod>(client, ns)));
  std::filesystem::remove_all(dir);
}

TEST_CASE("auth: a wrong CA fails the TLS handshake, clearly") {
  auto& kube = test::KubeTestenv::shared();
  auto cfg = kube::load_kubeconfig(kube.kubeconfig());
  cfg.tls.ca_pem = test::test_pki().other_ca.cert_pem;
  asio::io_context io;
  kube::ClientOptions co;
  co.max_retries = 0;
  kube::Client client(io.get_executor(), cfg, co);
  auto r = test::run_async(io, client.get(kube::resources::namespaces, "", "default"));
  REQUIRE_FALSE(r);
  CHECK(r.error().code == 0);
  CHECK(r.error().transport);
  CHECK_THAT(r.error().describe(), Catch::Contains("certificate verify failed"));
  cfg.tls.ca_pem = "not a certificate";
  CHECK_THROWS_AS(kube::Client(io.get_executor(), cfg), kube::ConfigError);
}

TEST_CASE("CRUD and conflict: Pod (with status subresource), Node, Secret, ConfigMap, Lease, Event") {
  KubeEnv env;
  auto ns = env.kube.new_namespace("crud");

  kube::Pod pod;
  pod.meta.ns = ns;
  pod.meta.name = "p1";
  pod.node_name = "node-a";
  pod.raw = parse(R"({"spec":{"containers":[{"name":"c","image":"busybox"}]}})");
  crud_scenario<kube::Pod>(env, pod, [](kube::Pod& p) { p.meta.annotations["a"] = "1"; });

  // Status subresource: PUT and merge-PATCH on pods/status.
  pod.meta.name = "p2";
  auto p2 = env.run(kube::create(*env.client, pod));
  REQUIRE(p2);
  auto st = *p2;
  st.phase = "Running";
  st.pod_ip = "10.244.1.5";
  st.pod_ips = {"10.244.1.5", "fd00::5"};
  auto put = env.run(kube::update_status(*env.client, st));
  REQUIRE(put);
  CHECK(put->phase == "Running");
  CHECK(put->pod_ips == std::vector<std::string>{"10.244.1.5", "fd00::5"});
  CHECK(put->node_name == "node-a");
  auto patched = env.run(kube::patch<kube::Pod>(*env.client, ns, "p2", kube::PatchType::merge,
                                                R"({"status":{"phase":"Succeeded"}})", "status"));
  REQUIRE(patched);
  CHECK(patched->phase == "Succeeded");
  CHECK(patched->pod_ip == "10.244.1.5");

  kube::Node node;
  node.meta.name = "crud-node-" + ns;
  node.provider_id = "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm0";
  crud_scenario<kube::Node>(env, node, [](kube::Node& n) { n.meta.labels["x"] = "y"; });

  kube::Secret secret;
  secret.meta.ns = ns;
  secret.meta.name = "s1";
  secret.type = "Opaque";
  secret.data["clientSecret"] = std::string("bin\0ary", 7);
  crud_scenario<kube::Secret>(env, secret, [](kube::Secret& s) { s.data["more"] = "x"; });
  secret.meta.name = "s2";
  auto s2 = env.run(kube::create(*env.client, secret));
  REQUIRE(s2);
  CHECK(s2->data.at("clientSecret") == std::string("bin\0ary", 7));

  kube::ConfigMap cm;
  cm.meta.ns = ns;
  cm.meta.name = "cm1";
  cm.data["type-upgrade-status"] = "1.6";
  crud_scenario<kube::ConfigMap>(env, cm, [](kube::ConfigMap& c) { c.data["k"] = "v"; });

  kube::Lease lease;
  lease.meta.ns = ns;
  lease.meta.name = "l1";
  lease.holder_identity = "me";
  lease.lease_duration_seconds = 15;
  lease.renew_time = kube::format_micro_time(std::chrono::system_clock::now());
  crud_scenario<kube::Lease>(env, lease, [](kube::Lease& l) { l.lease_transitions = 1; });

  kube::Event ev;
  ev.meta.ns = ns;
  ev.meta.name = "e1";
  ev.involved_object = {"v1", "Pod", ns, "p1", "", "", ""};
  ev.reason = "Test";
  ev.message = "hello";
  ev.type = "Normal";
  ev.count = 1;
  crud_scenario<kube::Event>(env, ev, [](kube::Event& e) { e.count = 2; });
}

TEST_CASE("CRUD and conflict on the four CRDs; the server validates and prunes") {
  KubeEnv env;
  test::ensure_test_crds(env.kube);
  auto ns = env.kube.new_namespace("crd");
  auto& c = *env.client;

  kube::AzureIdentity id;
  id.meta.ns = ns;
  id.meta.name = "id1";
  id.type = 0;
  id.client_id = "00000000-0000-0000-0000-000000000001";
  id.resource_id = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1";
  crud_scenario<kube::AzureIdentity>(env, id, [](kube::AzureIdentity& i) { i.tenant_id = "t"; });

  kube::AzureIdentityBinding b;
  b.meta.ns = ns;
  b.meta.name = "b1";
  b.azure_identity = "id1";
  b.selector = "sel";
  crud_scenario<kube::AzureIdentityBinding>(env, b, [](kube::AzureIdentityBinding& x) { x.weight = 2; });

  kube::AzurePodIdentityException e;
  e.meta.ns = ns;
  e.meta.name = "e1";
  e.pod_labels = {{"app", "x"}};
  crud_scenario<kube::AzurePodIdentityException>(env, e, [](kube::AzurePodIdentityException& x) {
    x.pod_labels["k"] = "v";
  });

  // An AAI with embedded copies (as MIC writes them), state transitions through updates.
  auto idc = env.run(kube::create(c, id));
  REQUIRE(idc);
  kube::AzureIdentity sp;
  sp.meta.ns = ns;
  sp.meta.name = "sp";
  sp.type = 1;
  sp.client_id = "cid";
  sp.tenant_id = "tid";
  sp.client_password = kube::SecretReference{"sec", ns};
  sp.auxiliary_tenant_ids = {"a1", "a2"};
  auto spc = env.run(kube::create(c, sp));
  REQUIRE(spc);
  CHECK(spc->client_password->name == "sec");
  CHECK(spc->auxiliary_tenant_ids == std::vector<std::string>{"a1", "a2"});
  CHECK(spc->type == 1);
  kube::AzureAssignedIdentity aai;
  aai.meta.ns = ns;
  aai.meta.name = "p-" + ns + "-id1";
  aai.meta.labels["nodename"] = "node-a";
  aai.meta.finalizers = {"azureassignedidentity.finalizers.aadpodidentity.k8s.io"};
  aai.azure_identity_ref = *idc;
  aai.azure_binding_ref = b;
  aai.pod = "p";
  aai.pod_namespace = ns;
  aai.node_name = "node-a";
  aai.status = kube::kAssignedIDCreated;
  aai.available_replicas = 1;
  auto made = env.run(kube::create(c, aai));
  REQUIRE(made);
  CHECK(made->status == "Created");
  REQUIRE(made->azure_identity_ref);
  CHECK(made->azure_identity_ref->client_id == id.client_id);
  CHECK(made->azure_identity_ref->meta.resource_version == idc->meta.resource_version);
  CHECK(made->azure_binding_ref->selector == "sel");
  CHECK(made->node_name == "node-a");
  // MIC's status write: JSON patch on /status/status through the main resource (no subresource).
  auto assigned = env.run(kube::patch<kube::AzureAssignedIdentity>(
      c, ns, aai.meta.name, kube::PatchType::json, R"([{"op":"replace","path":"/status/status","value":"Assigned"}])"));
  REQUIRE(assigned);
  CHECK(assigned->status == "Assigned");
  auto nostatus = env.run(c.update(kube::resources::azure_assigned_identities, assigned->encode(), "status"));
  REQUIRE_FALSE(nostatus);
  CHECK(nostatus.error().not_found());
  auto stale = *made;
  stale.status = kube::kAssignedIDUnassigned;
  auto conflict = env.run(kube::update(c, stale));
  REQUIRE_FALSE(conflict);
  CHECK(conflict.error().conflict());
  // Delete leaves it terminating (finalizer) until the finalizer is removed.
  REQUIRE(env.run(kube::remove(c, *assigned)));
  auto terminating = env.run(kube::get<kube::AzureAssignedIdentity>(c, ns, aai.meta.name));
  REQUIRE(terminating);
  CHECK(terminating->meta.deletion_timestamp);
  auto fin = *terminating;
  fin.meta.finalizers.clear();
  REQUIRE(env.run(kube::update(c, fin)));
  auto after = env.run(kube::get<kube::AzureAssignedIdentity>(c, ns, aai.meta.name));
  REQUIRE_FALSE(after);
  CHECK(after.error().not_found());

  // Pruning: unknown and pre-1.6 capitalised fields are dropped by the server.
  auto pruned = env.run(c.create(kube::resources::azure_identities, ns, parse(R"({
    "metadata":{"name":"old"},"spec":{"type":0,"ClientID":"caps","clientID":"ok","bogus":true},"extra":1})")));
  REQUIRE(pruned);
  CHECK_FALSE(pruned->contains("extra"));
  CHECK_FALSE(pruned->at("spec").as_object().contains("ClientID"));
  CHECK_FALSE(pruned->at("spec").as_object().contains("bogus"));
  CHECK(pruned->at("spec").at("clientID") == "ok");
  // Validation: a wrong type is rejected with 422 Invalid, naming the field.
  auto invalid = env.run(c.create(kube::resources::azure_identities, ns,
                                  parse(R"({"metadata":{"name":"bad"},"spec":{"type":"zero"}})")));
  REQUIRE_FALSE(invalid);
  CHECK(invalid.error().invalid());
  CHECK_THAT(invalid.error().message, Catch::Contains("spec.type"));
}

TEST_CASE("paged list (limit/continue), and a list still decodes when one item does not") {
  KubeEnv env;
  auto ns = env.kube.new_namespace("page");
  auto& c = *env.client;
  for (int i = 0; i < 7; ++i) {
    kube::ConfigMap cm;
    cm.meta.ns = ns;
    cm.meta.name = "cm" + std::to_string(i);
    cm.data["i"] = std::to_string(i);
    REQUIRE(env.run(kube::create(c, cm)));
  }
  kube::ListOptions lo;
  lo.limit = 3;
  auto page = env.run(c.list_page(kube::resources::configmaps, ns, lo));
  REQUIRE(page);
  CHECK(page->items.size() == 3);
  CHECK_FALSE(page->continue_token.empty());
  lo.continue_token = page->continue_token;
  auto page2 = env.run(c.list_page(kube::resources::configmaps, ns, lo));
  REQUIRE(page2);
  CHECK(page2->items.size() == 3);
  CHECK(kube::object_key(page2->items[0]) != kube::object_key(page->items[0]));
  lo.continue_token.clear();
  auto all = env.run(kube::list<kube::ConfigMap>(c, ns, lo));
  REQUIRE(all);
  CHECK(all->items.size() == 7);
  CHECK_FALSE(all->resource_version.empty());

  // A decoding failure is per object: decode as a type whose codec rejects one of them.
  kube::ConfigMap odd;
  odd.meta.ns = ns;
  odd.meta.name = "zz-odd";
  odd.meta.annotations["x"] = "y";
  REQUIRE(env.run(kube::create(c, odd)));
  auto raw = env.run(c.list(kube::resources::configmaps, ns));
  REQUIRE(raw);
  int ok = 0, bad = 0;
  for (auto& item : raw->items) {
    if (kube::object_key(item) == ns + "/zz-odd") item["data"] = json::object{{"k", 1}};  // corrupt one
    if (kube::ConfigMap::decode(item)) ++ok;
    else ++bad;
  }
  CHECK(ok == 7);
  CHECK(bad == 1);
}

TEST_CASE("field selector on pods (spec.nodeName) across namespaces") {
  KubeEnv env;
  auto ns = env.kube.new_namespace("fsel");
  auto& c = *env.client;
  auto node = "fsel-node-" + ns;
  for (auto [name, n] : {std::pair{"a", node}, std::pair{"b", std::string("elsewhere")}}) {
    kube::Pod p;
    p.meta.ns = ns;
    p.meta.name = name;
    p.node_name = n;
    p.raw = parse(R"({"spec":{"containers":[{"name":"c","image":"busybox"}]}})");
    REQUIRE(env.run(kube::create(c, p)));
  }
  kube::ListOptions lo;
  lo.field_selector = "spec.nodeName=" + node;
  auto pods = env.run(kube::list<kube::Pod>(c, "", lo));
  REQUIRE(pods);
  REQUIRE(pods->items.size() == 1);
  CHECK(pods->items[0].meta.name == "a");
  CHECK(pods->items[0].meta.ns == ns);
}

TEST_CASE("retries: 429 and 503 with Retry-After are retried (bounded); a POST 500 is not") {
  std::vector<std::string> seen;
  int fail_first = 0;
  unsigned fail_status = 429;
  test::ServerFixture fx([&](http::Request& req, const http::RequestContext&) -> asio::awaitable<http::Response> {
    seen.push_back(std::string(req.method_string()) + " " + std::string(req.target()) + " " +
                   std::string(req[http::bhttp::field::user_agent]) + " " +
                   std::string(req[http::bhttp::field::authorization]));
    if (fail_first > 0) {
      --fail_first;
      auto res = http::make_response(req, static_cast<http::Status>(fail_status),
                                     R"({"kind":"Status","code":)" + std::to_string(fail_status) +
                                         R"(,"reason":"TooManyRequests","message":"slow down"})",
                                     "application/json");
      res.set("Retry-After", "1");
      co_return res;
    }
    co_return http::make_response(req, http::Status::ok, R"({"metadata":{"name":"x","namespace":"n"}})",
                                  "application/json");
  });
  kube::Config cfg;
  cfg.server = fx.url("/");
  cfg.server.pop_back();
  cfg.token = "secret-token";
  kube::ClientOptions co;
  co.user_agent_suffix = "custom/1.0";
  co.max_retries = 2;
  co.retry_initial = 10ms;
  kube::Client client(fx.io().get_executor(), cfg, co);

  fail_first = 1;
  auto t0 = std::chrono::steady_clock::now();
  auto r = fx.run([&] { return client.get(kube::resources::configmaps, "n", "x"); });
  REQUIRE(r);
  CHECK(std::chrono::steady_clock::now() - t0 >= 900ms);  // Retry-After: 1 was honoured
  REQUIRE(seen.size() == 2);
  CHECK(seen[0] == "GET /api/v1/namespaces/n/configmaps/x aad-pod-identity/0.1.0 custom/1.0 Bearer secret-token");

  seen.clear();
  fail_first = 10;  // more than max_retries
  fail_status = 503;
  auto give_up = fx.run([&] { return client.get(kube::resources::configmaps, "n", "x"); });
  REQUIRE_FALSE(give_up);
  CHECK(give_up.error().code == 503);
  CHECK(seen.size() == 3);  // 1 + max_retries

  seen.clear();
  fail_first = 1;
  fail_status = 500;
  auto post = fx.run([&] { return client.create(kube::resources::configmaps, "n", json::object{}); });
  REQUIRE(post);  // 500 with Retry-After: the server says it did nothing; retried once
  CHECK(seen.size() == 2);
}

TEST_CASE("client-side rate limit: qps/burst delays requests") {
  int count = 0;
  test::ServerFixture fx([&](http::Request& req, const http::RequestContext&) -> asio::awaitable<http::Response> {
    ++count;
    co_return http::make_response(req, http::Status::ok, "{}", "application/json");
  });
  kube::Config cfg;
  cfg.server = fx.url("/");
  cfg.server.pop_back();
  kube::ClientOptions co;
  co.qps = 4;
  co.burst = 2;
  kube::Client client(fx.io().get_executor(), cfg, co);
  auto t0 = std::chrono::steady_clock::now();
  fx.run([&]() -> asio::awaitable<void> {
    for (int i = 0; i < 6; ++i) {
      auto r = co_await client.request("GET", "/x");
      CHECK(r);
    }
  });
  // 2 from the burst, then 4 more at 4/s: at least ~1 s.
  CHECK(std::chrono::steady_clock::now() - t0 >= 950ms);
  CHECK(count == 6);
}
