#include "kube/events.hpp"

#include <fmt/format.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/json/serialize.hpp>

#include "core/log.hpp"

namespace aad::kube {

namespace asio = boost::asio;
namespace json = boost::json;

EventRecorder::EventRecorder(Client& client, EventRecorderOptions options)
    : client_(client), options_(std::move(options)) {}

EventRecorder::~EventRecorder() = default;

void EventRecorder::record(const ObjectReference& obj, const std::string& type, const std::string& reason,
                           const std::string& message) {
  asio::co_spawn(
      client_.executor(),
      [this, obj, type, reason, message]() -> asio::awaitable<void> {
        auto r = co_await record_async(obj, type, reason, message);
        if (!r && r.error().reason != "SpamLimited")
          log::warning("could not record event", {{"object", obj.ns + "/" + obj.name}, {"reason", reason},
                                                  {"error", r.error().describe()}});
      },
      asio::detached);
}

asio::awaitable<Result<Event>> EventRecorder::record_async(ObjectReference obj, std::string type, std::string reason,
                                                           std::string message) {
  auto now = std::chrono::steady_clock::now();
  auto wall = std::chrono::system_clock::now();
  std::string object_key = fmt::format("{}/{}/{}/{}", obj.kind, obj.ns, obj.name, obj.uid);
  auto bucket = spam_.try_emplace(object_key, options_.spam_qps, options_.spam_burst, now).first;
  if (!bucket->second.try_take(now)) {
    ++dropped_;
    Error e;
    e.reason = "SpamLimited";
    e.message = "too many events for " + object_key;
    co_return e;
  }
  std::string event_ns = obj.ns.empty() ? "default" : obj.ns;
  std::string agg_key = fmt::format("{}|{}|{}|{}", object_key, type, reason, message);
  auto it = seen_.find(agg_key);
  if (it != seen_.end() && now - it->second.last < options_.aggregate_window) {
    auto& s = it->second;
    json::object patch{{"count", s.count + 1}, {"lastTimestamp", format_time(wall)}};
    auto r = co_await client_.patch(resources::events, s.ns, s.name, PatchType::merge, json::serialize(patch));
    if (r) {
      s.count += 1;
      s.last = now;
      ++patched_;
      co_return Event::decode(*r);
    }
    if (!r.error().not_found()) co_return r.error();
    seen_.erase(it);  // expired on the server: start a new Event
  }
  Event e;
  e.meta.ns = event_ns;
  e.meta.name = fmt::format("{}.{:x}", obj.name.empty() ? "event" : obj.name,
                            std::chrono::duration_cast<std::chrono::nanoseconds>(wall.time_since_epoch()).count());
  e.involved_object = obj;
  e.type = type;
  e.reason = reason;
  e.message = message;
  e.source_component = options_.component;
  e.source_host = options_.host;
  e.reporting_component = options_.component;
  e.reporting_instance = options_.host;
  e.first_timestamp = e.last_timestamp = format_time(wall);
  e.count = 1;
  auto r = co_await client_.create(resources::events, event_ns, e.encode());
  if (!r) co_return r.error();
  ++created_;
  if (seen_.size() >= options_.max_tracked) {
    auto oldest = seen_.begin();
    for (auto i = seen_.begin(); i != seen_.end(); ++i)
      if (i->second.last < oldest->second.last) oldest = i;
    seen_.erase(oldest);
  }
  seen_[agg_key] = Seen{event_ns, e.meta.name, 1, now};
  co_return Event::decode(*r);
}

}  // namespace aad::kube
