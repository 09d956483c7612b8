#include "identity/nmi/imds_limiter.hpp"

#include "identity/nmi/cancelled.hpp"

namespace aad::identity::nmi {

using namespace std::chrono;

ImdsLimiter::ImdsLimiter(LimiterOptions options, Now now)
    : options_(options), now_(std::move(now)), bucket_(options.per_second, options.burst, now_()) {}

void ImdsLimiter::Permit::release() {
  if (owner_) std::exchange(owner_, nullptr)->released();
}

void ImdsLimiter::released() {
  --active_;
  wake_first();
}

void ImdsLimiter::wake_first() {
  if (!queue_.empty()) queue_.front()->wake.notify();
}

ImdsLimiter::Permit ImdsLimiter::take() {
  if (options_.concurrent > 0 && active_ >= options_.concurrent) return {};
  if (!bucket_.try_take(now_())) return {};
  ++active_;
  return Permit(this);
}

ImdsLimiter::Permit ImdsLimiter::try_acquire() {
  if (!queue_.empty()) return {};
  return take();
}

boost::asio::awaitable<ImdsLimiter::Permit> ImdsLimiter::acquire(const azure::Cancellation& cancel) {
  if (cancel.cancelled()) co_return Permit{};
  if (auto p = try_acquire()) co_return p;
  Waiter me;
  // Leaving the line (with a permit, cancelled or destroyed) lets the next one try at once.
  struct InLine {
    ImdsLimiter& limiter;
    std::list<Waiter*>::iterator place;
    ~InLine() {
      bool first = place == limiter.queue_.begin();
      limiter.queue_.erase(place);
      if (first) limiter.wake_first();
    }
  } in_line{*this, queue_.insert(queue_.end(), &me)};
  for (;;) {
    auto generation = me.wake.generation();
    if (cancel.cancelled()) co_return Permit{};
    bool first = queue_.front() == &me;
    if (first) {
      if (auto p = take()) co_return p;
    }
    // First and blocked by the rate: the next token is due within 1/rate. Otherwise woken when
    // first in line and a permit is freed; the timeout is how quickly `cancel` is noticed.
    milliseconds wait{250};
    if (first && options_.per_second > 0 && (options_.concurrent <= 0 || active_ < options_.concurrent))
      wait = milliseconds(static_cast<long>(1000.0 / options_.per_second) + 1);
    bool woken = co_await me.wake.wait_since(generation, wait);
    (void)woken;
    co_await throw_if_cancelled();
  }
}

}  // namespace aad::identity::nmi
