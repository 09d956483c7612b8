// Suite nmi, unit part: the per-node IMDS limiter (rate and concurrency) on an injected clock.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <optional>

#include "identity/nmi/imds_limiter.hpp"

using namespace aad::identity::nmi;
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
