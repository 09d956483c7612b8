#include "core/http_stream.hpp"

#include <fmt/format.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>
#include <optional>

namespace aad::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct Stream::Impl {
  asio::any_io_executor executor;
  std::shared_ptr<asio::ssl::context> ctx;
  bool insecure = false;
  std::string user_agent;
  tcp::resolver resolver;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  std::optional<bhttp::response_parser<bhttp::buffer_body>> parser;
  std::string pending;  // body bytes read but not yet returned as a line
  bool cancelled = false;
  bool eof = false;
  std::chrono::milliseconds idle{0};

  Impl(asio::any_io_executor ex, std::shared_ptr<asio::ssl::context> c, bool insec, std::string ua)
      : executor(ex), ctx(std::move(c)), insecure(insec), user_agent(std::move(ua)), resolver(ex) {}

  beast::tcp_stream* tcp_layer() { return secure ? &secure->next_layer() : plain.get(); }
  void arm() {
    if (auto* t = tcp_layer()) {
      if (idle.count() > 0) t->expires_after(idle);
      else t->expires_never();
    }
  }
};

namespace {

struct Target {
  bool https = false;
  std::string host, port, host_header, path;
};

boost::system::result<Target> parse(const std::string& url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) return parsed.error();
  Target t;
  if (parsed->scheme() == "https") t.https = true;
  else if (parsed->scheme() != "http") return make_error_code(boost::system::errc::protocol_not_supported);
  bool v6 = parsed->host_type() == boost::urls::host_type::ipv6;
  t.host = v6 ? parsed->host_ipv6_address().to_string() : std::string(parsed->host());
  if (t.host.empty()) return make_error_code(boost::system::errc::invalid_argument);
  bool default_port = !parsed->has_port();
  t.port = default_port ? (t.https ? "443" : "80") : std::string(parsed->port());
  std::string bracketed = v6 ? "[" + t.host + "]" : t.host;
  t.host_header = default_port ? bracketed : bracketed + ":" + t.port;
  t.path = std::string(parsed->encoded_path());
  if (t.path.empty()) t.path = "/";
  if (parsed->has_query()) t.path += "?" + std::string(parsed->encoded_query());
  return t;
}

template <typename S>
asio::awaitable<error_code> write_and_read_header(S& s, Stream::Impl& impl, bhttp::request<bhttp::string_body>& req) {
  auto [wec, wn] = co_await bhttp::async_write(s, req, use_tuple);
  (void)wn;
  if (wec) co_return wec;
  auto [rec, rn] = co_await bhttp::async_read_header(s, impl.buffer, *impl.parser, use_tuple);
  (void)rn;
  co_return rec;
}

template <typename S>
asio::awaitable<std::pair<error_code, std::size_t>> read_body_some(S& s, Stream::Impl& impl, char* buf,
                                                                   std::size_t size) {
  auto& body = impl.parser->get().body();
  body.data = buf;
  body.size = size;
  auto [ec, n] = co_await bhttp::async_read_some(s, impl.buffer, *impl.parser, use_tuple);
  (void)n;
  if (ec == bhttp::error::need_buffer) ec = {};
  co_return std::pair{ec, size - impl.parser->get().body().size};
}

}  // namespace

Stream::Stream(asio::any_io_executor executor, const tls::ClientConfig& tls, std::string user_agent)
    : impl_(std::make_unique<Impl>(executor, tls::make_client_context(tls), tls.insecure_skip_verify,
                                   std::move(user_agent))) {}

Stream::Stream(asio::any_io_executor executor, std::shared_ptr<asio::ssl::context> ctx, bool insecure,
               std::string user_agent)
    : impl_(std::make_unique<Impl>(executor, std::move(ctx), insecure, std::move(user_agent))) {}

Stream::~Stream() = default;

const bhttp::fields& Stream::headers() const {
  static const bhttp::fields empty;
  return impl_->parser ? impl_->parser->get().base() : empty;
}

void Stream::set_idle_timeout(std::chrono::milliseconds idle) { impl_->idle = idle; }

bool Stream::is_open() const {
  auto* t = impl_->tcp_layer();
  return !impl_->cancelled && t && t->socket().is_open();
}

void Stream::cancel() {
  auto& i = *impl_;
  i.cancelled = true;
  i.resolver.cancel();
  if (auto* t = i.tcp_layer()) {
    error_code ec;
    t->socket().cancel(ec);
    t->socket().close(ec);
  }
}

asio::awaitable<boost::system::result<unsigned>> Stream::open(ClientRequest request) {
  auto& i = *impl_;
  if (i.cancelled) co_return error_code(asio::error::operation_aborted);
  auto target = parse(request.url);
  if (!target) co_return target.error();
  bhttp::request<bhttp::string_body> req{request.method, target->path, 11};
  req.set(bhttp::field::host, target->host_header);
  req.set(bhttp::field::user_agent, i.user_agent);
  for (const auto& [name, value] : request.headers) req.set(name, value);
  if (!request.body.empty()) {
    req.body() = std::move(request.body);
    req.prepare_payload();
  }
  auto [rec, endpoints] = co_await i.resolver.async_resolve(target->host, target->port, use_tuple);
  if (i.cancelled) co_return error_code(asio::error::operation_aborted);
  if (rec) co_return rec;
  i.plain = std::make_unique<beast::tcp_stream>(i.executor);
  i.plain->expires_after(request.timeout);
  auto [cec, ep] = co_await i.plain->async_connect(endpoints, use_tuple);
  (void)ep;
  if (i.cancelled) co_return error_code(asio::error::operation_aborted);
  if (cec) co_return cec;
  i.plain->socket().set_option(tcp::no_delay(true));
  if (target->https) {
    i.secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(*i.plain), *i.ctx);
    i.plain.reset();
    error_code ip_ec;
    asio::ip::make_address(target->host, ip_ec);
    if (ip_ec && !SSL_set_tlsext_host_name(i.secure->native_handle(), target->host.c_str()))
      co_return error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category());
    if (!i.insecure) i.secure->set_verify_callback(asio::ssl::host_name_verification(target->host));
    auto [hec] = co_await i.secure->async_handshake(asio::ssl::stream_base::client, use_tuple);
    if (i.cancelled) co_return error_code(asio::error::operation_aborted);
    if (hec) co_return hec;
  }
  i.parser.emplace();
  i.parser->skip(req.method() == bhttp::verb::head);  // no body follows, whatever the header says
  i.parser->body_limit(boost::none);
  i.parser->header_limit(64 * 1024);
  i.tcp_layer()->expires_after(request.timeout);
  error_code ec;
  if (i.secure) ec = co_await write_and_read_header(*i.secure, i, req);
  else ec = co_await write_and_read_header(*i.plain, i, req);
  if (i.cancelled) co_return error_code(asio::error::operation_aborted);
  if (ec) co_return ec;
  co_return i.parser->get().result_int();
}

asio::awaitable<boost::system::result<std::string>> Stream::read_some() {
  auto& i = *impl_;
  if (!i.pending.empty()) co_return std::exchange(i.pending, {});
  char buf[16384];
  for (;;) {
    if (i.cancelled) co_return error_code(asio::error::operation_aborted);
    if (!i.parser || i.eof || i.parser->is_done()) co_return bhttp::error::end_of_stream;
    i.arm();
    std::pair<error_code, std::size_t> r;
    if (i.secure) r = co_await read_body_some(*i.secure, i, buf, sizeof buf);
    else r = co_await read_body_some(*i.plain, i, buf, sizeof buf);
    if (i.cancelled) co_return error_code(asio::error::operation_aborted);
    if (r.second > 0) co_return std::string(buf, r.second);
    if (r.first) {
      i.eof = true;
      co_return r.first;
    }
  }
}

asio::awaitable<boost::system::result<std::string>> Stream::read_line(std::size_t max_line) {
  auto& i = *impl_;
  for (;;) {
    auto nl = i.pending.find('\n');
    if (nl != std::string::npos) {
      std::string line = i.pending.substr(0, nl);
      i.pending.erase(0, nl + 1);
      co_return line;
    }
    if (i.pending.size() > max_line) co_return bhttp::error::body_limit;
    std::string saved = std::exchange(i.pending, {});
    auto more = co_await read_some();
    if (!more) {
      if (more.error() == bhttp::error::end_of_stream && !saved.empty()) co_return saved;
      co_return more.error();
    }
    i.pending = std::move(saved) + *more;
  }
}

asio::awaitable<boost::system::result<std::string>> Stream::read_all(std::size_t limit) {
  std::string out;
  for (;;) {
    auto more = co_await read_some();
    if (!more) {
      if (more.error() == bhttp::error::end_of_stream) co_return out;
      co_return more.error();
    }
    out += *more;
    if (out.size() > limit) co_return bhttp::error::body_limit;
  }
}

}  // namespace aad::http
