#pragma once
// Event recorder: Normal/Warning core/v1 Events on an object, with client-side aggregation
// (the same object + type + reason + message again -> PATCH count and lastTimestamp of the
// existing Event) and a spam limit (token bucket per object, client-go's 25 burst, 1 per 5 min).
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "kube/client.hpp"
#include "kube/models.hpp"
#include "kube/rate.hpp"

namespace aad::kube {

struct EventRecorderOptions {
  std::string component;  // source.component / reportingComponent, e.g. "aad-pod-identity-mic"
  std::string host;       // source.host (node name), optional
  double spam_qps = 1.0 / 300;
  int spam_burst = 25;
  std::chrono::minutes aggregate_window{10};  // repeats after this create a new Event
  std::size_t max_tracked = 4096;             // aggregation entries kept (oldest dropped)
};

class EventRecorder {
 public:
  EventRecorder(Client& client, EventRecorderOptions options);
  ~EventRecorder();

  // Fire and forget, on the client's executor (errors are logged). The recorder and the
  // client must outlive pending recordings.
  void record(const ObjectReference& obj, const std::string& type, const std::string& reason,
              const std::string& message);
  void normal(const ObjectReference& obj, const std::string& reason, const std::string& message) {
    record(obj, "Normal", reason, message);
  }
  void warning(const ObjectReference& obj, const std::string& reason, const std::string& message) {
    record(obj, "Warning", reason, message);
  }
  // The same, awaited: the Event as written; Error reason "SpamLimited" when dropped.
  boost::asio::awaitable<Result<Event>> record_async(ObjectReference obj, std::string type, std::string reason,
                                                     std::string message);

  std::size_t created() const { return created_; }
  std::size_t patched() const { return patched_; }
  std::size_t dropped() const { return dropped_; }

  template <typename T>
  static ObjectReference reference(const T& obj) {
    return ObjectReference{T::resource().api_version(), T::resource().kind, obj.meta.ns, obj.meta.name,
                           obj.meta.uid, obj.meta.resource_version, {}};
  }

 private:
  struct Seen {
    std::string ns, name;  // the Event
    int count = 0;
    std::chrono::steady_clock::time_point last;
  };
  Client& client_;
  EventRecorderOptions options_;
  std::map<std::string, Seen> seen_;
  std::map<std::string, TokenBucket> spam_;
  std::size_t created_ = 0, patched_ = 0, dropped_ = 0;
};

}  // namespace aad::kube
