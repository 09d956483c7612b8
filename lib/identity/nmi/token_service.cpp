#include "identity/nmi/token_service.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/system/system_error.hpp>
#include <fmt/format.h>
#include <optional>

#include <boost/asio/this_coro.hpp>
#include <boost/json/serialize.hpp>

#include "core/ascii.hpp"
#include "core/log.hpp"
#include "kube/notifier.hpp"

namespace aad::identity::nmi {

using namespace std::chrono;

namespace {

// Length-prefixed fields: no value can forge another key.
void field(std::string& key, std::string_view v) { key += fmt::format("{}:{};", v.size(), v); }

// What an entry holds in memory, near enough to bound the cache by (strings plus bookkeeping).
std::size_t entry_bytes(const std::string& key, const std::vector<azure::Token>& tokens) {
  constexpr std::size_t kOverhead = 256;  // map node, list node, Entry, Token members
  std::size_t n = kOverhead + 2 * key.size();  // the map key and its copy in the LRU list
  for (const auto& t : tokens)
    n += sizeof(azure::Token) + t.access_token.size() + t.token_type.size() + t.resource.size() +
         t.client_id.size() + boost::json::serialize(t.raw).size();  // raw repeats the token
  return n;
}

}  // namespace

std::string token_cache_key(const kube::AzureIdentity& id, const std::string& resource) {
  std::string key;
  field(key, std::to_string(id.type));
  field(key, to_lower(id.client_id));
  if (id.type == 0) {
    field(key, to_lower(id.resource_id));
  } else {
    field(key, to_lower(id.tenant_id));
    field(key, id.ad_endpoint);
    field(key, id.client_password ? id.client_password->ns + "/" + id.client_password->name : "");
    if (id.type == 1)
      for (const auto& t : id.auxiliary_tenant_ids) field(key, to_lower(t));
  }
  field(key, resource);
  return key;
}

struct TokenService::Flight {
  std::string key;
  kube::AzureIdentity identity;
  std::string resource;
  azure::Cancellation cancel;
  int waiters = 0;
  bool done = false;
  std::optional<azure::Result<std::vector<azure::Token>>> result;
  kube::ChangeNotifier finished;
};

TokenService::TokenService(boost::asio::any_io_executor executor, TokenFetcher& fetcher, azure::Clock& clock,
                           TokenServiceOptions options)
    : executor_(std::move(executor)), fetcher_(fetcher), clock_(clock), options_(options),
      alive_(std::make_shared<bool>(true)) {}

TokenService::~TokenService() {
  *alive_ = false;
  for (auto& [key, f] : flights_) f->cancel.cancel();
}

boost::asio::awaitable<azure::Result<std::vector<azure::Token>>> TokenService::get(
    const kube::AzureIdentity& identity, const std::string& resource) {
  // Read before anything can be cancelled: once cancelled, a co_await of a nested awaitable throws.
  auto cancellation = co_await boost::asio::this_coro::cancellation_state;
  auto key = token_cache_key(identity, resource);
  if (options_.enabled) {
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      if (clock_.now() < it->second.fresh_until) {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
        ++stats_.hits;
        if (options_.on_lookup) options_.on_lookup("hit");
        co_return it->second.tokens;
      }
      erase(it);
    }
  }
  std::shared_ptr<Flight> flight;
  if (options_.enabled) {
    auto it = flights_.find(key);
    if (it != flights_.end()) {
      flight = it->second;
      ++stats_.shared;
      if (options_.on_lookup) options_.on_lookup("shared");
    }
  }
  if (!flight) {
    ++stats_.misses;
    if (options_.on_lookup) options_.on_lookup("miss");
    flight = std::make_shared<Flight>();
    // Without the cache nothing is shared: a private key per request.
    flight->key = options_.enabled ? key : fmt::format("{}#{}", key, next_private_++);
    flight->identity = identity;
    flight->resource = resource;
    flights_[flight->key] = flight;
    boost::asio::co_spawn(executor_, run_flight(flight), boost::asio::detached);
  }
  ++flight->waiters;
  while (!flight->done) {
    auto generation = flight->finished.generation();
    bool cancelled = false;
    try {
      bool changed = co_await flight->finished.wait_since(generation, hours(1));
      (void)changed;
    } catch (const boost::system::system_error&) {
      cancelled = true;
    }
    if (flight->done) break;
    if (!cancelled) cancelled = cancellation.cancelled() != boost::asio::cancellation_type::none;
    if (cancelled) {
      // This request's client is gone. The fetch goes on for the others, or stops if none is left.
      if (--flight->waiters == 0) {
        auto it = flights_.find(flight->key);
        if (it != flights_.end() && it->second == flight) flights_.erase(it);
        ++stats_.cancelled_fetches;
        flight->cancel.cancel();
      }
      throw boost::system::system_error(boost::asio::error::operation_aborted);
    }
  }
  --flight->waiters;
  co_return *flight->result;
}

boost::asio::awaitable<void> TokenService::run_flight(std::shared_ptr<Flight> flight) {
  auto alive = alive_;
  ++stats_.fetches;
  azure::Result<std::vector<azure::Token>> r =
      azure::local_error(azure::Error::Kind::transport, "internal_error", "token fetch did not complete");
  try {
    r = co_await fetcher_.fetch(flight->identity, flight->resource, flight->cancel);
  } catch (const std::exception& e) {
    r = azure::local_error(azure::Error::Kind::transport, "internal_error", e.what());
  }
  if (!*alive) co_return;
  flight->result = std::move(r);
  flight->done = true;
  auto it = flights_.find(flight->key);
  if (it != flights_.end() && it->second == flight) flights_.erase(it);
  if (options_.enabled && *flight->result && !flight->result->value().empty() && !flight->cancel.cancelled()) {
    auto now = clock_.now();
    auto earliest = flight->result->value().front().expires_on;
    for (const auto& t : flight->result->value()) earliest = std::min(earliest, t.expires_on);
    auto fresh_until = earliest - options_.margin;
    if (fresh_until > now) {
      drop_expired(now);
      store(flight->key, flight->result->value(), fresh_until);
    }
  }
  flight->finished.notify();
}

void TokenService::store(const std::string& key, std::vector<azure::Token> tokens, azure::SystemTime fresh_until) {
  if (auto old = cache_.find(key); old != cache_.end()) erase(old);
  auto bytes = entry_bytes(key, tokens);
  if (bytes > options_.max_bytes || options_.max_entries == 0) return;  // served, never cached
  while (!lru_.empty() && (cache_.size() + 1 > options_.max_entries || bytes_ + bytes > options_.max_bytes)) {
    auto victim = cache_.find(lru_.back());
    erase(victim);
    ++stats_.evictions;
    if (options_.on_evict) options_.on_evict();
    // Never the key: it holds the resource and client ID a caller asked for.
    log::debug(2, "token cache full: evicted the least recently used token",
               {{"entries", cache_.size()}, {"bytes", bytes_}, {"max_entries", options_.max_entries},
                {"max_bytes", options_.max_bytes}});
  }
  lru_.push_front(key);
  cache_.emplace(key, Entry{std::move(tokens), fresh_until, bytes, lru_.begin()});
  bytes_ += bytes;
}

TokenService::Cache::iterator TokenService::erase(Cache::iterator it) {
  bytes_ -= it->second.bytes;
  lru_.erase(it->second.lru);
  return cache_.erase(it);
}

void TokenService::clear() {
  cache_.clear();
  lru_.clear();
  bytes_ = 0;
}

void TokenService::drop_expired(azure::SystemTime now) {
  for (auto it = cache_.begin(); it != cache_.end();) it = now >= it->second.fresh_until ? erase(it) : std::next(it);
}

}  // namespace aad::identity::nmi
