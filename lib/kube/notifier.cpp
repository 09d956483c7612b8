#include "kube/notifier.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace aad::kube {

namespace asio = boost::asio;

struct ChangeNotifier::Waiter {
  asio::steady_timer timer;
  explicit Waiter(asio::any_io_executor ex) : timer(ex) {}
};

ChangeNotifier::ChangeNotifier() = default;

ChangeNotifier::~ChangeNotifier() {
  for (auto* w : waiters_) w->timer.cancel();
}

void ChangeNotifier::notify() {
  ++generation_;
  for (auto* w : waiters_) w->timer.cancel();
}

asio::awaitable<bool> ChangeNotifier::wait_since(std::uint64_t since, std::chrono::milliseconds timeout) {
  if (generation_ != since) co_return true;
  Waiter w(co_await asio::this_coro::executor);
  w.timer.expires_after(timeout);
  waiters_.insert(&w);
  // Only this notifier or the deadline end the wait; a cancel() from notify() is "changed".
  auto [ec] = co_await w.timer.async_wait(asio::as_tuple(asio::use_awaitable));
  (void)ec;
  waiters_.erase(&w);
  co_return generation_ != since;
}

}  // namespace aad::kube
