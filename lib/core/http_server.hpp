#pragma once
// An HTTP/1.1 server: one coroutine per connection, keep-alive, header/body limits (431/413),
// malformed requests answered 400, idle/read/write timeouts, graceful drain on shutdown,
// a global and a per-source-address connection cap.
// At the global cap the server makes room by closing, in order, the connection idle longest,
// then the one that has been sending its request longest (so half-sent requests cannot fill it).
// Handlers are coroutines; on plain TCP a client that disconnects cancels its handler.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/http_message.hpp"

namespace boost::asio::ssl {
class context;
}

namespace aad::http {

using namespace std::chrono_literals;

struct ServerOptions {
  std::string name = "http";  // for logs
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  // 0: pick a free port (read it back with local_endpoint)
  std::size_t header_limit = 16 * 1024;
  std::size_t body_limit = 1024 * 1024;
  // At the cap, the connection idle longest is closed to make room, else the one whose request
  // (or TLS handshake) started longest ago and is still unfinished; when every connection is
  // being handled or answered, further connections get 503 and are closed at once.
  std::size_t max_connections = 512;
  // Open connections from one source address (0: no limit); further ones get the same 503, so
  // one client cannot take the server from the others.
  std::size_t max_connections_per_peer = 64;
  std::chrono::milliseconds idle_timeout = 60s;  // waiting for the next request on a connection
  std::chrono::milliseconds read_timeout = 30s;   // deadline for one whole request once it started
  std::chrono::milliseconds write_timeout = 30s;
  std::shared_ptr<boost::asio::ssl::context> tls;  // null: plain HTTP
};

struct RequestContext {
  boost::asio::ip::tcp::endpoint peer;
  boost::asio::ip::tcp::endpoint local;
  bool tls = false;
  // A handler may answer with a body shared between responses (a cached page): it sets this
  // and leaves the Response body empty; the server sends these bytes without copying them and
  // sets Content-Length. Mutable: an output slot on an otherwise read-only context.
  mutable std::shared_ptr<const std::string> shared_body;
};

using Handler = std::function<boost::asio::awaitable<Response>(Request&, const RequestContext&)>;

class Server {
 public:
  Server(boost::asio::any_io_executor executor, ServerOptions options, Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts accepting. Throws boost::system::system_error when the address is unusable.
  void start();
  boost::asio::ip::tcp::endpoint local_endpoint() const;
  std::size_t open_connections() const;
  std::size_t idle_connections() const;     // open and waiting for their next request
  std::size_t reading_connections() const;  // open and still sending a request (or TLS handshake)

  // Stops accepting, closes idle connections and ones still sending a request, lets requests
  // being handled finish (their responses carry Connection: close) for at most `drain`, then
  // closes whatever is left.
  boost::asio::awaitable<void> shutdown(std::chrono::milliseconds drain);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace aad::http
