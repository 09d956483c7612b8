#include "identity/nmi/caller.hpp"

#include <algorithm>
#include <boost/asio/this_coro.hpp>
#include <fmt/format.h>

#include "identity/nmi/cancelled.hpp"

namespace aad::identity::nmi {

using namespace std::chrono;

bool can_call(const kube::Pod& pod) {
  return !pod.host_network && pod.phase != "Succeeded" && pod.phase != "Failed";
}

CallerResult match_caller(const std::vector<Shared<kube::Pod>>& candidates, const std::string& ip) {
  std::vector<Shared<kube::Pod>> live;
  for (const auto& p : candidates) {
    if (!p || !can_call(*p)) continue;
    bool has_ip = p->pod_ip == ip || std::find(p->pod_ips.begin(), p->pod_ips.end(), ip) != p->pod_ips.end();
    if (has_ip) live.push_back(p);
  }
  if (live.size() == 1) return live.front();
  if (live.empty())
    return CallerError{CallerError::Kind::not_found, fmt::format("no pod found on this node with IP {}", ip)};
  std::vector<std::string> names;
  for (const auto& p : live) names.push_back(p->key());
  std::sort(names.begin(), names.end());
  return CallerError{CallerError::Kind::ambiguous,
                     fmt::format("{} running pods claim IP {}: {}", live.size(), ip, fmt::join(names, ", "))};
}

boost::asio::awaitable<CallerResult> find_caller(NodeState& state, const std::string& ip, milliseconds wait) {
  auto deadline = steady_clock::now() + wait;
  for (;;) {
    auto generation = state.changed().generation();
    auto found = match_caller(state.pods_with_ip(ip), ip);
    if (found || found.error().kind == CallerError::Kind::ambiguous) co_return found;
    auto left = duration_cast<milliseconds>(deadline - steady_clock::now());
    if (left.count() <= 0) co_return found;
    bool changed = co_await state.changed().wait_since(generation, left);
    (void)changed;  // re-checked either way; the deadline ends the loop
    co_await throw_if_cancelled();
  }
}

std::string caller_ip(const boost::asio::ip::address& peer) {
  if (peer.is_v6() && peer.to_v6().is_v4_mapped())
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, peer.to_v6()).to_string();
  return peer.to_string();
}

}  // namespace aad::identity::nmi
