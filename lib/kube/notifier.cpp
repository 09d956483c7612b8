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

ChangeNotifier::ChangeNotifier() : state_(std::make_shared<State>()) {}

ChangeNotifier::~ChangeNotifier() {
  ++state_->generation;  // waiters wake up as "changed" and re-check whatever they wait for
  for (auto* w : state_->waiters) w->timer.cancel();
}

void ChangeNotifier::notify() {
  ++state_->generation;
  for (auto* w : state_->waiters) w->timer.cancel();
}

asio::awaitable<bool> ChangeNotifier::wait_since(std::uint64_t since, std::chrono::milliseconds timeout) {
  auto state = state_;  // the waiter keeps the state alive, not the notifier
  if (state->generation != since) co_return true;
  Waiter w(co_await asio::this_coro::executor);
  w.timer.expires_after(timeout);
  struct Registration {
    State& s;
    Waiter* w;
    ~Registration() { s.waiters.erase(w); }  // also when the frame is destroyed unresumed
  } reg{*state, &w};
  state->waiters.insert(&w);
  auto [ec] = co_await w.timer.async_wait(asio::as_tuple(asio::use_awaitable));
  (void)ec;
  co_return state->generation != since;
}

}  // namespace aad::kube
