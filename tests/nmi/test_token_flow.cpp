// Suite nmi, unit part: query forms, the IMDS success shape, identity choice, token cache
// (key isolation, expiry margin, single flight, cancellation) and managed mode.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "nmi/nmi_harness.hpp"

using namespace aad;
using namespace aad::test;
namespace json = boost::json;

namespace {
const std::string kBase = "/metadata/identity/oauth2/token?api-version=2018-02-01";
std::string access_token(const http::Response& r) {
  return std::string(body_of(r).at("access_token").as_string());
}
const std::string kResA = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-a";
const std::string kResB = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-b";
}  // namespace

TEST_CASE("success body: exactly IMDS's seven string fields, JSON content type and length") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  auto r = t.call(kBase + "&resource=https://vault.azure.net");
  REQUIRE(r.result_int() == 200);
  CHECK(r[http::bhttp::field::content_type] == "application/json");
  CHECK(r[http::bhttp::field::content_length] == std::to_string(r.body().size()));
  auto body = body_of(r);
  std::vector<std::string> keys;
  for (const auto& kv : body) {
    keys.emplace_back(kv.key());
    CHECK(kv.value().is_string());
  }
  CHECK(keys == std::vector<std::string>{"access_token", "refresh_token", "expires_in", "expires_on", "not_before",
                                         "resource", "token_type"});
  CHECK(body.at("expires_in").as_string() == "3600");
  CHECK(body.at("resource").as_string() == "https://vault.azure.net");
  CHECK(body.at("token_type").as_string() == "Bearer");
  auto expected_on = std::chrono::duration_cast<std::chrono::seconds>(t.clock.now().time_since_epoch()).count() + 3600;
  CHECK(body.at("expires_on").as_string() == std::to_string(expected_on));
}

TEST_CASE("query forms: resource decoded once and passed on; trailing slash and /METADATA; every identity key") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  t.bind(pod, "id-b", "client-b");
  auto r = t.call("/metadata/identity/oauth2/token/?resource=https%3A%2F%2Fvault.azure.net%2F&api-version=2019-08-01");
  CHECK(r.result_int() == 200);
  CHECK(t.fetcher.calls.back().resource == "https://vault.azure.net/");
  CHECK(t.call("/METADATA/identity/oauth2/token?resource=r2").result_int() == 200);
  CHECK(t.fetcher.calls.back().resource == "r2");

  struct Form {
    std::string query, client;
  };
  for (const auto& f : std::vector<Form>{{"&client_id=client-b", "client-b"},
                                         {"&client_id=CLIENT-B", "client-b"},  // case-insensitive
                                         {"&msi_res_id=" + kResB, "client-b"},
                                         {"&mi_res_id=" + kResB, "client-b"},
                                         {"&msi_res_id=" + kResA + "&mi_res_id=" + kResB, "client-a"},  // msi_res_id first
                                         {"&mi_res_id=/SUBSCRIPTIONS/S/resourcegroups/RG/providers/microsoft.managedidentity/userassignedidentities/ID-B", "client-b"},
                                         {"&client_id=client-a&client_id=client-b", "client-a"}}) {  // first wins
    INFO(f.query);
    t.token_service().clear();
    auto res = t.call(kBase + "&resource=https://storage.azure.com" + f.query);
    REQUIRE(res.result_int() == 200);
    CHECK(t.fetcher.calls.back().client_id == f.client);
  }
}

TEST_CASE("several identities, none requested: always the first by (namespace, name)") {
  for (int order = 0; order < 2; ++order) {
    NmiHarness t;
    auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
    t.state.add(pod);
    if (order == 0) {
      t.bind(pod, "zeta", "client-z");
      t.bind(pod, "alpha", "client-a");
    } else {
      t.bind(pod, "alpha", "client-a");
      t.bind(pod, "zeta", "client-z");
    }
    for (int i = 0; i < 3; ++i) {
      t.token_service().clear();
      REQUIRE(t.call(kBase + "&resource=r").result_int() == 200);
      CHECK(t.fetcher.calls.back().client_id == "client-a");
    }
  }
}

TEST_CASE("token cache is keyed by identity and resource, never by pod: no token crosses identities") {
  NmiHarness t;
  auto a = make_pod("ns", "a", "10.0.0.1", "sel-a");
  auto b = make_pod("ns", "b", "10.0.0.2", "sel-b");
  t.state.add(a);
  t.state.add(b);
  t.bind(a, "id-a", "client-a");
  t.bind(b, "id-b", "client-b");
  auto ta = access_token(t.call(kBase + "&resource=r", "10.0.0.1"));
  auto tb = access_token(t.call(kBase + "&resource=r", "10.0.0.2"));
  CHECK(ta.starts_with("tok:client-a:r:"));
  CHECK(tb.starts_with("tok:client-b:r:"));
  CHECK(access_token(t.call(kBase + "&resource=r", "10.0.0.1")) == ta);  // cached, still A's
  CHECK(access_token(t.call(kBase + "&resource=r", "10.0.0.2")) == tb);
  CHECK(t.fetcher.calls.size() == 2);
  // B's identity is not bound to A, whatever form A uses to ask for it.
  CHECK(t.call(kBase + "&resource=r&client_id=client-b", "10.0.0.1").result_int() == 404);
  CHECK(t.call(kBase + "&resource=r&msi_res_id=" + kResB, "10.0.0.1").result_int() == 404);
  CHECK(t.call(kBase + "&resource=r&mi_res_id=" + kResB, "10.0.0.1").result_int() == 404);
  // Pod B leaves and pod C takes its IP with identity A: C gets A's token, not B's cached one.
  t.state.pods.erase(std::remove_if(t.state.pods.begin(), t.state.pods.end(), [](const auto& p) { return p->meta.name == "b"; }),
                     t.state.pods.end());
  auto c = make_pod("ns", "c", "10.0.0.2", "sel-a");
  t.state.add(c);
  t.state.add(make_assigned(c, make_identity("ns", "id-a", "client-a"), "Assigned"));
  CHECK(access_token(t.call(kBase + "&resource=r", "10.0.0.2")) == ta);
  // Another resource is another key.
  CHECK(access_token(t.call(kBase + "&resource=r2", "10.0.0.1")).starts_with("tok:client-a:r2:"));
}

TEST_CASE("cache keys separate identity types, tenants, secrets and auxiliary tenants") {
  using identity::nmi::token_cache_key;
  auto base = make_identity("ns", "sp", "client", 1);
  base.tenant_id = "t1";
  base.client_password = kube::SecretReference{"s", "ns"};
  auto key = token_cache_key(base, "r");
  auto other_tenant = base;
  other_tenant.tenant_id = "t2";
  auto other_secret = base;
  other_secret.client_password = kube::SecretReference{"s2", "ns"};
  auto aux = base;
  aux.auxiliary_tenant_ids = {"t3"};
  auto as_cert = base;
  as_cert.type = 2;
  auto upper = base;
  upper.client_id = "CLIENT";
  for (const auto& k : {token_cache_key(other_tenant, "r"), token_cache_key(other_secret, "r"), token_cache_key(aux, "r"),
                        token_cache_key(as_cert, "r"), token_cache_key(base, "r/")})
    CHECK(k != key);
  CHECK(token_cache_key(upper, "r") == key);  // client IDs compare case-insensitively
}

TEST_CASE("cached tokens: expires_in recomputed, refreshed inside the safety margin, --token-cache=false") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  auto first = t.call(kBase + "&resource=r");
  t.clock.advance(std::chrono::seconds(1000));
  auto second = t.call(kBase + "&resource=r");
  CHECK(access_token(second) == access_token(first));
  CHECK(body_of(second).at("expires_in").as_string() == "2600");
  CHECK(body_of(second).at("expires_on").as_string() == body_of(first).at("expires_on").as_string());
  t.clock.advance(std::chrono::seconds(2400));  // 200 s left: inside the 300 s margin
  auto third = t.call(kBase + "&resource=r");
  CHECK(access_token(third) != access_token(first));
  CHECK(t.fetcher.calls.size() == 2);

  NmiHarness off;
  off.token_options.enabled = false;
  auto p = make_pod("ns", "a", "10.0.0.1", "sel");
  off.state.add(p);
  off.bind(p, "id-a", "client-a");
  for (int i = 0; i < 3; ++i) off.call(kBase + "&resource=r");
  CHECK(off.fetcher.calls.size() == 3);
}

TEST_CASE("single flight: concurrent requests for one identity share one upstream fetch") {
  NmiHarness t;
  auto a = make_pod("ns", "a", "10.0.0.1", "sel");
  auto b = make_pod("ns", "b", "10.0.0.2", "sel");  // same selector: same identity
  t.state.add(a);
  t.state.add(b);
  auto id = t.bind(a, "id", "client");
  t.state.add(make_assigned(b, id, "Assigned"));
  t.fetcher.hold = true;
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < 6; ++i) {
    calls.push_back(NmiHarness::make_call(kBase + "&resource=r", i % 2 ? "10.0.0.2" : "10.0.0.1", {{"Metadata", "true"}}));
    t.start(*calls.back());
  }
  t.run_until([&] { return t.fetcher.calls.size() == 1 && t.token_service().stats().shared == 5; });
  t.fetcher.release();
  t.run_until([&] { return std::all_of(calls.begin(), calls.end(), [](const auto& c) { return c->done; }); });
  CHECK(t.fetcher.calls.size() == 1);
  for (const auto& c : calls) {
    REQUIRE(c->res);
    CHECK(c->res->result_int() == 200);
    CHECK(access_token(*c->res) == access_token(*calls[0]->res));
  }
}

TEST_CASE("client disconnects cancel only the work nobody else waits for") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id", "client");
  t.fetcher.hold = true;
  auto c1 = NmiHarness::make_call(kBase + "&resource=r", "10.0.0.1", {{"Metadata", "true"}});
  auto c2 = NmiHarness::make_call(kBase + "&resource=r", "10.0.0.1", {{"Metadata", "true"}});
  t.start(*c1);
  t.start(*c2);
  t.run_until([&] { return t.fetcher.calls.size() == 1 && t.token_service().stats().shared == 1; });
  c1->cancel.emit(boost::asio::cancellation_type::terminal);
  t.run_until([&] { return c1->done; });
  CHECK(c1->aborted);
  CHECK_FALSE(t.fetcher.calls[0].cancel.cancelled());  // c2 still waits for it
  t.fetcher.release();
  t.run_until([&] { return c2->done; });
  REQUIRE(c2->res);
  CHECK(c2->res->result_int() == 200);

  // The last waiter leaving cancels the upstream fetch.
  t.token_service().clear();
  t.fetcher.hold = true;
  auto c3 = NmiHarness::make_call(kBase + "&resource=other", "10.0.0.1", {{"Metadata", "true"}});
  t.start(*c3);
  t.run_until([&] { return t.fetcher.calls.size() == 2; });
  c3->cancel.emit(boost::asio::cancellation_type::terminal);
  t.run_until([&] { return c3->done; });
  CHECK(c3->aborted);
  CHECK(t.token_service().stats().cancelled_fetches == 1);
  CHECK(t.token_service().stats().fetches == 2);
  CHECK(t.token_service().stats().misses == 2);
  CHECK(t.fetcher.calls[1].cancel.cancelled());
  t.run_until([&] { return t.fetcher.in_flight == 0; });
  CHECK(t.token_service().cached() == 0);  // the cancelled fetch left nothing in the cache
}

TEST_CASE("a client leaving while its identity is still Created stops waiting") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id", "client", "Created");
  auto c = NmiHarness::make_call(kBase + "&resource=r", "10.0.0.1", {{"Metadata", "true"}});
  t.start(*c);
  t.settle();
  CHECK_FALSE(c->done);
  c->cancel.emit(boost::asio::cancellation_type::terminal);
  t.run_until([&] { return c->done; });
  CHECK(c->aborted);
  CHECK(t.fetcher.calls.empty());
}

TEST_CASE("multi-tenant service principal: a JSON array, primary tenant first") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  auto id = make_identity("ns", "sp", "sp-client", 1);
  id.tenant_id = "t1";
  id.auxiliary_tenant_ids = {"t2", "t3"};
  t.state.add(id);
  t.state.add(make_binding("ns", "sp-binding", "sp", "sel"));
  t.state.add(make_assigned(pod, id, "Assigned"));
  auto r = t.call(kBase + "&resource=r");
  REQUIRE(r.result_int() == 200);
  auto arr = json::parse(r.body()).as_array();
  REQUIRE(arr.size() == 3);
  CHECK(arr[0].as_object().at("access_token").as_string() == "tok:sp-client:r:1");
  CHECK(arr[1].as_object().at("access_token").as_string() == "tok:sp-client:r:1:t2");
  CHECK(arr[2].as_object().at("access_token").as_string() == "tok:sp-client:r:1:t3");
  for (const auto& v : arr)
    for (const auto& kv : v.as_object()) CHECK(kv.value().is_string());
}

TEST_CASE("namespaced mode: identities of other namespaces are never used") {
  NmiHarness t;
  t.resolver_options.force_namespaced = true;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  auto foreign = make_identity("other", "id-x", "client-x");
  t.state.add(foreign);
  t.state.add(make_binding("other", "b", "id-x", "sel"));
  t.state.add(make_assigned(pod, foreign, "Assigned"));
  CHECK(t.call(kBase + "&resource=r").result_int() == 404);
  CHECK(t.fetcher.calls.empty());
}

TEST_CASE("managed mode: bindings and identities of the pod's namespace, no assignments, no waiting") {
  NmiHarness t;
  t.resolver_options.managed = true;
  t.resolver_options.force_namespaced = true;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-b", "client-b", "");
  t.bind(pod, "id-a", "client-a", "");
  t.state.add(make_identity("other", "id-x", "client-x"));
  t.state.add(make_binding("other", "bx", "id-x", "sel"));
  REQUIRE(t.call(kBase + "&resource=r").result_int() == 200);
  CHECK(t.fetcher.calls.back().client_id == "client-a");
  REQUIRE(t.call(kBase + "&resource=r&client_id=CLIENT-B").result_int() == 200);
  CHECK(t.fetcher.calls.back().client_id == "client-b");
  CHECK(t.call(kBase + "&resource=r&client_id=client-x").result_int() == 404);
  t.state.add(make_pod("ns", "nolabel", "10.0.0.2"));
  CHECK(t.call(kBase + "&resource=r", "10.0.0.2").result_int() == 404);
}

TEST_CASE("metrics: the original's operation histogram and the request latency histogram") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  t.call(kBase + "&resource=r");
  t.call(kBase + "&resource=r");
  auto text = t.registry.render();
  CHECK_THAT(text, Catch::Contains(
      R"(aadpodidentity_nmi_operations_duration_seconds_count{operation_type="/metadata/identity/oauth2/token",status_code="200",namespace="ns",resource="r"} 2)"));
  CHECK_THAT(text, Catch::Contains(R"(aadpodidentity_nmi_request_duration_seconds_count{route="token",status_code="200"} 2)"));
}
