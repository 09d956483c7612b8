#include "azure/cancel.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <vector>

namespace aad::azure {

namespace asio = boost::asio;

struct Cancellation::State {
  bool cancelled = false;
  std::vector<asio::steady_timer*> waiters;
};

Cancellation::Cancellation() : state_(std::make_shared<State>()) {}

void Cancellation::cancel() const {
  if (state_->cancelled || !cancellable()) return;
  state_->cancelled = true;
  auto waiters = state_->waiters;
  for (auto* t : waiters) t->cancel();
}

bool Cancellation::cancelled() const { return state_->cancelled; }

bool Cancellation::cancellable() const { return state_ != none().state_; }

const Cancellation& Cancellation::none() {
  static const Cancellation never;
  return never;
}

asio::awaitable<void> Cancellation::wait() const {
  auto state = state_;
  asio::steady_timer timer(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
  state->waiters.push_back(&timer);
  struct Unregister {
    State& s;
    asio::steady_timer* t;
    ~Unregister() { std::erase(s.waiters, t); }
  } unregister{*state, &timer};
  // Ends when cancel() fires the timer, or when the race this wait is part of aborts it.
  if (!state->cancelled) co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

}  // namespace aad::azure
