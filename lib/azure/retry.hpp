#pragma once
// A bounded, cancellable retry loop for token requests: exponential backoff with a cap, an
// overall time budget (measured on the injected clock) and Retry-After when the server sends one.
#include <boost/asio/awaitable.hpp>
#include <functional>

#include "azure/cancel.hpp"
#include "azure/clock.hpp"
#include "azure/error.hpp"
#include "azure/token.hpp"

namespace aad::azure {

struct RetryPolicy {
  int max_attempts = 4;
  Millis initial_delay{500};
  double multiplier = 2.0;
  Millis max_delay{4000};
  // No new attempt starts once this much time has passed since the first one (on the clock),
  // and no sleep goes past it: a caller is never held much longer than this plus one request.
  Millis total_budget{10000};
  bool honour_retry_after = true;

  static RetryPolicy none() {
    RetryPolicy p;
    p.max_attempts = 1;
    return p;
  }
};

// The delay before attempt `n+1` after `n` failed attempts (n >= 1), without Retry-After.
Millis backoff_delay(const RetryPolicy& p, int failed_attempts);

// Runs attempt() until it succeeds, fails with a non-retryable error, the attempts or the budget
// run out, or `cancel` fires (Error{cancelled}). The last error is returned as is.
boost::asio::awaitable<Result<Token>> retry_token(const RetryPolicy& policy, Clock& clock,
                                                  const Cancellation& cancel,
                                                  const std::function<boost::asio::awaitable<Result<Token>>()>& attempt);

}  // namespace aad::azure
