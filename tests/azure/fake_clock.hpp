#pragma once
// A clock for tests: time only moves when someone sleeps (or the test advances it), and every
// sleep is recorded, so backoff and Retry-After are checked without waiting.
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <functional>
#include <vector>

#include "azure/clock.hpp"

namespace aad::test {

class FakeClock final : public azure::Clock {
 public:
  explicit FakeClock(azure::SystemTime start = azure::SystemTime(std::chrono::seconds(1700000000)))
      : now_(start) {}
  azure::SystemTime now() const override { return now_; }
  boost::asio::awaitable<bool> sleep(azure::Millis d, const azure::Cancellation& cancel) override {
    if (cancel.cancelled()) co_return false;
    sleeps.push_back(d);
    now_ += d;
    if (on_sleep) on_sleep();
    // Yield once so the sleep is a real suspension point.
    co_await boost::asio::post(co_await boost::asio::this_coro::executor, boost::asio::use_awaitable);
    co_return !cancel.cancelled();
  }
  void advance(azure::Millis d) { now_ += d; }

  std::vector<azure::Millis> sleeps;
  std::function<void()> on_sleep;

 private:
  azure::SystemTime now_;
};

}  // namespace aad::test
