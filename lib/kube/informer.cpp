#include "kube/informer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <random>

#include "core/http_stream.hpp"
#include "core/log.hpp"
#include "kube/models.hpp"

namespace aad::kube {

namespace asio = boost::asio;
namespace json = boost::json;

struct ListWatch::Timer {
  asio::steady_timer timer;
  explicit Timer(asio::any_io_executor ex) : timer(ex) {}
};

ListWatch::ListWatch(Client& client, Resource resource, InformerOptions options, InformerSink& sink)
    : client_(client), resource_(std::move(resource)), options_(std::move(options)), sink_(sink),
      backoff_(options_.backoff), timer_(std::make_unique<Timer>(client.executor())),
      seed_(std::random_device{}()) {}

ListWatch::~ListWatch() = default;

void ListWatch::stop() {
  stopped_ = true;
  timer_->timer.cancel();
  if (stream_) stream_->cancel();
}

int ListWatch::watch_timeout() {
  std::minstd_rand rng(seed_++);
  auto lo = options_.min_watch_timeout.count(), hi = std::max(lo, options_.max_watch_timeout.count());
  return static_cast<int>(std::uniform_int_distribution<long long>(lo, hi)(rng));
}

asio::awaitable<void> ListWatch::sleep(std::chrono::milliseconds d) {
  if (stopped_) co_return;
  timer_->timer.expires_after(d);
  co_await timer_->timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<bool> ListWatch::list() {
  ListOptions lo;
  lo.label_selector = options_.label_selector;
  lo.field_selector = options_.field_selector;
  lo.limit = options_.page_size;
  ++lists_;
  auto res = co_await client_.list(resource_, options_.ns, lo);
  if (stopped_) co_return false;
  if (!res) {
    ++failures_;
    log::warning("list failed", {{"resource", resource_.resource}, {"error", res.error().describe()}});
    co_return false;
  }
  rv_ = res->resource_version;
  sink_.replace(std::move(res->items));
  need_list_ = false;
  synced_ = true;
  if (on_change) on_change();
  co_return true;
}

asio::awaitable<void> ListWatch::watch_once() {
  WatchOptions wo;
  wo.label_selector = options_.label_selector;
  wo.field_selector = options_.field_selector;
  wo.resource_version = rv_;
  wo.allow_bookmarks = true;
  wo.timeout_seconds = watch_timeout();
  ++watches_;
  auto started = Clock::now();
  auto opened = co_await client_.watch(resource_, options_.ns, wo);
  if (stopped_) co_return;
  if (!opened) {
    if (opened.error().gone()) {
      ++gone_;
      need_list_ = true;
      log::info("watch resourceVersion expired; relisting", {{"resource", resource_.resource}});
      co_return;
    }
    ++failures_;
    log::warning("watch failed", {{"resource", resource_.resource}, {"error", opened.error().describe()}});
    co_await sleep(backoff_.next(Clock::now()));
    co_return;
  }
  std::unique_ptr<http::Stream> stream = std::move(*opened);
  stream_ = stream.get();
  struct Clear {
    http::Stream*& s;
    ~Clear() { s = nullptr; }
  } clear{stream_};
  for (;;) {
    auto line = co_await stream->read_line();
    if (stopped_) co_return;
    if (!line) {
      if (line.error() == boost::beast::http::error::end_of_stream) {
        // timeoutSeconds reached; a watch that ends at once is a failure in disguise.
        if (Clock::now() - started < std::chrono::seconds(1)) co_await sleep(backoff_.next(Clock::now()));
        co_return;
      }
      ++failures_;
      log::warning("watch stream broke", {{"resource", resource_.resource}, {"error", line.error().message()}});
      co_await sleep(backoff_.next(Clock::now()));
      co_return;
    }
    if (line->empty()) continue;
    auto ev = parse_watch_event(*line);
    if (!ev) {
      ++failures_;
      log::warning("undecodable watch event", {{"resource", resource_.resource}, {"error", ev.error().describe()}});
      co_await sleep(backoff_.next(Clock::now()));
      co_return;
    }
    if (ev->type == "ERROR") {
      auto err = Error::from_response(0, json::serialize(ev->object));
      if (err.code == 410 || err.gone()) {
        ++gone_;
        need_list_ = true;
        log::info("watch expired (410); relisting", {{"resource", resource_.resource}});
        co_return;
      }
      ++failures_;
      log::warning("watch error event", {{"resource", resource_.resource}, {"error", err.describe()}});
      co_await sleep(backoff_.next(Clock::now()));
      co_return;
    }
    auto rv = object_resource_version(ev->object);
    if (ev->type == "BOOKMARK") {
      ++bookmarks_;
      if (!rv.empty()) rv_ = rv;
      continue;
    }
    if (ev->type != "ADDED" && ev->type != "MODIFIED" && ev->type != "DELETED") continue;
    if (!rv.empty()) rv_ = rv;
    if (!ev->object.contains("apiVersion")) ev->object["apiVersion"] = resource_.api_version();
    if (!ev->object.contains("kind")) ev->object["kind"] = resource_.kind;
    sink_.apply(ev->type, std::move(ev->object));
    if (on_change) on_change();
  }
}

asio::awaitable<void> ListWatch::run() {
  while (!stopped_) {
    if (need_list_) {
      bool listed = co_await list();  // not inside the condition: GCC 12 miscompiles that
      if (!listed) {
        co_await sleep(backoff_.next(Clock::now()));
        continue;
      }
    }
    co_await watch_once();
  }
}

}  // namespace aad::kube
