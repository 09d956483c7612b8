#include "identity/nmi/imds_upstream.hpp"

#include <algorithm>
#include <array>

#include "core/ascii.hpp"
#include "core/log.hpp"
#include "identity/nmi/request.hpp"

namespace aad::identity::nmi {

namespace bhttp = boost::beast::http;

bool is_hop_by_hop(std::string_view header) {
  static constexpr std::array<std::string_view, 11> kHop = {
      "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
      "trailer", "transfer-encoding", "upgrade", "content-length", "host"};
  return std::any_of(kHop.begin(), kHop.end(), [&](std::string_view h) { return iequals(h, header); });
}

namespace {

// A Content-Length value as RFC 9110 8.6 has it: digits only.
bool is_length(std::string_view v) {
  return !v.empty() && v.size() <= 19 && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

HttpUpstream::HttpUpstream(http::Client& client, std::string base_url, std::chrono::milliseconds timeout)
    : client_(client), base_url_(std::move(base_url)), timeout_(timeout) {
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
  host_port_ = http::host_port(base_url_);
  if (host_port_.empty()) host_port_ = base_url_;
}

boost::asio::awaitable<http::Response> HttpUpstream::forward(const http::Request& req, std::string_view peer) {
  http::ClientRequest out;
  out.method = req.method();
  out.url = base_url_ + std::string(req.target());
  for (const auto& f : req)
    if (!is_hop_by_hop(f.name_string())) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  out.body = req.body();
  out.timeout = timeout_;
  auto r = co_await client_.send(out);
  if (!r) {
    // The path only: the query may name an identity.
    auto [path, query] = split_target(req.target());
    log::warning("IMDS unreachable", {{"peer", peer}, {"upstream", host_port_}, {"path", std::string(path.substr(0, 200))},
                                      {"error", r.error().message()}});
    Error e{http::Status::internal_server_error, "internal_error",
            "failed to reach the instance metadata service at " + host_port_ + ": " + r.error().message(), std::nullopt};
    co_return error_response(req, e);
  }
  http::Response res{static_cast<bhttp::status>(r->status), req.version()};
  for (const auto& f : r->headers)
    if (!is_hop_by_hop(f.name_string())) res.insert(f.name_string(), f.value());
  res.body() = std::move(r->body);
  auto length = r->headers[bhttp::field::content_length];
  if (req.method() == bhttp::verb::head && is_length(length)) {
    // No body follows a HEAD answer; its Content-Length is the GET body's, as IMDS sent it.
    res.set(bhttp::field::content_length, length);
  } else {
    res.prepare_payload();
  }
  co_return res;
}

}  // namespace aad::identity::nmi
