#pragma once
// The Kubernetes REST client: generic verbs on raw JSON objects (typed wrappers in typed.hpp),
// client-side rate limit, retries on 429/5xx honouring Retry-After, bearer-token rotation, and
// streaming watches. Single-threaded: use it from coroutines on one io_context.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kube/config.hpp"
#include "kube/error.hpp"
#include "kube/resource.hpp"

namespace aad::http {
class Stream;
}

namespace aad::kube {

struct ClientOptions {
  double qps = 5;       // the original's --clientQps default
  int burst = 10;
  std::string user_agent;         // empty: "aad-pod-identity/<version>"
  std::string user_agent_suffix;  // the original's --custom-user-agent, appended after a space
  std::chrono::milliseconds timeout{30000};       // per attempt
  int max_retries = 4;                            // on 429/5xx/connection failure
  std::chrono::milliseconds retry_initial{250};   // doubling, without Retry-After
  std::chrono::milliseconds retry_max{10000};     // cap of any single wait, Retry-After included
  std::chrono::milliseconds token_reload{60000};  // re-read token_file this often
};

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int limit = 500;  // page size; 0: no paging
  std::string continue_token;
  std::string resource_version;
  std::string resource_version_match;
};

struct ObjectList {
  std::vector<boost::json::object> items;
  std::string resource_version;
  std::string continue_token;  // only for a single page
};

struct WatchOptions {
  std::string label_selector;
  std::string field_selector;
  std::string resource_version;
  bool allow_bookmarks = true;
  int timeout_seconds = 300;  // server-side end of the watch
};

struct DeleteOptions {
  std::string uid;               // precondition: only this incarnation
  std::string resource_version;  // precondition: only this version
  std::optional<int> grace_period_seconds;  // 0: immediately (pods without a kubelet)
  std::string propagation_policy;           // Orphan, Background, Foreground
};
using Preconditions = DeleteOptions;

enum class PatchType { merge, json, strategic };

// Per-call overrides of ClientOptions (e.g. lease renewal: short timeout, no retries, not
// queued behind other requests in the rate limiter).
struct CallOptions {
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<int> max_retries;
  bool skip_rate_limit = false;
};

struct RawResponse {
  unsigned status = 0;
  std::string body;
};

class Client {
 public:
  // Throws ConfigError / std::runtime_error for an unusable TLS configuration.
  Client(boost::asio::any_io_executor executor, Config config, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const Config& config() const { return config_; }
  const std::string& user_agent() const { return user_agent_; }
  boost::asio::any_io_executor executor() const { return executor_; }

  // Rate-limited, retried request. 2xx: the body; other statuses: Error from the Status object.
  boost::asio::awaitable<Result<RawResponse>> request(std::string method, std::string path_and_query,
                                                      std::string body = {},
                                                      std::string content_type = "application/json",
                                                      CallOptions call = {});

  boost::asio::awaitable<Result<boost::json::object>> get(const Resource& r, std::string ns, std::string name);
  // One page (options.limit/continue_token).
  boost::asio::awaitable<Result<ObjectList>> list_page(const Resource& r, std::string ns, ListOptions options);
  // All pages; resource_version of the list. ns empty: all namespaces.
  boost::asio::awaitable<Result<ObjectList>> list(const Resource& r, std::string ns, ListOptions options = {});
  boost::asio::awaitable<Result<boost::json::object>> create(const Resource& r, std::string ns,
                                                             boost::json::object obj);
  // PUT; obj carries metadata.resourceVersion for optimistic concurrency (409 -> Error::conflict()).
  boost::asio::awaitable<Result<boost::json::object>> update(const Resource& r, boost::json::object obj,
                                                             std::string subresource = {});
  boost::asio::awaitable<Result<boost::json::object>> patch(const Resource& r, std::string ns, std::string name,
                                                            PatchType type, std::string body,
                                                            std::string subresource = {});
  boost::asio::awaitable<Result<void>> remove(const Resource& r, std::string ns, std::string name,
                                              DeleteOptions options = {});

  // Opens a watch stream (status checked). Read lines with read_line(); decode with parse_watch_event.
  boost::asio::awaitable<Result<std::unique_ptr<http::Stream>>> watch(const Resource& r, std::string ns,
                                                                       WatchOptions options);

  std::string bearer_token();  // current token (re-read from token_file when due)
  std::size_t requests_sent() const { return sent_; }

 private:
  boost::asio::any_io_executor executor_;
  Config config_;
  ClientOptions options_;
  std::string user_agent_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::size_t sent_ = 0;
};

struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
  boost::json::object object;
};
Result<WatchEvent> parse_watch_event(const std::string& line);

std::string query_string(const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace aad::kube
