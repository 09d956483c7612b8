#pragma once
// The time seam: token expiry, backoff and Retry-After go through a Clock so tests can run them
// without sleeping (a fake clock records the sleeps and advances its own time).
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>

#include "azure/cancel.hpp"

namespace aad::azure {

using SystemTime = std::chrono::system_clock::time_point;
using Millis = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SystemTime now() const = 0;
  // Sleeps d; false when cancelled first (returns at once if already cancelled).
  virtual boost::asio::awaitable<bool> sleep(Millis d, const Cancellation& cancel) = 0;
};

// Wall clock and steady timers on the current coroutine's executor.
class SystemClock final : public Clock {
 public:
  SystemTime now() const override { return std::chrono::system_clock::now(); }
  boost::asio::awaitable<bool> sleep(Millis d, const Cancellation& cancel) override;
};

// A process-wide SystemClock for callers that do not inject one.
Clock& system_clock();

}  // namespace aad::azure
