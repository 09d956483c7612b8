// Suite nmi, unit part: every row of the status-code table (behaviour reference 3.12) through
// the real handler, resolver and token service over in-memory state.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "nmi/nmi_harness.hpp"

using namespace aad;
using namespace aad::test;
namespace json = boost::json;

namespace {
const std::string kToken = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net";

}  // namespace

TEST_CASE("missing or wrong Metadata header: IMDS's exact 400 on the token and proxy routes") {
  NmiHarness t;
  t.state.add(make_pod("ns", "a", "10.0.0.1", "sel"));
  for (auto headers : std::vector<std::vector<std::pair<std::string, std::string>>>{{}, {{"Metadata", "True"}}, {{"Metadata", "false"}}}) {
    auto r = t.call(kToken, "10.0.0.1", headers);
    CHECK(r.result_int() == 400);
    CHECK(r.body() == R"({"error":"invalid_request","error_description":"Required metadata header not specified"})");
    CHECK(r.body().size() == 88);
    CHECK(r[http::bhttp::field::content_type] == "application/json; charset=utf-8");
    auto p = t.call("/metadata/instance?api-version=2021-02-01", "10.0.0.1", headers);
    CHECK(p.result_int() == 400);
  }
  CHECK(t.upstream.seen.empty());
  CHECK(t.fetcher.calls.empty());
}

TEST_CASE("--metadata-header-required=false lets requests without the header through") {
  NmiHarness t;
  t.handler_options.metadata_header_required = false;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  CHECK(t.call(kToken, "10.0.0.1", {}).result_int() == 200);
}

TEST_CASE("malformed token paths get 400 and are never proxied") {
  NmiHarness t;
  for (std::string path : {"/metadata/identity/oauth2/tokenXYZ", "/metadata/identity/oauth2/token/extra",
                           "/metadata/identity/x/oauth2/y/token",
                           "/metadata/identity/oauth2/tok%zzen"}) {
    INFO(path);
    auto r = t.call(path + "?resource=x");
    CHECK(r.result_int() == 400);
    CHECK(description_of(r) == "Invalid request");
  }
  CHECK(t.upstream.seen.empty());
}

TEST_CASE("resource missing or empty, or a malformed query: 400") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  for (std::string q : {"", "?api-version=2018-02-01", "?resource=", "?resource&client_id=x"}) {
    auto r = t.call("/metadata/identity/oauth2/token" + q);
    CHECK(r.result_int() == 400);
    CHECK(description_of(r) == "parameter resource cannot be empty");
  }
  auto bad = t.call("/metadata/identity/oauth2/token?resource=%zz");
  CHECK(bad.result_int() == 400);
  CHECK(error_of(bad) == "invalid_request");
  CHECK(t.fetcher.calls.empty());
}

TEST_CASE("unknown caller: 404 after a bounded wait; a pod that appears meanwhile is served") {
  NmiHarness t;
  auto r = t.call(kToken, "10.9.9.9");
  CHECK(r.result_int() == 404);
  CHECK(error_of(r) == "pod_not_found");

  t.handler_options.pod_wait = std::chrono::hours(1);
  t.handler.reset();
  auto c = NmiHarness::make_call(kToken, "10.0.0.5", {{"Metadata", "true"}});
  t.start(*c);
  t.settle();
  CHECK_FALSE(c->done);
  auto pod = make_pod("ns", "late", "10.0.0.5", "sel");
  t.bind(pod, "id-late", "client-late");
  t.state.add(pod);  // the cache notifier wakes the waiting request
  t.run_until([&] { return c->done; });
  REQUIRE(c->res);
  CHECK(c->res->result_int() == 200);
}

TEST_CASE("caller matching: hostNetwork and terminated pods never match; two live pods with one IP is 500") {
  NmiHarness t;
  auto host = make_pod("kube-system", "hostnet", "10.0.0.1", "sel");
  host.host_network = true;
  t.state.add(host);
  auto done = make_pod("ns", "job", "10.0.0.1", "sel");
  done.phase = "Succeeded";
  t.state.add(done);
  auto failed = make_pod("ns", "job2", "10.0.0.1", "sel");
  failed.phase = "Failed";
  t.state.add(failed);
  t.bind(done, "id", "client");
  CHECK(t.call(kToken).result_int() == 404);

  auto a = make_pod("ns", "a", "10.0.0.2", "sel");
  auto b = make_pod("ns", "b", "10.0.0.2", "sel");
  b.pod_ip = "10.0.0.99";
  b.pod_ips = {"10.0.0.99", "10.0.0.2"};  // claims the IP through status.podIPs
  t.state.add(a);
  t.state.add(b);
  auto r = t.call(kToken, "10.0.0.2");
  CHECK(r.result_int() == 500);
  CHECK_THAT(description_of(r), Catch::Contains("ns/a") && Catch::Contains("ns/b"));
  CHECK(t.fetcher.calls.empty());
}

TEST_CASE("IPv6 callers and IPv4-mapped peers are found by their address") {
  NmiHarness t;
  auto v6 = make_pod("ns", "v6", "fd00::7", "sel");
  t.state.add(v6);
  t.bind(v6, "id6", "client6");
  CHECK(t.call(kToken, "fd00::7").result_int() == 200);
  auto v4 = make_pod("ns", "v4", "10.0.0.8", "sel4");
  t.state.add(v4);
  t.bind(v4, "id4", "client4");
  CHECK(t.call(kToken, "::ffff:10.0.0.8").result_int() == 200);
}

TEST_CASE("no identity can ever match: 404 at once (no label, no binding, identity not bound)") {
  NmiHarness t;  // waits are one hour: a test that waited would fail by the run limit
  t.state.add(make_pod("ns", "nolabel", "10.0.0.1"));
  auto r = t.call(kToken, "10.0.0.1");
  CHECK(r.result_int() == 404);
  CHECK(error_of(r) == "identity_not_found");
  CHECK(description_of(r) == "pod has no aadpodidbinding label");

  t.state.add(make_pod("ns", "unbound", "10.0.0.2", "nobody-selects-this"));
  CHECK(t.call(kToken, "10.0.0.2").result_int() == 404);

  auto c = make_pod("ns", "c", "10.0.0.3", "sel-c");
  t.state.add(c);
  t.bind(c, "id-c", "client-c");
  auto other = t.call(kToken + "&client_id=client-of-someone-else", "10.0.0.3");
  CHECK(other.result_int() == 404);
  CHECK(description_of(other) == "the requested identity is not bound to this pod");
  CHECK(t.fetcher.calls.empty());
}

TEST_CASE("--set-retry-after-header: 503 with Retry-After: 20 instead of 404") {
  NmiHarness t;
  t.handler_options.set_retry_after_header = true;
  t.state.add(make_pod("ns", "nolabel", "10.0.0.1"));
  auto r = t.call(kToken);
  CHECK(r.result_int() == 503);
  CHECK(r[http::bhttp::field::retry_after] == "20");
  CHECK(error_of(r) == "identity_not_found");
}

TEST_CASE("standard mode: an assignment that stays Created is given up after the retry budget") {
  NmiHarness t;
  t.resolver_options.created_wait = std::chrono::milliseconds(30);
  t.resolver_options.assigned_wait = std::chrono::milliseconds(30);
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a", "Created");
  auto r = t.call(kToken);
  CHECK(r.result_int() == 404);
  CHECK_THAT(description_of(r), Catch::Contains("Created"));
  // Bound but not assigned at all: the created budget.
  auto b = make_pod("ns", "b", "10.0.0.2", "sel-b");
  t.state.add(b);
  t.bind(b, "id-b", "client-b", "");
  auto rb = t.call(kToken, "10.0.0.2");
  CHECK(rb.result_int() == 404);
  CHECK_THAT(description_of(rb), Catch::Contains("MIC has not assigned"));
}

TEST_CASE("standard mode: Created -> Assigned wakes the waiting request (no polling interval)") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  auto id = t.bind(pod, "id-a", "client-a", "Created");
  auto c = NmiHarness::make_call(kToken, "10.0.0.1", {{"Metadata", "true"}});
  t.start(*c);
  t.settle();
  CHECK_FALSE(c->done);
  t.state.add(make_assigned(pod, id, "Assigned"));
  t.run_until([&] { return c->done; });
  REQUIRE(c->res);
  CHECK(c->res->result_int() == 200);
  CHECK(t.fetcher.calls.size() == 1);
}

TEST_CASE("token errors: an upstream refusal is 403, anything else 503") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  t.fetcher.refuse("client-a", 400, "invalid_request", "Identity not found");
  auto r = t.call(kToken);
  CHECK(r.result_int() == 403);
  CHECK(error_of(r) == "invalid_request");
  CHECK_THAT(description_of(r), Catch::Contains("Identity not found"));

  t.fetcher.errors["client-a"] = azure::local_error(azure::Error::Kind::transport, "connect", "connection refused");
  CHECK(t.call(kToken).result_int() == 503);
  t.fetcher.errors["client-a"] = azure::local_error(azure::Error::Kind::config, "unsupported_identity_type", "type 7");
  CHECK(t.call(kToken).result_int() == 503);
}

TEST_CASE("excepted pods and the MIC go straight to IMDS, request and answer relayed") {
  NmiHarness t;
  auto pod = make_pod("ns", "excepted", "10.0.0.1", "");
  pod.meta.labels["app"] = "Special";
  t.state.add(pod);
  kube::AzurePodIdentityException e;
  e.meta.ns = "ns";
  e.meta.name = "exc";
  e.pod_labels = {{"app", "special"}, {"other", "x"}};
  t.state.add(e);
  t.upstream.status = http::Status::bad_request;
  t.upstream.body = R"({"error":"invalid_request","error_description":"Identity not found"})";
  auto target = kToken + "&object_id=abc";
  auto r = t.call(target);
  CHECK(r.result_int() == 400);
  CHECK(r.body() == t.upstream.body);
  CHECK(r["X-Upstream"] == "1");
  REQUIRE(t.upstream.seen.size() == 1);
  CHECK(t.upstream.seen[0].target() == target);
  CHECK(t.upstream.seen[0]["Metadata"] == "true");

  // An exception in another namespace does not apply.
  auto elsewhere = make_pod("other", "x", "10.0.0.2", "");
  elsewhere.meta.labels["app"] = "special";
  t.state.add(elsewhere);
  CHECK(t.call(kToken, "10.0.0.2").result_int() == 404);

  auto mic = make_pod("default", "mic-7d9f-abc", "10.0.0.3", "");
  mic.meta.owner_references.push_back({"apps/v1", "ReplicaSet", "mic-7d9f", "uid", true, true});
  t.state.add(mic);
  t.upstream.status = http::Status::ok;
  CHECK(t.call(kToken, "10.0.0.3").result_int() == 200);
  CHECK(t.upstream.seen.size() == 2);
  CHECK(t.fetcher.calls.empty());

  // Deployments whose names merely start with "mic" are ordinary pods (the original let them through).
  int ip = 4;
  for (std::string rs : {"microservice-7d9f", "mic-frontend-abc"}) {
    INFO(rs);
    auto address = "10.0.0." + std::to_string(ip++);
    auto impostor = make_pod("default", rs + "-x", address, "");
    impostor.meta.owner_references.push_back({"apps/v1", "ReplicaSet", rs, "uid", true, true});
    t.state.add(impostor);
    auto r = t.call(kToken, address);
    CHECK(r.result_int() == 404);
    CHECK(error_of(r) == "identity_not_found");
  }
  CHECK(t.upstream.seen.size() == 2);
  CHECK(t.fetcher.calls.empty());
}

TEST_CASE("object_id is refused explicitly for pod identities (not silently ignored)") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  auto r = t.call(kToken + "&object_id=00000000-0000-0000-0000-000000000001");
  CHECK(r.result_int() == 400);
  CHECK_THAT(description_of(r), Catch::Contains("object_id"));
  CHECK(t.fetcher.calls.empty());
}

TEST_CASE("blocked instance metadata: 403 in any letter case; proxied when not blocked") {
  NmiHarness t;
  t.handler_options.block_instance_metadata = true;
  for (std::string p : {"/metadata/instance", "/metadata/instance/compute?api-version=2021-02-01", "/METADATA/Instance",
                        "/metadata/%69nstance"}) {
    auto r = t.call(p, "10.0.0.1", {});
    CHECK(r.result_int() == 403);
    CHECK(description_of(r) == "Request blocked by AAD Pod Identity NMI");
  }
  CHECK(t.upstream.seen.empty());
  NmiHarness open;
  CHECK(open.call("/metadata/instance?api-version=2021-02-01").result_int() == 200);
  CHECK(open.upstream.seen.size() == 1);
}

TEST_CASE("proxy: method, target, headers and body go upstream; status, headers and body come back") {
  NmiHarness t;
  t.upstream.status = http::Status::not_found;
  t.upstream.body = "no such thing";
  auto r = t.call("/doesnotexist/%41?x=1&y=%2F", "10.0.0.1", {{"Metadata", "true"}, {"X-Custom", "v"}},
                  http::Verb::post, "payload");
  CHECK(r.result_int() == 404);
  CHECK(r.body() == "no such thing");
  CHECK(r["X-Upstream"] == "1");
  REQUIRE(t.upstream.seen.size() == 1);
  const auto& up = t.upstream.seen[0];
  CHECK(up.method() == http::Verb::post);
  CHECK(up.target() == "/doesnotexist/%41?x=1&y=%2F");
  CHECK(up["X-Custom"] == "v");
  CHECK(up.body() == "payload");
  // /metadata/Identity (capital I) is a token path in another case: refused, not proxied (the
  // original proxied it, with the caller's query, to an IMDS that may not care about case).
  auto odd_case = t.call("/metadata/Identity/oauth2/token?resource=x");
  CHECK(odd_case.result_int() == 400);
  CHECK(t.upstream.seen.size() == 1);
}

TEST_CASE("/host/token: podname/podns headers, loopback callers only, {token, clientid}") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  auto missing = t.call("/host/token/?resource=https://vault.azure.net", "127.0.0.1", {{"podname", "a"}});
  CHECK(missing.result_int() == 400);
  CHECK(description_of(missing) == "missing 'podname' and 'podns' from request header");
  auto remote = t.call("/host/token/?resource=https://vault.azure.net", "10.0.0.1", {{"podname", "a"}, {"podns", "ns"}});
  CHECK(remote.result_int() == 500);
  CHECK(description_of(remote) == "request remote address is not from a host");
  auto no_resource = t.call("/host/token/", "127.0.0.1", {{"podname", "a"}, {"podns", "ns"}});
  CHECK(no_resource.result_int() == 400);
  auto unknown = t.call("/host/token/?resource=r", "127.0.0.1", {{"podname", "zz"}, {"podns", "ns"}});
  CHECK(unknown.result_int() == 404);
  auto ok = t.call("/host/token/?resource=https://vault.azure.net", "127.0.0.1", {{"podname", "a"}, {"podns", "ns"}});
  REQUIRE(ok.result_int() == 200);
  auto body = body_of(ok);
  CHECK(body.at("clientid").as_string() == "client-a");
  CHECK(body.at("token").as_object().at("access_token").as_string().starts_with("tok:client-a:https://vault.azure.net"));
}
