#include "core/http_client.hpp"

#include <fmt/format.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>

namespace aad::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct Client::Connection {
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;

  beast::tcp_stream& tcp() { return secure ? secure->next_layer() : *plain; }

  // A pooled connection the server has since closed reads as EOF (or has stray bytes).
  bool still_usable() {
    auto& sock = tcp().socket();
    if (!sock.is_open()) return false;
    char byte;
    ssize_t n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
};

namespace {

struct Target {
  bool https = false;
  std::string host;       // without brackets
  std::string port;
  std::string host_header;
  std::string path;       // path and query
  std::string pool_key;
};

boost::system::result<Target> parse_target(const std::string& url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) return parsed.error();
  Target t;
  auto scheme = parsed->scheme();
  if (scheme == "https") t.https = true;
  else if (scheme != "http") return make_error_code(boost::system::errc::protocol_not_supported);
  if (parsed->host_type() == boost::urls::host_type::ipv6) {
    t.host = parsed->host_ipv6_address().to_string();
  } else {
    t.host = parsed->host();
  }
  if (t.host.empty()) return make_error_code(boost::system::errc::invalid_argument);
  bool default_port = !parsed->has_port();
  t.port = default_port ? (t.https ? "443" : "80") : std::string(parsed->port());
  std::string bracketed = parsed->host_type() == boost::urls::host_type::ipv6 ? "[" + t.host + "]" : t.host;
  t.host_header = default_port ? bracketed : bracketed + ":" + t.port;
  t.path = std::string(parsed->encoded_path());
  if (t.path.empty()) t.path.push_back('/');  // (not = "/": GCC 12 -Wrestrict false positive at -O3)
  if (parsed->has_query()) {
    t.path += '?';
    t.path += parsed->encoded_query();
  }
  t.pool_key = fmt::format("{}://{}:{}", t.https ? "https" : "http", bracketed, t.port);
  return t;
}

bool stale_connection_error(const boost::system::error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::ssl::error::stream_truncated;
}

template <typename Stream>
asio::awaitable<boost::system::result<ClientResponse>> exchange(Stream& stream, beast::flat_buffer& buffer,
                                                                bhttp::request<bhttp::string_body>& req,
                                                                std::size_t body_limit, bool& reusable) {
  auto [wec, wn] = co_await bhttp::async_write(stream, req, use_tuple);
  (void)wn;
  if (wec) co_return wec;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.skip(req.method() == bhttp::verb::head);  // its Content-Length is the GET body's; none follows
  parser.body_limit(body_limit);
  parser.header_limit(64 * 1024);
  auto [rec, rn] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
  (void)rn;
  if (rec) co_return rec;
  auto msg = parser.release();
  reusable = msg.keep_alive();
  ClientResponse out;
  out.status = msg.result_int();
  out.body = std::move(msg.body());
  out.headers = std::move(msg.base());
  co_return out;
}

}  // namespace

std::string host_port(const std::string& url) {
  auto t = parse_target(url);
  if (!t) return {};
  return t->host.find(':') == std::string::npos ? t->host + ":" + t->port : "[" + t->host + "]:" + t->port;
}

std::string ClientResponse::header(std::string_view name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : std::string(it->value());
}

Client::Client(asio::any_io_executor executor, ClientOptions options)
    : executor_(executor), options_(std::move(options)),
      tls_context_(tls::make_client_context(options_.tls)) {}

Client::~Client() = default;

std::size_t Client::idle_connections() const {
  std::size_t n = 0;
  for (const auto& [key, conns] : idle_) n += conns.size();
  return n;
}

void Client::close_idle() { idle_.clear(); }

asio::awaitable<boost::system::result<ClientResponse>> Client::send(ClientRequest request) {
  auto target = parse_target(request.url);
  if (!target) co_return target.error();

  bhttp::request<bhttp::string_body> req{request.method, target->path, 11};
  req.set(bhttp::field::host, target->host_header);
  req.set(bhttp::field::user_agent, options_.user_agent);
  for (const auto& [name, value] : request.headers) req.set(name, value);
  req.keep_alive(true);
  if (!request.body.empty() || request.method == bhttp::verb::post || request.method == bhttp::verb::put ||
      request.method == bhttp::verb::patch) {
    req.body() = std::move(request.body);
    req.prepare_payload();
  }
  auto& ssl_ctx = *static_cast<asio::ssl::context*>(tls_context_.get());

  // A pooled connection may have been closed by the server; retry once on a fresh one.
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::unique_ptr<Connection> conn;
    auto& pool = idle_[target->pool_key];
    while (!pool.empty() && !conn) {
      conn = std::move(pool.back());
      pool.pop_back();
      if (!conn->still_usable()) conn.reset();
    }
    bool reused = static_cast<bool>(conn);
    if (!conn) {
      conn = std::make_unique<Connection>();
      conn->plain = std::make_unique<beast::tcp_stream>(executor_);
      conn->plain->expires_after(request.timeout);
      tcp::resolver resolver(executor_);
      auto [rec, endpoints] = co_await resolver.async_resolve(target->host, target->port, use_tuple);
      if (rec) co_return rec;
      auto [cec, ep] = co_await conn->plain->async_connect(endpoints, use_tuple);
      (void)ep;
      if (cec) co_return cec;
      conn->plain->socket().set_option(tcp::no_delay(true));
      ++opened_;
      if (target->https) {
        conn->secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(*conn->plain), ssl_ctx);
        conn->plain.reset();
        boost::system::error_code ip_ec;
        asio::ip::make_address(target->host, ip_ec);
        if (ip_ec && !SSL_set_tlsext_host_name(conn->secure->native_handle(), target->host.c_str()))
          co_return boost::system::error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category());
        if (!options_.tls.insecure_skip_verify)
          conn->secure->set_verify_callback(asio::ssl::host_name_verification(target->host));
        auto [hec] = co_await conn->secure->async_handshake(asio::ssl::stream_base::client, use_tuple);
        if (hec) co_return hec;
      }
    }
    conn->tcp().expires_after(request.timeout);
    bool reusable = false;
    // Two statements, not `?:`: GCC 12 miscompiles co_await inside a conditional expression.
    boost::system::result<ClientResponse> result = boost::system::error_code{};
    if (conn->secure)
      result = co_await exchange(*conn->secure, conn->buffer, req, options_.body_limit, reusable);
    else
      result = co_await exchange(*conn->plain, conn->buffer, req, options_.body_limit, reusable);
    if (!result && reused && stale_connection_error(result.error())) continue;
    if (result && reusable) {
      conn->tcp().expires_never();
      auto& back = idle_[target->pool_key];
      if (back.size() < options_.max_idle_per_host) back.push_back(std::move(conn));
    }
    co_return result;
  }
  co_return make_error_code(boost::system::errc::connection_aborted);
}

}  // namespace aad::http
