// Suite nmi, unit part: what NMI accepts as a request target before routing. Only canonical
// paths are routed or proxied (a path IMDS would normalise must not get past the routes or the
// instance-metadata block); absolute-form targets are served like origin-form ones; query values
// with control characters are refused, never forwarded.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "nmi/nmi_harness.hpp"

using namespace aad;
using namespace aad::test;
namespace json = boost::json;

namespace {
const std::string kQuery = "?api-version=2018-02-01&resource=https://vault.azure.net";
}  // namespace

TEST_CASE("non-canonical paths: 400 with a JSON error, never routed, proxied or past the block") {
  for (bool block : {true, false}) {
    NmiHarness t;
    t.handler_options.block_instance_metadata = block;
    auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
    t.state.add(pod);
    t.bind(pod, "id-a", "client-a");
    for (const std::string& target : std::vector<std::string>{"//metadata/instance", "/metadata/./instance", "/metadata//instance", "/metadata/identity/../instance",
          "/metadata/%2e/instance", "/metadata/%2E%2E/instance", "/metadata/.%2e/instance",
          "/metadata/./identity/oauth2/token" + kQuery, "/metadata/instance/../identity/oauth2/token" + kQuery,
          "/metadata/identity//oauth2/token" + kQuery, "/metadata/identity/oauth2/token//" + kQuery,
          "/metadata\\instance", "/metadata%5cinstance", "/metadata%5Cinstance", "/metadata%2finstance",
          "/metadata/instance/..", "/metadata/instance/.", "/metadata/instance%00", "/metadata/in%0Astance",
          "/host/./token" + kQuery, "*", "metadata/instance", "http://169.254.169.254//metadata/instance",
          "http://169.254.169.254/metadata/./instance"}) {
      INFO(target << " block=" << block);
      auto r = t.call(target);
      CHECK(r.result_int() == 400);
      CHECK(r[http::bhttp::field::content_type] == "application/json; charset=utf-8");
      CHECK(std::string(body_of(r).at("error").as_string()) == "invalid_request");
      CHECK_THAT(description_of(r), Catch::StartsWith("invalid request path: "));
    }
    CHECK(t.upstream.seen.empty());
    CHECK(t.fetcher.calls.empty());
  }
}

TEST_CASE("canonical paths are still routed and proxied as before") {
  NmiHarness t;
  for (std::string target : {"/metadata/instance/compute/?api-version=2021-02-01", "/metadata/a.b/..c/c../.x",
                             "/metadata/%69nstance", "/", "/metadata/instance?x=a//b/../c"}) {
    INFO(target);
    CHECK(t.call(target).result_int() == 200);
    CHECK(t.upstream.seen.back().target() == target);
  }
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  CHECK(t.call("/metadata/identity/oauth2/token/" + kQuery).result_int() == 200);
}

TEST_CASE("absolute-form targets are served like origin-form (RFC 9112 3.2.2)") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  auto r = t.call("http://169.254.169.254/metadata/identity/oauth2/token" + kQuery);
  CHECK(r.result_int() == 200);
  CHECK(body_of(r).at("resource").as_string() == "https://vault.azure.net");
  REQUIRE(t.fetcher.calls.size() == 1);
  CHECK(t.fetcher.calls[0].client_id == "client-a");

  CHECK(t.call("HTTP://169.254.169.254:80/metadata/instance?api-version=2021-02-01").result_int() == 200);
  REQUIRE(t.upstream.seen.size() == 1);
  CHECK(t.upstream.seen[0].target() == "/metadata/instance?api-version=2021-02-01");
  t.call("http://169.254.169.254");
  t.call("http://169.254.169.254?x=1");
  REQUIRE(t.upstream.seen.size() == 3);
  CHECK(t.upstream.seen[1].target() == "/");
  CHECK(t.upstream.seen[2].target() == "/?x=1");

  NmiHarness blocked;
  blocked.handler_options.block_instance_metadata = true;
  auto b = blocked.call("http://169.254.169.254/metadata/instance?api-version=2021-02-01", "10.0.0.1", {});
  CHECK(b.result_int() == 403);
  CHECK(blocked.upstream.seen.empty());
}

TEST_CASE("control characters in query values: 400 naming the problem, never forwarded") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  auto excepted = make_pod("ns", "excepted", "10.0.0.2", "");
  excepted.meta.labels["app"] = "special";
  t.state.add(excepted);
  kube::AzurePodIdentityException e;
  e.meta.ns = "ns";
  e.meta.name = "exc";
  e.pod_labels = {{"app", "special"}};
  t.state.add(e);
  const std::string token = "/metadata/identity/oauth2/token?api-version=2018-02-01";
  for (const std::string& q : std::vector<std::string>{"&resource=https://vault.azure.net%00", "&resource=a%0Ab", "&resource=x&client_id=%1f",
                        "&resource=x&other=%7F", "&resource=x&a%00b=1", "&resource=%0d%0aX-Injected:%201"}) {
    for (std::string ip : {"10.0.0.1", "10.0.0.2"}) {
      INFO(q << " from " << ip);
      auto r = t.call(token + q, ip);
      CHECK(r.result_int() == 400);
      CHECK_THAT(description_of(r), Catch::Contains("control characters"));
    }
    auto host = t.call("/host/token/?" + q.substr(1), "127.0.0.1", {{"podname", "a"}, {"podns", "ns"}});
    CHECK(host.result_int() == 400);
  }
  auto proxied = t.call("/metadata/instance?api-version=2021-02-01&x=%00");
  CHECK(proxied.result_int() == 400);
  CHECK_THAT(description_of(proxied), Catch::Contains("control characters"));
  CHECK(t.upstream.seen.empty());
  CHECK(t.fetcher.calls.empty());
  // Printable escapes and non-ASCII bytes are fine.
  CHECK(t.call(token + "&resource=https%3A%2F%2Fvault.azure.net%2F%C3%A9").result_int() == 200);
  CHECK(t.call("/metadata/instance?api-version=2021-02-01&x=%20%41").result_int() == 200);
}
