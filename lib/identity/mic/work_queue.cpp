#include "identity/mic/work_queue.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace aad::identity::mic {

WorkQueue::WorkQueue(boost::asio::any_io_executor executor, WorkQueueOptions options)
    : executor_(executor), options_(options), delay_timer_(executor), wake_timer_(executor) {
  wake_timer_.expires_at(Clock::time_point::max());
}

WorkQueue::~WorkQueue() { *alive_ = false; }

void WorkQueue::add(const std::string& key) {
  if (shut_down_ || dirty_.count(key)) return;
  dirty_.insert(key);
  waiting_.erase(key);  // now beats later
  if (processing_.count(key)) return;  // done() queues it again
  queue_.push_back(key);
  wake();
}

void WorkQueue::add_after(const std::string& key, std::chrono::milliseconds delay) {
  if (shut_down_) return;
  if (delay.count() <= 0) return add(key);
  if (dirty_.count(key)) return;  // already due sooner
  auto at = Clock::now() + delay;
  auto it = waiting_.find(key);
  if (it == waiting_.end() || at < it->second) waiting_[key] = at;
  arm_timer();
}

void WorkQueue::add_rate_limited(const std::string& key, std::optional<Clock::time_point> not_before) {
  int n = failures_[key]++;
  auto delay = std::chrono::milliseconds(options_.base_delay.count() * (1LL << std::min(n, 20)));
  if (delay > options_.max_delay) delay = options_.max_delay;
  if (not_before) {
    auto until = std::chrono::duration_cast<std::chrono::milliseconds>(*not_before - Clock::now());
    delay = std::max(delay, until);
  }
  if (dirty_.count(key)) {  // queued by an event meanwhile: the backoff still applies
    dirty_.erase(key);
    queue_.erase(std::remove(queue_.begin(), queue_.end(), key), queue_.end());
  }
  waiting_.erase(key);
  add_after(key, delay);
}

void WorkQueue::forget(const std::string& key) { failures_.erase(key); }

int WorkQueue::failures(const std::string& key) const {
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

void WorkQueue::done(const std::string& key) {
  processing_.erase(key);
  if (dirty_.count(key)) {
    queue_.push_back(key);
    wake();
  }
}

void WorkQueue::shut_down() {
  shut_down_ = true;
  delay_timer_.cancel();
  wake();
}

void WorkQueue::wake() { wake_timer_.cancel(); }

void WorkQueue::promote_due() {
  auto now = Clock::now();
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (it->second <= now) {
      auto key = it->first;
      it = waiting_.erase(it);
      add(key);
    } else {
      ++it;
    }
  }
}

void WorkQueue::arm_timer() {
  if (waiting_.empty() || shut_down_) return;
  auto next = std::min_element(waiting_.begin(), waiting_.end(),
                               [](const auto& a, const auto& b) { return a.second < b.second; })->second;
  delay_timer_.expires_at(next);
  std::weak_ptr<bool> alive = alive_;
  delay_timer_.async_wait([this, alive](const boost::system::error_code&) {
    if (alive.expired() || !*alive.lock()) return;
    promote_due();
    arm_timer();
  });
}

boost::asio::awaitable<std::optional<std::string>> WorkQueue::get() {
  for (;;) {
    if (shut_down_) co_return std::nullopt;
    if (!queue_.empty()) {
      auto key = queue_.front();
      queue_.pop_front();
      dirty_.erase(key);
      processing_.insert(key);
      co_return key;
    }
    // The timer never expires (set once in the constructor); wake() cancels the waits.
    auto [ec] = co_await wake_timer_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    (void)ec;
  }
}

}  // namespace aad::identity::mic
