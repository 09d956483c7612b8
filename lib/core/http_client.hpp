#pragma once
// An HTTP/1.1 client for HTTP and HTTPS: peer verification with SNI, custom CA bundle,
// client certificates, pooled keep-alive connections, and a deadline per request.
// Failures come back as error codes (expected in normal operation), never as exceptions.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tls.hpp"

namespace aad::http {

struct ClientRequest {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string url;  // http://host[:port]/path?query or https://...
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{30000};  // whole exchange: resolve, connect, TLS, write, read
};

struct ClientResponse {
  unsigned status = 0;
  boost::beast::http::fields headers;
  std::string body;
  std::string header(std::string_view name) const;
};

struct ClientOptions {
  tls::ClientConfig tls;
  std::string user_agent = "aad-pod-identity";
  std::size_t body_limit = 64 * 1024 * 1024;
  std::size_t max_idle_per_host = 8;
};

// "host:port" of an http(s) URL, the scheme's port when none is given ("[::1]:80" for IPv6);
// empty when the URL is not one the client can send to. For errors that say where.
std::string host_port(const std::string& url);

class Client {
 public:
  // Throws std::runtime_error when the TLS configuration is unusable.
  Client(boost::asio::any_io_executor executor, ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Pass a named request, not a temporary built inside the co_await expression: GCC 12
  // destroys such temporaries twice.
  boost::asio::awaitable<boost::system::result<ClientResponse>> send(ClientRequest request);

  std::size_t idle_connections() const;
  std::size_t connections_opened() const { return opened_; }
  void close_idle();

  struct Connection;

 private:
  boost::asio::any_io_executor executor_;
  ClientOptions options_;
  std::shared_ptr<void> tls_context_;  // boost::asio::ssl::context, kept opaque here
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> idle_;
  std::size_t opened_ = 0;
};

}  // namespace aad::http
