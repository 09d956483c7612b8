#pragma once
// Who is calling: the pod on this node that owns the connection's source address.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "identity/nmi/node_state.hpp"

namespace aad::identity::nmi {

struct CallerError {
  enum class Kind { not_found, ambiguous } kind;
  std::string description;
};

using CallerResult = boost::system::result<Shared<kube::Pod>, CallerError>;

// True for a pod that can be the source of a redirected request: not on the host network
// (its traffic never passes PREROUTING and its IP is the node's) and not terminated.
bool can_call(const kube::Pod& pod);

// The one live pod among `candidates` claiming `ip`; two live pods with one IP is an error,
// never a guess.
CallerResult match_caller(const std::vector<Shared<kube::Pod>>& candidates, const std::string& ip);

// match_caller over the node state; a pod not cached yet is waited for (woken by the cache,
// not polled) for at most `wait`.
boost::asio::awaitable<CallerResult> find_caller(NodeState& state, const std::string& ip,
                                                 std::chrono::milliseconds wait);

// "10.0.0.7", "fd00::7"; an IPv4-mapped IPv6 peer as its IPv4 form.
std::string caller_ip(const boost::asio::ip::address& peer);

}  // namespace aad::identity::nmi
