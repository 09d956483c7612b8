// The work queue: de-duplication, no concurrent processing of one key, backoff and Retry-After.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "identity/mic/work_queue.hpp"
#include "support/async.hpp"

using namespace aad::identity::mic;
using namespace std::chrono_literals;

namespace {

boost::asio::awaitable<std::optional<std::string>> next(WorkQueue& q) {
  auto k = co_await q.get();
  co_return k;
}

boost::asio::awaitable<std::vector<std::string>> drain(WorkQueue& q, std::size_t n) {
  std::vector<std::string> out;
  while (out.size() < n) {
    auto k = co_await q.get();
    if (!k) break;
    out.push_back(*k);
    q.done(*k);
  }
  co_return out;
}

}  // namespace

TEST_CASE("work queue: a key added many times is processed once") {
  boost::asio::io_context io;
  WorkQueue q(io.get_executor());
  q.add("vmss-a");
  q.add("vmss-b");
  q.add("vmss-a");
  q.add("vmss-a");
  CHECK(q.depth() == 2);
  auto keys = aad::test::run_async(io, drain(q, 2));
  CHECK(keys == std::vector<std::string>{"vmss-a", "vmss-b"});
  CHECK(q.depth() == 0);
}

TEST_CASE("work queue: a key added while processing is processed again afterwards, not concurrently") {
  boost::asio::io_context io;
  WorkQueue q(io.get_executor());
  q.add("k");
  auto first = aad::test::run_async(io, next(q));
  REQUIRE(first == std::optional<std::string>("k"));
  q.add("k");  // an event during the reconcile
  CHECK(q.depth() == 0);  // not handed to another worker
  CHECK(q.processing("k"));
  q.done("k");
  CHECK(q.depth() == 1);
  auto again = aad::test::run_async(io, next(q));
  CHECK(again == std::optional<std::string>("k"));
}

TEST_CASE("work queue: add_after coalesces and delays") {
  boost::asio::io_context io;
  WorkQueue q(io.get_executor());
  q.add_after("k", 100ms);
  q.add_after("k", 100ms);
  CHECK(q.depth() == 0);
  CHECK(q.delayed() == 1);
  auto keys = aad::test::run_async(io, drain(q, 1));
  CHECK(keys == std::vector<std::string>{"k"});
  CHECK(q.delayed() == 0);
}

TEST_CASE("work queue: failures back off exponentially; forget resets; Retry-After extends") {
  boost::asio::io_context io;
  WorkQueue q(io.get_executor(), {.base_delay = 50ms, .max_delay = 1000ms});
  q.add_rate_limited("k");
  CHECK(q.failures("k") == 1);
  CHECK(q.depth() == 0);
  CHECK(q.delayed() == 1);
  auto keys = aad::test::run_async(io, drain(q, 1));
  CHECK(keys.size() == 1);
  q.add_rate_limited("k");
  CHECK(q.failures("k") == 2);
  q.forget("k");
  CHECK(q.failures("k") == 0);
  // A Retry-After longer than the backoff sets the delay.
  auto until = WorkQueue::Clock::now() + 10s;
  q.add_rate_limited("t", until);
  CHECK(q.delayed() >= 1);
  CHECK(q.depth() == 0);
}

TEST_CASE("work queue: shut_down ends get()") {
  boost::asio::io_context io;
  WorkQueue q(io.get_executor());
  q.shut_down();
  CHECK_FALSE(aad::test::run_async(io, next(q)).has_value());
}
