#include "core/http_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <list>
#include <map>
#include <optional>
#include <variant>

#include "core/ascii.hpp"
#include "core/log.hpp"

namespace aad::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// One open connection, as the server sees it for draining.
struct Connection {
  tcp::socket* socket = nullptr;
  asio::ip::address peer;
  bool busy = false;  // a complete request is being handled or answered (drain waits for these)
  bool idle = false;  // waiting for the next request: may be closed to make room for a new one
  bool reading = false;  // a request (or TLS handshake) started but unfinished: closed next
  bool evicted = false;  // closed to make room, not yet gone from the list
  std::chrono::steady_clock::time_point idle_since{};
  std::chrono::steady_clock::time_point reading_since{};
};

struct Server::State {
  asio::any_io_executor executor;
  ServerOptions options;
  Handler handler;
  tcp::acceptor acceptor;
  std::list<Connection> connections;
  std::map<asio::ip::address, std::size_t> per_peer;  // open connections by source address
  std::size_t evicted = 0;  // in `connections` but already closed to make room
  bool stopping = false;
  std::chrono::steady_clock::time_point last_accept_warning{};
  std::chrono::steady_clock::time_point last_refusal_warning{};

  State(asio::any_io_executor ex, ServerOptions o, Handler h)
      : executor(ex), options(std::move(o)), handler(std::move(h)), acceptor(ex) {}
};

namespace {

using StatePtr = std::shared_ptr<Server::State>;

tcp::socket& socket_of(beast::tcp_stream& s) { return s.socket(); }
tcp::socket& socket_of(beast::ssl_stream<beast::tcp_stream>& s) { return s.next_layer().socket(); }
beast::tcp_stream& tcp_of(beast::tcp_stream& s) { return s; }
beast::tcp_stream& tcp_of(beast::ssl_stream<beast::tcp_stream>& s) { return s.next_layer(); }

// Completes when the peer closes its side while a handler runs. Pipelined bytes are left in the
// socket for the next read; then there is nothing to watch and this waits until cancelled.
asio::awaitable<void> peer_closed(tcp::socket& socket) {
  auto [ec] = co_await socket.async_wait(tcp::socket::wait_read, use_tuple);
  if (ec) co_return;  // cancelled (handler finished) or socket error
  char byte;
  boost::system::error_code peek_ec;
  socket.non_blocking(true);
  auto n = socket.receive(asio::buffer(&byte, 1), tcp::socket::message_peek, peek_ec);
  socket.non_blocking(false);
  if (peek_ec == asio::error::would_block || (!peek_ec && n > 0)) {
    asio::steady_timer forever(socket.get_executor(), asio::steady_timer::time_point::max());
    co_await forever.async_wait(use_tuple);
  }
}

Response error_response(Status status, std::string_view message) {  // message: JSON-safe text
  Response res{status, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.set(bhttp::field::connection, "close");
  res.keep_alive(false);
  res.body() = std::string(R"({"error":"invalid_request","error_description":")") + std::string(message) + "\"}";
  res.prepare_payload();
  return res;
}

// Runs the handler; a handler that throws becomes a JSON 500 (never an exception, because
// Asio 1.81's `||` would then wait for the other branch instead of finishing).
asio::awaitable<Response> handle(const StatePtr& state, Request& req, const RequestContext& ctx) {
  try {
    Response res = co_await state->handler(req, ctx);  // not `co_return co_await`: GCC 12 bug
    co_return res;
  } catch (const boost::system::system_error& e) {
    ctx.shared_body.reset();  // the 500 below carries its own body
    if (e.code() == asio::error::operation_aborted) throw;  // the client left; nothing to answer
    log::error("request handler failed", e.what(),
               {{"server", state->options.name}, {"target", std::string(req.target())}});
  } catch (const std::exception& e) {
    ctx.shared_body.reset();
    log::error("request handler failed", e.what(),
               {{"server", state->options.name}, {"target", std::string(req.target())}});
  }
  co_return make_response(req, Status::internal_server_error,
                          R"({"error":"internal_error","error_description":"internal server error"})",
                          "application/json");
}

// Writes one answer. HEAD: the header of the GET answer (Content-Length included) and never a
// body (RFC 9110 9.3.2): the client reads none, so one sent would be taken for the next response.
// `shared`: the body bytes, sent straight from the one buffer every such response uses.
template <typename Stream>
asio::awaitable<boost::system::error_code> write_response(Stream& stream, Response& res, bool head,
                                                          const std::string* shared) {
  if (head || shared) {
    bhttp::response_serializer<bhttp::string_body> header_only{res};
    auto [hec, hn] = co_await bhttp::async_write_header(stream, header_only, use_tuple);
    (void)hn;
    if (hec || head) co_return hec;
    auto [body_ec, wn] = co_await asio::async_write(stream, asio::buffer(*shared), use_tuple);
    (void)wn;
    co_return body_ec;
  }
  auto [body_ec, wn] = co_await bhttp::async_write(stream, res, use_tuple);
  (void)wn;
  co_return body_ec;
}

template <typename Stream>
asio::awaitable<void> serve(StatePtr state, Stream& stream, Connection& conn, RequestContext ctx) {
  const auto& opt = state->options;
  beast::flat_buffer buffer;
  for (;;) {
    conn.busy = false;
    if (state->stopping) co_return;
    // Plain TCP: wait for the next request under the idle timeout (shutdown closes the socket to
    // wake us). TLS may already hold decrypted bytes inside OpenSSL, so it reads directly instead.
    bool plain = std::is_same_v<Stream, beast::tcp_stream>;
    if (plain && buffer.size() == 0) {
      asio::steady_timer idle(state->executor, opt.idle_timeout);
      conn.idle = true;
      conn.idle_since = std::chrono::steady_clock::now();
      auto woke = co_await (socket_of(stream).async_wait(tcp::socket::wait_read, use_tuple) ||
                            idle.async_wait(use_tuple));
      conn.idle = false;
      if (conn.evicted || woke.index() == 1 || std::get<0>(woke) != std::tuple<boost::system::error_code>{})
        co_return;
    }
    conn.busy = false;  // reading: a half-sent request is dropped by shutdown, not waited for
    conn.reading = true;
    conn.reading_since = std::chrono::steady_clock::now();
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(opt.header_limit));
    parser.body_limit(opt.body_limit);
    tcp_of(stream).expires_after(plain || buffer.size() > 0 ? opt.read_timeout : opt.idle_timeout);
    auto [hec, hn] = co_await bhttp::async_read_header(stream, buffer, parser, use_tuple);
    (void)hn;
    boost::system::error_code ec = hec;
    if (!ec && !parser.is_done()) {
      // A client sending `Expect: 100-continue` waits for this before sending the body (RFC 9110 10.1.1).
      if (parser.get().version() >= 11 && iequals(parser.get()[bhttp::field::expect], "100-continue")) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        auto [cec, cn] = co_await asio::async_write(stream, asio::buffer(kContinue), use_tuple);
        (void)cn;
        ec = cec;
      }
    }
    if (!ec && !parser.is_done()) {
      auto [bec, bn] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
      (void)bn;
      ec = bec;
    }
    conn.reading = false;
    if (ec) {
      if (conn.evicted) co_return;
      std::optional<Response> answer;
      if (ec == bhttp::error::header_limit)
        answer = error_response(Status::request_header_fields_too_large, "request header too large");
      else if (ec == bhttp::error::body_limit)
        answer = error_response(Status::payload_too_large, "request body too large");
      else if (ec.category() == boost::system::error_code(bhttp::error::header_limit).category() && ec != bhttp::error::end_of_stream &&
               ec != bhttp::error::partial_message)
        answer = error_response(Status::bad_request, "malformed HTTP request");
      if (answer) {
        log::debug(2, "rejected request", {{"server", opt.name}, {"peer", ctx.peer.address().to_string()},
                                           {"reason", ec.message()}});
        tcp_of(stream).expires_after(opt.write_timeout);
        co_await bhttp::async_write(stream, *answer, use_tuple);
      }
      co_return;
    }
    Request req = parser.release();
    // RFC 9112: a request with a transfer coding other than chunked, or HTTP/1.1 without Host,
    // is answered 400 and the connection closed (its framing cannot be trusted).
    std::optional<std::string_view> protocol_error;
    if (req.count(bhttp::field::transfer_encoding) && !req.chunked())
      protocol_error = "unsupported transfer coding";
    else if (req.version() >= 11 && req.count(bhttp::field::host) == 0)
      protocol_error = "missing Host header";
    else if (req.count(bhttp::field::host) > 1)
      protocol_error = "more than one Host header";
    if (protocol_error) {
      auto answer = error_response(Status::bad_request, *protocol_error);
      tcp_of(stream).expires_after(opt.write_timeout);
      co_await bhttp::async_write(stream, answer, use_tuple);
      co_return;
    }
    conn.busy = true;
    Response res;
    if (plain) {
      tcp_of(stream).expires_never();
      auto outcome = co_await (handle(state, req, ctx) || peer_closed(socket_of(stream)));
      if (outcome.index() == 1) {
        log::debug(2, "client went away; request cancelled",
                   {{"server", opt.name}, {"peer", ctx.peer.address().to_string()},
                    {"target", std::string(req.target())}});
        co_return;
      }
      res = std::move(std::get<0>(outcome));
    } else {
      res = co_await handle(state, req, ctx);
    }
    // Taken out of ctx so the next request starts without it; held until written.
    std::shared_ptr<const std::string> shared = std::move(ctx.shared_body);
    bool keep = res.keep_alive() && req.keep_alive() && !state->stopping;
    res.keep_alive(keep);
    res.version(req.version());
    if (shared) {
      res.body().clear();
      res.content_length(shared->size());
    }
    if (!res.has_content_length() && !res.chunked()) res.prepare_payload();
    tcp_of(stream).expires_after(opt.write_timeout);
    auto wec = co_await write_response(stream, res, req.method() == bhttp::verb::head, shared.get());
    if (wec || !keep) {
      if (!wec) {
        boost::system::error_code ignored;
        socket_of(stream).shutdown(tcp::socket::shutdown_send, ignored);
      }
      co_return;
    }
  }
}

// Runs one connection the accept loop has already registered as `it`; unregisters it at the end.
asio::awaitable<void> session(StatePtr state, tcp::socket socket, std::list<Connection>::iterator it) {
  RequestContext ctx;
  boost::system::error_code ec;
  ctx.peer = socket.remote_endpoint(ec);
  ctx.local = socket.local_endpoint(ec);
  try {
    if (state->options.tls) {
      ctx.tls = true;
      beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), *state->options.tls);
      it->socket = &socket_of(stream);
      it->busy = true;
      it->reading = true;  // a stalled handshake is as evictable as a stalled request
      it->reading_since = std::chrono::steady_clock::now();
      stream.next_layer().expires_after(state->options.read_timeout);
      auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, use_tuple);
      it->reading = false;
      if (hec) {
        log::debug(2, "TLS handshake failed", {{"server", state->options.name},
                                               {"peer", ctx.peer.address().to_string()}, {"reason", hec.message()}});
      } else {
        co_await serve(state, stream, *it, ctx);
        stream.next_layer().expires_after(std::chrono::seconds(1));
        co_await stream.async_shutdown(use_tuple);
      }
    } else {
      beast::tcp_stream stream(std::move(socket));
      it->socket = &stream.socket();
      co_await serve(state, stream, *it, ctx);
    }
  } catch (const std::exception& e) {
    log::error("connection failed", e.what(), {{"server", state->options.name}});
  }
  auto peer = state->per_peer.find(it->peer);
  if (peer != state->per_peer.end() && --peer->second == 0) state->per_peer.erase(peer);
  if (it->evicted) --state->evicted;
  state->connections.erase(it);
}

// A v4 client on a dual-stack socket appears as ::ffff:a.b.c.d; count it under a.b.c.d.
asio::ip::address peer_key(const asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  return a;
}

// Closes one connection to make room: the one that has waited longest for its next request,
// else the one that has been sending its request longest (a slow or stalled client's, since a
// well-behaved request arrives at once). False when every connection is handled or answered.
bool evict_one(Server::State& state) {
  Connection* idle = nullptr;
  Connection* reading = nullptr;
  for (auto& c : state.connections) {
    if (c.evicted || !c.socket) continue;
    if (c.idle && (!idle || c.idle_since < idle->idle_since)) idle = &c;
    if (c.reading && (!reading || c.reading_since < reading->reading_since)) reading = &c;
  }
  Connection* victim = idle ? idle : reading;
  if (!victim) return false;
  if (victim == reading)
    log::debug(2, "closed an unfinished request to make room",
               {{"server", state.options.name}, {"peer", victim->peer.to_string()}});
  boost::system::error_code ignored;
  victim->socket->close(ignored);
  victim->evicted = true;
  ++state.evicted;
  return true;
}

void refuse(Server::State& state, tcp::socket& socket, const asio::ip::address& peer, std::string_view why) {
  static const std::string busy = [] {
    std::string body = R"({"error":"server_busy","error_description":"too many open connections, retry"})";
    return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
           "Retry-After: 1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }();
  boost::system::error_code ignored;
  socket.non_blocking(true);
  socket.send(asio::buffer(busy), 0, ignored);
  socket.close(ignored);
  auto now = std::chrono::steady_clock::now();  // warn at most every 10 s
  if (now - state.last_refusal_warning > std::chrono::seconds(10)) {
    state.last_refusal_warning = now;
    log::warning("connection refused", {{"server", state.options.name}, {"peer", peer.to_string()}, {"reason", why}});
  }
}

asio::awaitable<void> accept_loop(StatePtr state) {
  for (;;) {
    auto [ec, socket] = co_await state->acceptor.async_accept(use_tuple);
    if (state->stopping || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of descriptors and similar: log (at most every 10 s), pause briefly, keep serving.
      auto now = std::chrono::steady_clock::now();
      if (now - state->last_accept_warning > std::chrono::seconds(10)) {
        state->last_accept_warning = now;
        log::warning("accept failed", {{"server", state->options.name}, {"reason", ec.message()}});
      }
      asio::steady_timer pause(state->executor, std::chrono::milliseconds(50));
      co_await pause.async_wait(use_tuple);
      continue;
    }
    boost::system::error_code pec;
    auto endpoint = socket.remote_endpoint(pec);
    if (pec) continue;  // already gone
    auto peer = peer_key(endpoint.address());
    // Over a limit: refuse this one at once rather than let one client (or all of them) run the
    // server out of descriptors. Counted here, not in the session, so a burst cannot overshoot.
    const auto& opt = state->options;
    auto mine = state->per_peer.find(peer);
    if (opt.max_connections_per_peer > 0 && mine != state->per_peer.end() &&
        mine->second >= opt.max_connections_per_peer) {
      refuse(*state, socket, peer, "too many connections from this address");
      continue;
    }
    if (state->connections.size() - state->evicted >= opt.max_connections && !evict_one(*state)) {
      refuse(*state, socket, peer, "too many open connections");
      continue;
    }
    ++state->per_peer[peer];
    auto it = state->connections.insert(state->connections.end(), Connection{});
    it->peer = peer;
    asio::co_spawn(state->executor, session(state, std::move(socket), it), asio::detached);
  }
}

}  // namespace

Server::Server(asio::any_io_executor executor, ServerOptions options, Handler handler)
    : state_(std::make_shared<State>(executor, std::move(options), std::move(handler))) {}

Server::~Server() {
  state_->stopping = true;
  boost::system::error_code ec;
  state_->acceptor.close(ec);
  for (auto& c : state_->connections)
    if (c.socket) c.socket->close(ec);
}

void Server::start() {
  auto& opt = state_->options;
  tcp::endpoint ep(asio::ip::make_address(opt.address), opt.port);
  state_->acceptor.open(ep.protocol());
  state_->acceptor.set_option(asio::socket_base::reuse_address(true));
  if (ep.address().is_v6()) state_->acceptor.set_option(asio::ip::v6_only(false));
  state_->acceptor.bind(ep);
  state_->acceptor.listen(asio::socket_base::max_listen_connections);
  asio::co_spawn(state_->executor, accept_loop(state_), asio::detached);
}

tcp::endpoint Server::local_endpoint() const { return state_->acceptor.local_endpoint(); }

std::size_t Server::open_connections() const { return state_->connections.size() - state_->evicted; }

std::size_t Server::idle_connections() const {
  std::size_t n = 0;
  for (const auto& c : state_->connections) n += c.idle && !c.evicted;
  return n;
}

std::size_t Server::reading_connections() const {
  std::size_t n = 0;
  for (const auto& c : state_->connections) n += c.reading && !c.evicted;
  return n;
}

asio::awaitable<void> Server::shutdown(std::chrono::milliseconds drain) {
  auto state = state_;
  state->stopping = true;
  boost::system::error_code ec;
  state->acceptor.close(ec);
  for (auto& c : state->connections)
    if (!c.busy && c.socket) c.socket->close(ec);
  auto deadline = std::chrono::steady_clock::now() + drain;
  asio::steady_timer tick(state->executor);
  while (!state->connections.empty() && std::chrono::steady_clock::now() < deadline) {
    tick.expires_after(std::chrono::milliseconds(10));
    co_await tick.async_wait(use_tuple);
    for (auto& c : state->connections)
      if (!c.busy && c.socket) c.socket->close(ec);
  }
  for (auto& c : state->connections)
    if (c.socket) c.socket->close(ec);
}

}  // namespace aad::http
