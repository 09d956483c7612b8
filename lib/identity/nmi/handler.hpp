#pragma once
// NMI's HTTP handler on --nmi-port (behaviour reference 3.3-3.14): the token endpoint,
// /host/token, the instance-metadata block and the transparent proxy to IMDS.
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <string>

#include "azure/clock.hpp"
#include "core/http_server.hpp"
#include "identity/nmi/imds_limiter.hpp"
#include "identity/nmi/imds_upstream.hpp"
#include "identity/nmi/nmi_metrics.hpp"
#include "identity/nmi/resolver.hpp"
#include "identity/nmi/token_service.hpp"

namespace aad::identity::nmi {

struct HandlerOptions {
  bool metadata_header_required = true;
  bool block_instance_metadata = false;
  bool set_retry_after_header = false;  // 503 + Retry-After: 20 instead of 404 for "no identity"
  std::string mic_namespace = "default";
  std::chrono::milliseconds pod_wait{1500};  // for a caller whose pod is not cached yet
};

class Handler {
 public:
  Handler(NodeState& state, Resolver& resolver, TokenService& tokens, Upstream& imds, ImdsLimiter& limiter,
          azure::Clock& clock, NmiMetrics* metrics, HandlerOptions options);

  boost::asio::awaitable<http::Response> handle(http::Request& req, const http::RequestContext& ctx);
  // For http::Server.
  http::Handler as_http_handler();

  struct Outcome;

 private:
  boost::asio::awaitable<http::Response> token(const http::Request& req, const http::RequestContext& ctx,
                                               std::string_view query, Outcome& out);
  boost::asio::awaitable<http::Response> host_token(const http::Request& req, const http::RequestContext& ctx,
                                                    std::string_view query, Outcome& out);
  boost::asio::awaitable<http::Response> excepted_token(const http::Request& req, Outcome& out);
  boost::asio::awaitable<http::Response> proxy(const http::Request& req, std::string_view query, Outcome& out);
  // Resolution and token acquisition shared by both token routes.
  boost::asio::awaitable<http::Response> answer(const http::Request& req, const kube::Pod& pod,
                                                const std::string& resource, const IdentityRequest& wanted,
                                                bool host_shape, Outcome& out);

  NodeState& state_;
  Resolver& resolver_;
  TokenService& tokens_;
  Upstream& imds_;
  ImdsLimiter& limiter_;
  azure::Clock& clock_;
  NmiMetrics* metrics_;
  HandlerOptions options_;
};

}  // namespace aad::identity::nmi
