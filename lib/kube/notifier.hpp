#pragma once
// "Something changed": a generation counter plus waiters woken by notify(), each with its own
// deadline. For callers that must wait for a cache (e.g. NMI waiting for a pod to appear) without
// polling. Single-threaded: use on the io_context that owns it.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <set>

namespace aad::kube {

class ChangeNotifier {
 public:
  ChangeNotifier();
  ~ChangeNotifier();
  ChangeNotifier(const ChangeNotifier&) = delete;
  ChangeNotifier& operator=(const ChangeNotifier&) = delete;

  std::uint64_t generation() const { return state_->generation; }
  void notify();  // bumps the generation and wakes every waiter

  // Waits until the generation differs from `since` or the timeout passes. True: changed.
  boost::asio::awaitable<bool> wait_since(std::uint64_t since, std::chrono::milliseconds timeout);
  boost::asio::awaitable<bool> wait(std::chrono::milliseconds timeout) {
    return wait_since(state_->generation, timeout);
  }

  struct Waiter;
  struct State {
    std::uint64_t generation = 0;
    std::set<Waiter*> waiters;
  };

 private:
  // Shared with pending waiters, so destroying the notifier first wakes them safely.
  std::shared_ptr<State> state_;
};

}  // namespace aad::kube
