#include "azure/clock.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace aad::azure {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

asio::awaitable<bool> SystemClock::sleep(Millis d, const Cancellation& cancel) {
  if (cancel.cancelled()) co_return false;
  if (d.count() <= 0) co_return true;
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  if (!cancel.cancellable()) {
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return true;
  }
  auto r = co_await (timer.async_wait(asio::as_tuple(asio::use_awaitable)) || cancel.wait());
  co_return r.index() == 0 && !cancel.cancelled();
}

Clock& system_clock() {
  static SystemClock clock;
  return clock;
}

}  // namespace aad::azure
