// Suite nmi, unit part: the per-node IMDS limiter (rate and concurrency) on an injected clock.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "identity/nmi/imds_limiter.hpp"

using namespace aad::identity::nmi;
namespace azure = aad::azure;
using namespace std::chrono_literals;

TEST_CASE("limiter: 20 per second with a burst of 20; refills with time") {
  auto now = std::chrono::steady_clock::time_point{} + 1h;
  ImdsLimiter limiter({.per_second = 20, .burst = 20, .concurrent = 0}, [&] { return now; });
  int granted = 0;
  for (int i = 0; i < 30; ++i)
    if (limiter.try_acquire()) ++granted;  // permit released at once: only the rate limits
  CHECK(granted == 20);
  now += 100ms;  // two more tokens
  granted = 0;
  for (int i = 0; i < 5; ++i)
    if (limiter.try_acquire()) ++granted;
  CHECK(granted == 2);
}

TEST_CASE("limiter: at most 5 at once; a release lets the next waiter in") {
  ImdsLimiter limiter({.per_second = 0, .burst = 1, .concurrent = 5});
  std::vector<ImdsLimiter::Permit> held;
  for (int i = 0; i < 5; ++i) held.push_back(limiter.try_acquire());
  for (const auto& p : held) CHECK(bool(p));
  CHECK(limiter.active() == 5);
  CHECK_FALSE(limiter.try_acquire());

  boost::asio::io_context io;
  std::optional<ImdsLimiter::Permit> waited;
  boost::asio::co_spawn(io, limiter.acquire(), [&](std::exception_ptr, ImdsLimiter::Permit p) { waited = std::move(p); });
  io.poll();
  CHECK_FALSE(waited);
  CHECK(limiter.waiting() == 1);
  held.pop_back();  // release one
  io.restart();
  for (int i = 0; i < 200 && !waited; ++i) io.run_one_for(10ms);
  REQUIRE(waited);
  CHECK(bool(*waited));
  CHECK(limiter.active() == 5);
  waited.reset();
  CHECK(limiter.active() == 4);
}

TEST_CASE("limiter: waiters are served in arrival order; a newcomer cannot take a freed slot first") {
  ImdsLimiter limiter({.per_second = 0, .burst = 1, .concurrent = 1});
  auto held = limiter.try_acquire();
  REQUIRE(held);

  boost::asio::io_context io;
  std::vector<std::string> order;
  std::map<std::string, ImdsLimiter::Permit> got;
  azure::Cancellation cancel_b;
  auto wait_as = [&](std::string name, const azure::Cancellation& cancel) {
    boost::asio::co_spawn(io, limiter.acquire(cancel), [&, name](std::exception_ptr, ImdsLimiter::Permit p) {
      order.push_back(name + (p ? "" : " (cancelled)"));
      got[name] = std::move(p);
    });
    io.restart();
    io.poll();
  };
  auto run_until = [&](std::size_t n) {
    io.restart();
    for (int i = 0; i < 300 && order.size() < n; ++i) io.run_one_for(10ms);
  };
  wait_as("a", azure::Cancellation::none());
  wait_as("b", cancel_b);
  wait_as("c", azure::Cancellation::none());
  wait_as("d", azure::Cancellation::none());
  CHECK(limiter.waiting() == 4);

  held = ImdsLimiter::Permit{};  // the slot frees: the first in line gets it
  CHECK_FALSE(limiter.try_acquire());  // not a caller arriving now
  run_until(1);
  REQUIRE(order == std::vector<std::string>{"a"});

  cancel_b.cancel();  // b leaves the line without a permit; c is now first
  run_until(2);
  got.erase("a");  // a's call ends
  run_until(3);
  CHECK(order == std::vector<std::string>{"a", "b (cancelled)", "c"});
  got.erase("c");
  run_until(4);
  CHECK(order == std::vector<std::string>{"a", "b (cancelled)", "c", "d"});
  CHECK(limiter.waiting() == 0);
  CHECK(limiter.active() == 1);
}
