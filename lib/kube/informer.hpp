#pragma once
// The list/watch loop of a watch cache (informer), independent of the object type:
// paged LIST, then WATCH from its resourceVersion with bookmarks and a randomized timeout;
// relist on 410 Gone (HTTP 410 or an ERROR event with code 410); backoff 0.8 s doubling to
// 30 s, reset after a healthy period. Objects go to a Sink (see cache.hpp for the typed store).
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kube/client.hpp"
#include "kube/rate.hpp"
#include "kube/resource.hpp"

namespace aad::http {
class Stream;
}

namespace aad::kube {

struct InformerOptions {
  std::string ns;  // empty: all namespaces (or cluster-scoped)
  std::string label_selector;
  std::string field_selector;
  int page_size = 500;
  std::chrono::seconds min_watch_timeout{300};  // timeoutSeconds is random in [min, max]
  std::chrono::seconds max_watch_timeout{600};
  BackoffOptions backoff;  // 0.8 s doubling to 30 s, reset after 2 min without failure
};

class InformerSink {
 public:
  virtual ~InformerSink() = default;
  // The full state after a (re)list.
  virtual void replace(std::vector<boost::json::object> items) = 0;
  // type: ADDED, MODIFIED or DELETED.
  virtual void apply(const std::string& type, boost::json::object object) = 0;
};

class ListWatch {
 public:
  ListWatch(Client& client, Resource resource, InformerOptions options, InformerSink& sink);
  ~ListWatch();
  ListWatch(const ListWatch&) = delete;
  ListWatch& operator=(const ListWatch&) = delete;

  // Runs until stop(). Never throws for API errors (they are logged and retried).
  boost::asio::awaitable<void> run();
  void stop();

  bool synced() const { return synced_; }
  bool stopped() const { return stopped_; }
  const std::string& resource_version() const { return rv_; }
  const Resource& resource() const { return resource_; }

  // Counters for tests and metrics.
  std::size_t lists() const { return lists_; }
  std::size_t watches() const { return watches_; }
  std::size_t gone() const { return gone_; }       // 410s seen
  std::size_t bookmarks() const { return bookmarks_; }
  std::size_t failures() const { return failures_; }

  // Called (after the sink) whenever the sink changed or synced() flipped.
  std::function<void()> on_change;

 private:
  boost::asio::awaitable<bool> list();
  boost::asio::awaitable<void> watch_once();
  boost::asio::awaitable<void> sleep(std::chrono::milliseconds d);
  int watch_timeout();

  Client& client_;
  Resource resource_;
  InformerOptions options_;
  InformerSink& sink_;
  Backoff backoff_;
  std::string rv_;
  bool synced_ = false, stopped_ = false, need_list_ = true;
  std::size_t lists_ = 0, watches_ = 0, gone_ = 0, bookmarks_ = 0, failures_ = 0;
  http::Stream* stream_ = nullptr;
  struct Timer;
  std::unique_ptr<Timer> timer_;
  unsigned seed_;
};

}  // namespace aad::kube
