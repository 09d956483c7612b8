// Suite nmi, unit part: the token cache's bound. Any pod can ask for endless distinct resources
// that IMDS answers; the cache keeps to its entry and byte limits (least recently used out first,
// expired before that) and single flight keeps working while it evicts.
#include <algorithm>
#include <catch2/catch.hpp>

#include "core/log.hpp"
#include "nmi/nmi_harness.hpp"

using namespace aad;
using namespace aad::test;

namespace {

const std::string kBase = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=";

std::string access_token(const http::Response& r) { return std::string(body_of(r).at("access_token").as_string()); }

struct LogCapture {
  std::vector<std::string> lines;
  explicit LogCapture(int verbosity) {
    log::Config c;
    c.format = log::Format::json;
    c.verbosity = verbosity;
    c.sink = [this](std::string_view l) { lines.emplace_back(l); };
    log::configure(std::move(c));
  }
  ~LogCapture() { log::configure({}); }
};

// A harness with one pod bound to one identity.
struct BoundPod {
  NmiHarness t;
  BoundPod(std::size_t max_entries, std::size_t max_bytes) {
    t.token_options.max_entries = max_entries;
    t.token_options.max_bytes = max_bytes;
    auto pod = make_pod("ns", "a", "10.0.0.1", "sel");
    t.state.add(pod);
    t.bind(pod, "id", "client");
  }
  http::Response get(const std::string& resource) {
    auto r = t.call(kBase + resource);
    REQUIRE(r.result_int() == 200);
    return r;
  }
};

}  // namespace

TEST_CASE("token cache: at most max_entries; the least recently used goes first, and is logged at -v=2") {
  BoundPod b(3, 1 << 30);
  LogCapture cap(2);
  b.get("r1");
  b.get("r2");
  b.get("r3");
  b.get("r1");  // a hit: r2 is now the least recently used
  REQUIRE(b.t.fetcher.calls.size() == 3);
  b.get("r4");
  auto& cache = b.t.token_service();
  CHECK(cache.cached() == 3);
  CHECK(cache.stats().evictions == 1);
  b.get("r1");
  b.get("r3");
  b.get("r4");
  CHECK(b.t.fetcher.calls.size() == 4);  // all three still cached
  b.get("r2");
  CHECK(b.t.fetcher.calls.size() == 5);  // r2 was the one evicted
  CHECK(b.t.fetcher.calls.back().resource == "r2");

  std::vector<std::string> evicted;
  for (const auto& l : cap.lines)
    if (l.find("token cache full") != std::string::npos) evicted.push_back(l);
  REQUIRE(evicted.size() == 2);
  CHECK(evicted[0].find(R"("max_entries":3)") != std::string::npos);
  for (const auto& l : evicted) {
    INFO(l);
    CHECK(l.find("\"r2\"") == std::string::npos);  // never the resource or client ID
    CHECK(l.find("client") == std::string::npos);
    CHECK(l.find("tok:") == std::string::npos);
  }
}

TEST_CASE("token cache: expired entries make room before unexpired ones are evicted") {
  BoundPod b(2, 1 << 30);
  b.get("old");                                 // fresh until 3300 s (1 h token, 300 s margin)
  b.t.clock.advance(std::chrono::seconds(1000));
  b.get("mid");                                 // fresh until 4300 s
  b.t.clock.advance(std::chrono::seconds(500));
  b.get("old");                                 // a hit: "mid" is now the least recently used
  b.t.clock.advance(std::chrono::seconds(1900));  // 3400 s: "old" is stale, "mid" is not
  b.get("third");
  CHECK(b.t.token_service().stats().evictions == 0);
  CHECK(b.t.token_service().cached() == 2);
  b.get("mid");
  CHECK(b.t.fetcher.calls.size() == 3);  // "mid" was kept
}

TEST_CASE("token cache: long resources are bounded by bytes; one larger than the bound is served, not cached") {
  const std::size_t limit = 256 * 1024;
  BoundPod b(1000, limit);
  std::size_t max_seen = 0;
  for (int i = 0; i < 40; ++i) {
    // As a pod inventing long resources would: every one a new entry of a few dozen KB.
    b.get("https://r" + std::to_string(i) + "/" + std::string(8000, 'x'));
    max_seen = std::max(max_seen, b.t.token_service().cached_bytes());
  }
  auto& cache = b.t.token_service();
  CHECK(max_seen <= limit);
  CHECK(cache.cached() >= 2);
  CHECK(cache.cached() < 40);
  CHECK(cache.stats().evictions == 40 - cache.cached());
  auto calls = b.t.fetcher.calls.size();
  b.get("https://r39/" + std::string(8000, 'x'));  // the newest is still cached
  CHECK(b.t.fetcher.calls.size() == calls);

  auto huge = b.get("https://huge/" + std::string(300 * 1024, 'y'));
  CHECK(access_token(huge).find("https://huge/") != std::string::npos);
  CHECK(cache.cached_bytes() <= limit);
  b.get("https://huge/" + std::string(300 * 1024, 'y'));
  CHECK(b.t.fetcher.calls.size() == calls + 2);  // fetched each time
}

TEST_CASE("token cache: evicting around a fetch in flight leaves single flight intact") {
  BoundPod b(1, 1 << 30);
  auto& t = b.t;
  t.fetcher.held_resources.insert("slow");
  std::vector<std::unique_ptr<Call>> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.push_back(NmiHarness::make_call(kBase + "slow", "10.0.0.1", {{"Metadata", "true"}}));
    t.start(*waiters.back());
  }
  t.run_until([&] { return t.fetcher.calls.size() == 1 && t.token_service().stats().shared == 3; });
  // Other resources fill and churn the one-entry cache while "slow" is in flight.
  b.get("r1");
  b.get("r2");
  b.get("r3");
  CHECK(t.token_service().stats().evictions == 2);
  for (const auto& w : waiters) CHECK_FALSE(w->done);
  t.fetcher.release("slow");
  t.run_until([&] { return std::all_of(waiters.begin(), waiters.end(), [](const auto& c) { return c->done; }); });
  std::size_t slow_fetches = std::count_if(t.fetcher.calls.begin(), t.fetcher.calls.end(),
                                           [](const auto& c) { return c.resource == "slow"; });
  CHECK(slow_fetches == 1);
  for (const auto& w : waiters) {
    REQUIRE(w->res);
    CHECK(w->res->result_int() == 200);
    CHECK(access_token(*w->res) == access_token(*waiters[0]->res));
  }
  // The finished fetch took the one place; the next request for it is a hit.
  CHECK(t.token_service().cached() == 1);
  auto again = b.get("slow");
  CHECK(access_token(again) == access_token(*waiters[0]->res));
  CHECK(t.fetcher.calls.size() == 4);
}
