#pragma once
// A de-duplicating, rate-limited work queue of string keys (client-go's workqueue semantics, on
// one io_context): a key added while queued is queued once; a key added while being processed
// is processed again afterwards, never twice at the same time; add_rate_limited() delays a key
// with per-key exponential backoff (or until a given time, e.g. an ARM Retry-After); forget()
// resets the backoff after success.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

namespace aad::identity::mic {

struct WorkQueueOptions {
  std::chrono::milliseconds base_delay{1000};   // first retry after a failure
  std::chrono::milliseconds max_delay{300000};  // backoff cap
};

class WorkQueue {
 public:
  using Clock = std::chrono::steady_clock;
  WorkQueue(boost::asio::any_io_executor executor, WorkQueueOptions options = {});
  ~WorkQueue();

  void add(const std::string& key);
  void add_after(const std::string& key, std::chrono::milliseconds delay);
  // Backoff for this key: max(base * 2^failures, not_before - now), capped.
  void add_rate_limited(const std::string& key, std::optional<Clock::time_point> not_before = std::nullopt);
  void forget(const std::string& key);  // success: the next failure starts at base_delay again
  int failures(const std::string& key) const;

  // Waits for a key to process; nullopt once shut down. Call done(key) after processing.
  boost::asio::awaitable<std::optional<std::string>> get();
  void done(const std::string& key);
  void shut_down();

  std::size_t depth() const { return queue_.size(); }     // ready keys waiting
  std::size_t delayed() const { return waiting_.size(); }  // keys waiting for their time
  bool processing(const std::string& key) const { return processing_.count(key) > 0; }

 private:
  void promote_due();
  void arm_timer();
  void wake();

  boost::asio::any_io_executor executor_;
  WorkQueueOptions options_;
  std::deque<std::string> queue_;
  std::set<std::string> dirty_, processing_;
  std::map<std::string, Clock::time_point> waiting_;  // key -> earliest time
  std::map<std::string, int> failures_;
  boost::asio::steady_timer delay_timer_, wake_timer_;
  bool shut_down_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace aad::identity::mic
