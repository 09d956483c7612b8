#pragma once
// NMI's own limit on what it sends to IMDS, which allows a VM 20 token requests per second and
// 5 at a time: a token bucket plus a concurrency cap. Callers wait for a permit (cancellable)
// and hold it for the duration of one upstream call. Waiters are served in arrival order: only
// the oldest may take a permit and only it is woken when one frees up (when every waiter polled
// and newcomers could take a freed slot first, some requests waited most of a long burst).
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <memory>

#include "azure/cancel.hpp"
#include "kube/notifier.hpp"
#include "kube/rate.hpp"

namespace aad::identity::nmi {

struct LimiterOptions {
  double per_second = 20;  // <= 0: unlimited
  int burst = 20;
  int concurrent = 5;      // <= 0: unlimited
};

class ImdsLimiter {
 public:
  using Now = std::function<std::chrono::steady_clock::time_point()>;
  explicit ImdsLimiter(LimiterOptions options = {}, Now now = [] { return std::chrono::steady_clock::now(); });

  // Releases its slot when destroyed.
  class Permit {
   public:
    Permit() = default;
    explicit Permit(ImdsLimiter* owner) : owner_(owner) {}
    Permit(Permit&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)) {}
    Permit& operator=(Permit&& o) noexcept {
      release();
      owner_ = std::exchange(o.owner_, nullptr);
      return *this;
    }
    ~Permit() { release(); }
    explicit operator bool() const { return owner_ != nullptr; }

   private:
    void release();
    ImdsLimiter* owner_ = nullptr;
  };

  // A permit now, or an empty one when the rate or the concurrency cap says wait, or when
  // others are already waiting (no jumping the queue).
  Permit try_acquire();
  // Waits for a permit; throws operation_aborted when the calling coroutine is cancelled, and
  // returns an empty permit when `cancel` fires (detached work cancelled by its requesters).
  boost::asio::awaitable<Permit> acquire(const azure::Cancellation& cancel = azure::Cancellation::none());

  int active() const { return active_; }
  std::size_t waiting() const { return queue_.size(); }

 private:
  struct Waiter {
    kube::ChangeNotifier wake;  // notified when it is first in line and a permit may be free
  };
  Permit take();  // a permit if the rate and the concurrency cap allow one now
  void released();
  void wake_first();
  LimiterOptions options_;
  Now now_;
  kube::TokenBucket bucket_;
  int active_ = 0;
  std::list<Waiter*> queue_;  // in arrival order; each lives in its acquire() frame
};

}  // namespace aad::identity::nmi
