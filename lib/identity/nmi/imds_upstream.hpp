#pragma once
// IMDS as NMI forwards to it: every path NMI does not answer itself (and the token requests of
// excepted pods) goes upstream with its method, target, headers and body; the answer comes back
// with its status, headers and body. Nothing is added (IMDS refuses X-Forwarded-For).
#include <boost/asio/awaitable.hpp>
#include <string>

#include "core/http_client.hpp"
#include "core/http_message.hpp"

namespace aad::identity::nmi {

class Upstream {
 public:
  virtual ~Upstream() = default;
  // Never throws for upstream failures: an unreachable IMDS is a 500 with a JSON error.
  // `peer` ("ip:port" of the caller) is for log lines only.
  virtual boost::asio::awaitable<http::Response> forward(const http::Request& req, std::string_view peer) = 0;
};

class HttpUpstream final : public Upstream {
 public:
  // base_url: "http://169.254.169.254:80" (no trailing slash needed).
  HttpUpstream(http::Client& client, std::string base_url, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  boost::asio::awaitable<http::Response> forward(const http::Request& req, std::string_view peer) override;
  const std::string& host_port() const { return host_port_; }

 private:
  http::Client& client_;
  std::string base_url_;
  std::string host_port_;  // "169.254.169.254:80", for errors; worked out once
  std::chrono::milliseconds timeout_;
};

// Hop-by-hop and framing headers that are never copied between the two connections.
bool is_hop_by_hop(std::string_view header);

}  // namespace aad::identity::nmi
