#pragma once
// Cooperative cancellation shared by a caller and the work it started. Copies share one state.
// Single-threaded like the rest of the code: everything runs on one io_context thread.
//
// Coroutine APIs of lib/azure take their arguments by reference (GCC 12 destroys by-value class
// arguments of a coroutine called inside a co_await expression twice, GCC PR 99576): co_await the
// returned awaitable at once, while the arguments are alive.
#include <boost/asio/awaitable.hpp>
#include <memory>

namespace aad::azure {

class Cancellation {
 public:
  Cancellation();
  void cancel() const;  // no effect on none() and its copies
  bool cancelled() const;
  // Completes when cancel() is called (never otherwise). Meant to be raced with other work.
  boost::asio::awaitable<void> wait() const;

  // A shared token that nobody cancels: the default argument of the coroutine APIs. Never call
  // cancel() on it.
  static const Cancellation& none();
  // False for none(): callers then skip the race against wait() (none() is shared by every
  // thread, so its state must never be touched).
  bool cancellable() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace aad::azure
