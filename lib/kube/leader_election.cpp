#include "kube/leader_election.hpp"

#include <cstdint>
#include <fmt/format.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <algorithm>
#include <random>
#include <stdexcept>

#include "core/log.hpp"

namespace aad::kube {

namespace asio = boost::asio;
namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;

struct LeaderElector::Timer {
  asio::steady_timer timer;
  explicit Timer(asio::any_io_executor ex) : timer(ex) {}
};

LeaderElector::LeaderElector(Client& client, LeaderElectionConfig config)
    : client_(client), config_(std::move(config)), timer_(std::make_unique<Timer>(client.executor())) {
  if (config_.ns.empty() || config_.name.empty() || config_.identity.empty())
    throw std::invalid_argument("leader election: namespace, name and identity are required");
  if (!(config_.lease_duration > config_.renew_deadline && config_.renew_deadline > config_.retry_period &&
        config_.retry_period.count() > 0))
    throw std::invalid_argument("leader election: need lease duration > renew deadline > retry period > 0");
}

LeaderElector::~LeaderElector() = default;

std::string LeaderElector::default_identity() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::random_device rd;
  return fmt::format("{}_{:08x}{:08x}", host, rd(), rd());
}

void LeaderElector::stop() {
  stopped_ = true;
  timer_->timer.cancel();
}

asio::awaitable<void> LeaderElector::sleep(std::chrono::milliseconds d) {
  if (stopped_) co_return;
  timer_->timer.expires_after(d);
  co_await timer_->timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

CallOptions LeaderElector::call_options() const {
  CallOptions c;
  c.timeout = std::max(std::chrono::milliseconds(1000), config_.renew_deadline / 2);
  if (attempt_deadline_) {  // while leading, an attempt never outlives the renew deadline
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*attempt_deadline_ - SteadyClock::now());
    c.timeout = std::clamp(left, std::chrono::milliseconds(50), config_.renew_deadline / 2);
  }
  c.max_retries = 0;
  c.skip_rate_limit = true;
  return c;
}

asio::awaitable<LeaderElector::Attempt> LeaderElector::try_acquire_or_renew(std::string& detail) {
  const auto& res = resources::leases;
  auto now_wall = std::chrono::system_clock::now();
  auto now = SteadyClock::now();
  auto path = res.path(config_.ns, config_.name);
  auto got = co_await client_.request("GET", path, {}, "application/json", call_options());
  Lease lease;
  bool exists = true;
  if (!got) {
    if (!got.error().not_found()) {
      detail = "get lease: " + got.error().describe();
      co_return Attempt::failed;
    }
    exists = false;
  } else {
    boost::system::error_code ec;
    auto v = json::parse(got->body, ec);
    if (ec || !v.is_object()) {
      detail = "lease is not JSON";
      co_return Attempt::failed;
    }
    auto l = Lease::decode(v.get_object());
    if (!l) {
      detail = l.error().describe();
      co_return Attempt::failed;
    }
    lease = std::move(*l);
    std::string holder = lease.holder_identity.value_or("");
    std::string record = holder + "|" + lease.renew_time.value_or("") + "|" + lease.acquire_time.value_or("");
    if (record != observed_record_) {
      observed_record_ = record;
      observed_time_ = now;
    }
    if (holder != observed_holder_) {
      observed_holder_ = holder;
      if (on_new_leader) on_new_leader(holder);
    }
    auto duration = std::chrono::seconds(lease.lease_duration_seconds.value_or(0));
    if (!holder.empty() && holder != config_.identity && observed_time_ + duration > now) {
      detail = "held by " + holder;
      co_return Attempt::held_by_other;
    }
  }

  Lease next = lease;
  bool was_mine = exists && lease.holder_identity.value_or("") == config_.identity;
  next.meta.name = config_.name;
  next.meta.ns = config_.ns;
  next.holder_identity = config_.identity;
  next.lease_duration_seconds =
      static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(config_.lease_duration).count());
  next.renew_time = format_micro_time(now_wall);
  if (!was_mine) {
    next.acquire_time = format_micro_time(now_wall);
    if (exists) {
      int previous = lease.lease_transitions.value_or(0);
      next.lease_transitions = previous >= INT32_MAX || previous < 0 ? 0 : previous + 1;  // no overflow
    }
    else next.lease_transitions = 0;
  }
  Result<RawResponse> put = Error{};
  if (exists) put = co_await client_.request("PUT", path, json::serialize(next.encode()), "application/json", call_options());
  else put = co_await client_.request("POST", res.path(config_.ns), json::serialize(next.encode()), "application/json", call_options());
  if (!put) {
    detail = (exists ? "update lease: " : "create lease: ") + put.error().describe();
    co_return (put.error().conflict() || put.error().already_exists()) ? Attempt::held_by_other : Attempt::failed;
  }
  observed_record_ = config_.identity + "|" + *next.renew_time + "|" + next.acquire_time.value_or("");
  observed_time_ = now;
  if (observed_holder_ != config_.identity) {
    observed_holder_ = config_.identity;
    if (on_new_leader) on_new_leader(config_.identity);
  }
  boost::system::error_code ec;
  auto v = json::parse(put->body, ec);
  if (!ec && v.is_object())
    if (auto l = Lease::decode(v.get_object())) observed_ = std::move(*l);
  co_return Attempt::acquired;
}

asio::awaitable<void> LeaderElector::release() {
  // Clear the holder only if it is still ours (PUT with our last resourceVersion).
  if (!observed_ || observed_->holder_identity.value_or("") != config_.identity) co_return;
  Lease next = *observed_;
  next.holder_identity = std::string();
  next.lease_duration_seconds = 1;
  auto now = format_micro_time(std::chrono::system_clock::now());
  next.renew_time = now;
  next.acquire_time = now;
  auto r = co_await client_.request("PUT", resources::leases.path(config_.ns, config_.name),
                                    json::serialize(next.encode()), "application/json", call_options());
  if (!r) log::warning("could not release the leader lease", {{"lease", config_.ns + "/" + config_.name},
                                                                {"error", r.error().describe()}});
  else log::info("released the leader lease", {{"lease", config_.ns + "/" + config_.name}});
}

asio::awaitable<LeadershipEnd> LeaderElector::run() {
  std::string detail;
  // Campaign.
  log::info("attempting to acquire the leader lease", {{"lease", config_.ns + "/" + config_.name},
                                                       {"identity", config_.identity}});
  for (;;) {
    if (stopped_) co_return LeadershipEnd::stopped;
    auto a = co_await try_acquire_or_renew(detail);
    if (stopped_) {
      if (a == Attempt::acquired && config_.release_on_stop) co_await release();
      co_return LeadershipEnd::stopped;
    }
    if (a == Attempt::acquired) break;
    if (a == Attempt::failed) log::warning("leader lease attempt failed", {{"error", detail}});
    co_await sleep(config_.retry_period);
  }
  leading_ = true;
  log::info("became leader", {{"lease", config_.ns + "/" + config_.name}, {"identity", config_.identity}});
  if (on_started_leading) on_started_leading();

  // Lead: renew every retry period; give up after renew_deadline without a successful renewal.
  auto last_renew = SteadyClock::now();
  // The last error the API server (or the network) gave us, not one our own deadline caused:
  // that is what an operator needs to read when leadership is lost.
  std::string last_error;
  LeadershipEnd end = LeadershipEnd::stopped;
  for (;;) {
    co_await sleep(config_.retry_period);
    if (stopped_) break;
    const auto deadline = last_renew + config_.renew_deadline;
    if (!last_error.empty() && SteadyClock::now() >= deadline) {  // no time left for another attempt
      end = LeadershipEnd::lost;
      detail = "could not renew within the renew deadline: " + last_error;
      break;
    }
    attempt_deadline_ = deadline;
    auto a = co_await try_acquire_or_renew(detail);
    attempt_deadline_.reset();
    if (stopped_) break;
    if (a == Attempt::acquired && SteadyClock::now() - last_renew < config_.renew_deadline) {
      last_renew = SteadyClock::now();
      last_error.clear();
      continue;
    }
    if (a == Attempt::acquired) {  // renewed, but too late: others may have seen the lease expire
      end = LeadershipEnd::lost;
      detail = "renewal completed after the renew deadline";
      break;
    }
    if (a == Attempt::held_by_other) {
      end = LeadershipEnd::lost;
      detail = "lease taken over: " + detail;
      break;
    }
    log::warning("failed to renew the leader lease", {{"error", detail}});
    const bool cut_by_deadline = SteadyClock::now() >= deadline;
    if (!cut_by_deadline || last_error.empty()) last_error = detail;
    if (cut_by_deadline) {
      end = LeadershipEnd::lost;
      detail = "could not renew within the renew deadline: " + last_error;
      break;
    }
  }
  leading_ = false;
  if (end == LeadershipEnd::stopped) {
    detail = "stopped";
    if (config_.release_on_stop) co_await release();
  } else {
    log::error("lost the leader lease", detail, {{"lease", config_.ns + "/" + config_.name}});
  }
  if (on_stopped_leading) on_stopped_leading(end, detail);
  co_return end;
}

}  // namespace aad::kube
