#pragma once
// Pure timing logic with an injected clock: a token bucket (client QPS/burst, event spam limit)
// and an exponential backoff with reset after a healthy period (watch relists, retries).
#include <algorithm>
#include <chrono>
#include <functional>
#include <string_view>

namespace aad::kube {

using Clock = std::chrono::steady_clock;

class TokenBucket {
 public:
  // qps <= 0: unlimited. burst < 1 is treated as 1.
  TokenBucket(double qps, int burst, Clock::time_point now = Clock::now())
      : qps_(qps), burst_(std::max(1, burst)), tokens_(std::max(1, burst)), last_(now) {}

  // Takes a token if one is available now.
  bool try_take(Clock::time_point now) {
    if (qps_ <= 0) return true;
    refill(now);
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }
  // Takes a token (possibly going into debt) and returns how long the caller must wait before
  // using it. Zero when one was available.
  Clock::duration reserve(Clock::time_point now) {
    if (qps_ <= 0) return Clock::duration::zero();
    refill(now);
    tokens_ -= 1.0;
    if (tokens_ >= 0) return Clock::duration::zero();
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(-tokens_ / qps_));
  }
  double tokens(Clock::time_point now) {
    refill(now);
    return tokens_;
  }

 private:
  void refill(Clock::time_point now) {
    if (now > last_) {
      tokens_ = std::min<double>(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * qps_);
      last_ = now;
    }
  }
  double qps_;
  int burst_;
  double tokens_;
  Clock::time_point last_;
};

struct BackoffOptions {
  std::chrono::milliseconds initial{800};
  std::chrono::milliseconds max{30000};
  double factor = 2.0;
  std::chrono::milliseconds reset_after{120000};  // healthy this long since the last failure: start over
  double jitter = 0.0;                            // up to +jitter*delay, from `random` in [0,1)
};

class Backoff {
 public:
  using Options = BackoffOptions;
  explicit Backoff(Options o = {}, std::function<double()> random = {}) : o_(o), random_(std::move(random)) {}

  // The delay before the next attempt after a failure at `now`.
  std::chrono::milliseconds next(Clock::time_point now) {
    if (has_last_ && now - last_ > o_.reset_after) current_ = {};
    has_last_ = true;
    last_ = now;
    if (current_.count() == 0) current_ = o_.initial;
    else current_ = std::min(o_.max, std::chrono::milliseconds(static_cast<long long>(current_.count() * o_.factor)));
    auto d = current_;
    if (o_.jitter > 0 && random_) d += std::chrono::milliseconds(static_cast<long long>(d.count() * o_.jitter * random_()));
    return d;
  }
  void reset() {
    current_ = {};
    has_last_ = false;
  }

 private:
  Options o_;
  std::function<double()> random_;
  std::chrono::milliseconds current_{0};
  Clock::time_point last_{};
  bool has_last_ = false;
};

// Retry-After (delta-seconds only; HTTP dates are treated as absent), clamped to [0, max].
inline std::chrono::milliseconds parse_retry_after(std::string_view v, std::chrono::milliseconds fallback,
                                                   std::chrono::milliseconds max) {
  long long s = 0;
  bool any = false;
  for (char c : v) {
    if (c == ' ') continue;
    if (c < '0' || c > '9') return std::min(fallback, max);
    s = s * 10 + (c - '0');
    any = true;
    if (s > 86400) break;
  }
  if (!any) return std::min(fallback, max);
  return std::min(max, std::chrono::milliseconds(s * 1000));
}

}  // namespace aad::kube
