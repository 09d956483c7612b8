// Suite nmi, unit part: the per-request log line (the original logged each token request's
// status and duration at info): one structured line per token and /host/token request, never the
// query or the token; other routes only at -v=2.
#include <catch2/catch.hpp>

#include "core/log.hpp"
#include "nmi/nmi_harness.hpp"

using namespace aad;
using namespace aad::test;

namespace {

struct Capture {
  std::vector<std::string> lines;
  explicit Capture(int verbosity) {
    log::Config c;
    c.format = log::Format::json;
    c.verbosity = verbosity;
    c.sink = [this](std::string_view l) { lines.emplace_back(l); };
    log::configure(std::move(c));
  }
  ~Capture() { log::configure({}); }
  std::vector<std::string> requests() const {
    std::vector<std::string> out;
    for (const auto& l : lines)
      if (l.find(R"("msg":"request")") != std::string::npos) out.push_back(l);
    return out;
  }
};

bool has(const std::string& line, const std::string& part) { return line.find(part) != std::string::npos; }

const std::string kToken = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net";

}  // namespace

TEST_CASE("token requests: one info line with method, path, pod, status and duration; never query or token") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  Capture cap(0);
  auto ok = t.call(kToken + "&client_id=client-a");
  REQUIRE(ok.result_int() == 200);
  auto lines = cap.requests();
  REQUIRE(lines.size() == 1);
  auto line = lines[0];
  INFO(line);
  CHECK(has(line, R"("v":0)"));
  CHECK(has(line, R"("route":"token")"));
  CHECK(has(line, R"("method":"GET")"));
  CHECK(has(line, R"("path":"/metadata/identity/oauth2/token")"));
  CHECK(has(line, R"("pod":"ns/a")"));
  CHECK(has(line, R"("status":200)"));
  CHECK(has(line, R"("duration_ms":)"));
  CHECK_FALSE(has(line, "vault"));
  CHECK_FALSE(has(line, "client-a"));
  CHECK_FALSE(has(line, "api-version"));
  CHECK_FALSE(has(line, "access_token"));
  CHECK_FALSE(has(line, "\"error\""));

  cap.lines.clear();
  auto missing = t.call(kToken + "&client_id=other");
  REQUIRE(missing.result_int() == 404);
  lines = cap.requests();
  REQUIRE(lines.size() == 1);
  INFO(lines[0]);
  CHECK(has(lines[0], R"("status":404)"));
  CHECK(has(lines[0], R"("error":"identity_not_found")"));
  CHECK(has(lines[0], R"("reason":"the requested identity is not bound to this pod")"));
  CHECK_FALSE(has(lines[0], "other"));
}

TEST_CASE("/host/token and rejected token requests are logged too, without raw control characters") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  Capture cap(0);
  REQUIRE(t.call("/host/token/?resource=x", "127.0.0.1", {{"podname", "a"}, {"podns", "ns"}}).result_int() == 200);
  REQUIRE(t.call("/metadata/identity/oauth2/token?resource=a%00b%0A").result_int() == 400);
  auto lines = cap.requests();
  REQUIRE(lines.size() == 2);
  CHECK(has(lines[0], R"("route":"host_token")"));
  CHECK(has(lines[0], R"("pod":"ns/a")"));
  CHECK(has(lines[1], R"("status":400)"));
  CHECK(has(lines[1], R"("error":"invalid_request")"));
  for (const auto& l : cap.lines) {
    INFO(l);
    CHECK(l.find('\0') == std::string::npos);
    CHECK(l.find('\n') == std::string::npos);
    CHECK_FALSE(has(l, "a%00b"));
  }
}

TEST_CASE("proxied, blocked and invalid-path requests: a line only at -v=2") {
  for (int v : {0, 1, 2}) {
    NmiHarness t;
    t.handler_options.block_instance_metadata = true;
    Capture cap(v);
    t.call("/metadata/scheduledevents?api-version=2020-07-01");
    t.call("/metadata/instance?api-version=2021-02-01");
    t.call("/metadata//instance");
    auto lines = cap.requests();
    INFO("v=" << v);
    if (v < 2) {
      CHECK(lines.empty());
      continue;
    }
    REQUIRE(lines.size() == 3);
    CHECK(has(lines[0], R"("route":"proxy")"));
    CHECK(has(lines[0], R"("v":2)"));
    CHECK(has(lines[0], R"("path":"/metadata/scheduledevents")"));
    CHECK_FALSE(has(lines[0], "api-version"));
    CHECK(has(lines[1], R"("route":"blocked_instance")"));
    CHECK(has(lines[1], R"("status":403)"));
    CHECK(has(lines[2], R"("route":"invalid_path")"));
    CHECK(has(lines[2], R"("reason":"invalid request path: empty path segment")"));
  }
}

TEST_CASE("every request line and per-request warning names the caller's ip:port, never a token") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  t.bind(pod, "id-b", "client-b");
  t.fetcher.errors["client-b"] = azure::local_error(azure::Error::Kind::transport, "connect", "connection refused");
  Capture cap(2);
  REQUIRE(t.call(kToken + "&client_id=client-a").result_int() == 200);
  REQUIRE(t.call(kToken, "10.9.9.9").result_int() == 404);  // pod_not_found
  REQUIRE(t.call("/metadata/identity/oauth2/token?api-version=2018-02-01").result_int() == 400);
  REQUIRE(t.call(kToken, "10.0.0.1", {}).result_int() == 400);  // no Metadata header
  REQUIRE(t.call("/metadata/identity/oauth2/token/x").result_int() == 400);
  REQUIRE(t.call(kToken + "&client_id=client-b").result_int() == 503);
  REQUIRE(t.call("/metadata/instance?api-version=2021-02-01").result_int() == 200);  // proxied
  REQUIRE(t.call("/host/token/?resource=x", "::1", {{"podname", "a"}, {"podns", "ns"}}).result_int() == 200);
  auto lines = cap.requests();
  REQUIRE(lines.size() == 8);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    INFO(lines[i]);
    std::string peer = i == 1 ? "10.9.9.9:40000" : i == 7 ? "[::1]:40000" : "10.0.0.1:40000";
    CHECK(has(lines[i], R"("peer":")" + peer + "\""));
  }
  CHECK(has(lines[1], R"("error":"pod_not_found")"));
  int warnings = 0;
  for (const auto& l : cap.lines) {
    INFO(l);
    CHECK_FALSE(has(l, "tok:"));  // the fake fetcher's tokens
    if (!has(l, R"("msg":"request")") && (has(l, "token request failed") || has(l, "no identity"))) {
      ++warnings;
      CHECK(has(l, R"("peer":"10.0.0.1:40000")"));
    }
  }
  CHECK(warnings == 1);
  REQUIRE(t.upstream.peers.size() == 1);
  CHECK(t.upstream.peers[0] == "10.0.0.1:40000");
}

TEST_CASE("an error line carries the code and reason NMI answered with, however long the answer") {
  NmiHarness t;
  auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
  t.state.add(pod);
  t.bind(pod, "id-a", "client-a");
  t.fetcher.refuse("client-a", 400, "invalid_resource", "AADSTS500011: resource principal not found " + std::string(10000, 'z'));
  Capture cap(0);
  auto res = t.call(kToken);
  REQUIRE(res.result_int() == 403);
  REQUIRE(res.body().size() > 10000);
  auto lines = cap.requests();
  REQUIRE(lines.size() == 1);
  INFO(lines[0]);
  CHECK(has(lines[0], R"("error":"invalid_resource")"));
  CHECK(has(lines[0], "AADSTS500011: resource principal not found zzz"));
  CHECK(lines[0].size() < 2000);  // the reason is clipped
}

TEST_CASE("a relayed IMDS error is logged with IMDS's own code and reason") {
  NmiHarness t;
  t.upstream.status = http::Status::bad_request;
  t.upstream.body = R"({"error":"invalid_request","error_description":"Bad request. api-version was not specified"})";
  Capture cap(2);
  REQUIRE(t.call("/metadata/instance").result_int() == 400);
  auto lines = cap.requests();
  REQUIRE(lines.size() == 1);
  INFO(lines[0]);
  CHECK(has(lines[0], R"("error":"invalid_request")"));
  CHECK(has(lines[0], R"("reason":"Bad request. api-version was not specified")"));
}
