#pragma once
// Tokens per identity, cached and fetched single-flight.
// - The cache key is the identity's upstream credential (type, client/resource id, tenant,
//   authority, secret reference, auxiliary tenants) plus the resource: never the pod or its IP,
//   so a pod only ever receives tokens of the identity it was resolved to.
// - A cached token is served until `margin` before its earliest expiry.
// - Concurrent requests for one key share one upstream fetch. The fetch runs on its own and is
//   cancelled only when every request waiting for it has gone (client disconnects).
// - `enabled = false` (--token-cache=false): every request fetches (still cancellable).
// - The cache is bounded (entries and bytes): any pod can ask for endless distinct resources that
//   IMDS answers. Expired entries go first, then the least recently used. Only cached answers are
//   evicted; a fetch in flight and its waiters live outside the cache, so single-flight holds.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "azure/clock.hpp"
#include "identity/nmi/token_fetcher.hpp"

namespace aad::identity::nmi {

struct TokenServiceOptions {
  bool enabled = true;
  std::chrono::seconds margin{300};
  std::size_t max_entries = 1024;            // a usual token counts a few KB
  std::size_t max_bytes = 16 * 1024 * 1024;  // long invented resources meet this bound first
  std::function<void(std::string_view result)> on_lookup;  // "hit", "miss" or "shared" (metrics)
  std::function<void()> on_evict;                          // an unexpired entry made room (metrics)
};

// The key described above (exposed for tests).
std::string token_cache_key(const kube::AzureIdentity& identity, const std::string& resource);

class TokenService {
 public:
  TokenService(boost::asio::any_io_executor executor, TokenFetcher& fetcher, azure::Clock& clock,
               TokenServiceOptions options = {});
  ~TokenService();

  // Throws operation_aborted when the calling coroutine is cancelled.
  boost::asio::awaitable<azure::Result<std::vector<azure::Token>>> get(const kube::AzureIdentity& identity,
                                                                       const std::string& resource);

  struct Stats {
    std::uint64_t hits = 0, misses = 0, shared = 0, fetches = 0, cancelled_fetches = 0, evictions = 0;
  };
  const Stats& stats() const { return stats_; }
  std::size_t cached() const { return cache_.size(); }
  std::size_t cached_bytes() const { return bytes_; }
  void clear();

  struct Flight;

 private:
  boost::asio::awaitable<void> run_flight(std::shared_ptr<Flight> flight);
  struct Entry {
    std::vector<azure::Token> tokens;
    azure::SystemTime fresh_until;
    std::size_t bytes = 0;
    std::list<std::string>::iterator lru;  // its key's place in lru_
  };
  using Cache = std::map<std::string, Entry>;

  void store(const std::string& key, std::vector<azure::Token> tokens, azure::SystemTime fresh_until);
  void drop_expired(azure::SystemTime now);
  Cache::iterator erase(Cache::iterator it);

  boost::asio::any_io_executor executor_;
  TokenFetcher& fetcher_;
  azure::Clock& clock_;
  TokenServiceOptions options_;
  Cache cache_;
  std::list<std::string> lru_;  // cached keys, most recently used first
  std::size_t bytes_ = 0;
  std::map<std::string, std::shared_ptr<Flight>> flights_;
  std::uint64_t next_private_ = 0;
  Stats stats_;
  std::shared_ptr<bool> alive_;
};

}  // namespace aad::identity::nmi
