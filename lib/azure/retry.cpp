#include "azure/retry.hpp"

#include <algorithm>
#include <cmath>

namespace aad::azure {

Millis backoff_delay(const RetryPolicy& p, int failed_attempts) {
  double d = static_cast<double>(p.initial_delay.count()) * std::pow(p.multiplier, failed_attempts - 1);
  d = std::min(d, static_cast<double>(p.max_delay.count()));
  return Millis(static_cast<Millis::rep>(d));
}

boost::asio::awaitable<Result<Token>> retry_token(
    const RetryPolicy& policy, Clock& clock, const Cancellation& cancel,
    const std::function<boost::asio::awaitable<Result<Token>>()>& attempt) {
  const auto start = clock.now();
  const auto deadline = start + policy.total_budget;
  for (int n = 1;; ++n) {
    if (cancel.cancelled()) co_return local_error(Error::Kind::cancelled, "Cancelled", "request cancelled");
    auto r = co_await attempt();
    if (r || !r.error().retryable || n >= policy.max_attempts) co_return r;
    Millis delay = backoff_delay(policy, n);
    if (policy.honour_retry_after && r.error().retry_after)
      delay = std::max<Millis>(delay, std::chrono::duration_cast<Millis>(*r.error().retry_after));
    auto now = clock.now();
    if (now + delay > deadline) co_return r;  // the budget would be exceeded: give the error back
    if (!co_await clock.sleep(delay, cancel))
      co_return local_error(Error::Kind::cancelled, "Cancelled", "request cancelled");
  }
}

}  // namespace aad::azure
