// /metrics under stalled scrapers and /healthz on a probe listener under connection exhaustion,
// against the real server over loopback sockets.
#include <catch2/catch.hpp>

#include <atomic>
#include <vector>

#include "core/health.hpp"
#include "core/metrics.hpp"
#include "support/server_fixture.hpp"

using namespace aad;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

constexpr auto exchange_on = &test::ServerFixture::exchange_on;
using test::eventually;

std::string request(const std::string& method, const std::string& path) {
  return method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
}

std::string body_of(const std::string& response) {
  auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

// Reads a value on the server's thread (the page and the server are single-threaded).
template <typename F>
auto on_server(test::ServerFixture& fx, F read) {
  return fx.run([&]() -> asio::awaitable<decltype(read())> { co_return read(); });
}

// A registry whose page (~8 MB) is far larger than what the kernel buffers for one connection.
void fill(metrics::Registry& r) {
  auto& big = r.gauge("test_big", "A large family", {"key"});
  for (int i = 0; i < 100000; ++i)
    big.with({"series-" + std::to_string(i) + std::string(50, 'x')}).set(i);
}

struct Clock {
  std::atomic<std::chrono::steady_clock::rep> ticks{std::chrono::steady_clock::now().time_since_epoch().count()};
  std::chrono::steady_clock::time_point now() const {
    return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(ticks.load()));
  }
  void advance(std::chrono::steady_clock::duration d) { ticks += d.count(); }
};

}  // namespace

TEST_CASE("stalled scrapers share one rendering of /metrics; over the cap a scrape gets 503, /healthz still 200") {
  metrics::Registry registry;
  fill(registry);
  auto& changing = registry.counter("test_changes_total", "Bumped by the test").get();
  http::Health health;
  health.set_active(true);
  Clock clock;
  http::MetricsPageOptions po;
  po.max_in_flight = 6;
  po.now = [&clock] { return clock.now(); };
  auto page = std::make_shared<http::MetricsPage>(registry, po);
  test::ServerFixture fx(http::make_ops_handler(health, page));

  // Scrapers from several addresses that send the request and never read the reply.
  const char* sources[] = {"127.0.0.2", "127.0.0.3", "127.0.0.4"};
  std::vector<int> stalled;
  for (int i = 0; i < 6; ++i) {
    stalled.push_back(fx.connect_from(sources[i % 3], 4096));
    test::ServerFixture::send_all(stalled.back(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  REQUIRE(eventually([&] { return on_server(fx, [&] { return page->in_flight(); }) == 6; }));
  // One rendering and one buffer for all of them: each response holds the shared text, not a copy.
  CHECK(on_server(fx, [&] { return page->renders(); }) == 1);
  CHECK(on_server(fx, [&] { return page->sharers(); }) == 6);

  auto refused = exchange_on(fx.connect_from("127.0.0.7", 4096), request("GET", "/metrics"));
  CHECK(refused.rfind("HTTP/1.1 503", 0) == 0);
  CHECK(refused.find("Retry-After: 1") != std::string::npos);
  CHECK(refused.size() < 512);
  auto healthz = exchange_on(fx.connect_from("127.0.0.7", 4096), request("GET", "/healthz"));
  CHECK(healthz.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(body_of(healthz) == "Active");

  for (int fd : stalled) ::close(fd);
  REQUIRE(eventually([&] { return on_server(fx, [&] { return page->in_flight(); }) == 0; }));

  // Within max_age the cached page is served whole, even though a counter moved meanwhile.
  auto cached = on_server(fx, [&] { return registry.render(); });
  on_server(fx, [&] { changing.inc(); return 0; });
  auto full = exchange_on(fx.connect_from("127.0.0.8", 4096), request("GET", "/metrics"));
  CHECK(full.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(full.find("Content-Length: " + std::to_string(cached.size()) + "\r\n") != std::string::npos);
  CHECK(body_of(full) == cached);
  // HEAD: the same header, no body.
  auto head = exchange_on(fx.connect_from("127.0.0.8", 4096), request("HEAD", "/metrics"));
  CHECK(head.find("Content-Length: " + std::to_string(cached.size()) + "\r\n") != std::string::npos);
  CHECK(body_of(head).empty());
  CHECK(on_server(fx, [&] { return page->renders(); }) == 1);

  // Once max_age has passed the page is rendered afresh.
  clock.advance(2s);
  auto fresh = exchange_on(fx.connect_from("127.0.0.8", 4096), request("GET", "/metrics"));
  CHECK(body_of(fresh).find("test_changes_total 1\n") != std::string::npos);
  CHECK(on_server(fx, [&] { return page->renders(); }) == 2);
}

TEST_CASE("a probe listener whose cap is full of stalled scrapers and half-sent requests still answers /healthz") {
  metrics::Registry registry;
  fill(registry);
  http::Health health;
  health.set_active(true);
  http::MetricsPageOptions po;
  po.max_in_flight = 4;
  auto page = std::make_shared<http::MetricsPage>(registry, po);
  http::ServerOptions so;
  so.max_connections = 12;
  so.max_connections_per_peer = 4;
  test::ServerFixture fx(http::make_ops_handler(health, page), so);

  std::vector<int> attackers;
  // Four scrapers that never read (the page's cap), from one address...
  for (int i = 0; i < 4; ++i) {
    attackers.push_back(fx.connect_from("127.0.0.2", 4096));
    test::ServerFixture::send_all(attackers.back(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  REQUIRE(eventually([&] { return on_server(fx, [&] { return page->in_flight(); }) == 4; }));
  // ...and the rest of the cap in requests whose headers never finish, from two more.
  for (const char* source : {"127.0.0.3", "127.0.0.4"})
    for (int i = 0; i < 4; ++i) {
      attackers.push_back(fx.connect_from(source, 4096));
      test::ServerFixture::send_all(attackers.back(), "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    }
  REQUIRE(eventually([&] { return on_server(fx, [&] { return fx.server().reading_connections(); }) == 8; }));
  REQUIRE(on_server(fx, [&] { return fx.server().open_connections(); }) == 12);

  // Kubelet's probes keep being answered, each one displacing a half-sent request.
  for (int i = 0; i < 3; ++i) {
    auto probe = exchange_on(fx.connect_from("127.0.0.9", 4096), request("GET", "/healthz"));
    CHECK(probe.rfind("HTTP/1.1 200", 0) == 0);
  }
  CHECK(on_server(fx, [&] { return page->in_flight(); }) == 4);  // the scrapers were not cut off
  for (int fd : attackers) ::close(fd);
}
