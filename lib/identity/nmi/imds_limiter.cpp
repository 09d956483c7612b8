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
  freed_.notify();
}

ImdsLimiter::Permit ImdsLimiter::try_acquire() {
  if (options_.concurrent > 0 && active_ >= options_.concurrent) return {};
  if (!bucket_.try_take(now_())) return {};
  ++active_;
  return Permit(this);
}

boost::asio::awaitable<ImdsLimiter::Permit> ImdsLimiter::acquire(const azure::Cancellation& cancel) {
  ++waiting_;
  struct Count {
    std::size_t& n;
    ~Count() { --n; }
  } count{waiting_};
  for (;;) {
    auto generation = freed_.generation();
    if (cancel.cancelled()) co_return Permit{};
    if (auto p = try_acquire()) co_return p;
    // Blocked by the rate: the next token is due within 1/rate; by concurrency: woken by release.
    milliseconds wait{250};  // also how quickly `cancel` is noticed
    if (options_.per_second > 0 && (options_.concurrent <= 0 || active_ < options_.concurrent))
      wait = milliseconds(static_cast<long>(1000.0 / options_.per_second) + 1);
    bool freed = co_await freed_.wait_since(generation, wait);
    (void)freed;
    co_await throw_if_cancelled();
  }
}

}  // namespace aad::identity::nmi
