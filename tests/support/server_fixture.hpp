#pragma once
// An HTTP server on 127.0.0.1:0 whose io_context runs on a background thread, so tests can
// talk to it with blocking raw sockets or with coroutines through futures.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "core/http_client.hpp"
#include "core/http_server.hpp"
#include <ostream>

namespace aad::test {

class ServerFixture {
 public:
  explicit ServerFixture(http::Handler handler, http::ServerOptions options = {})
      : work_(io_.get_executor()) {
    options.address = options.address.empty() ? "127.0.0.1" : options.address;
    server_ = std::make_unique<http::Server>(io_.get_executor(), options, std::move(handler));
    server_->start();
    port_ = server_->local_endpoint().port();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~ServerFixture();

  unsigned short port() const { return port_; }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  boost::asio::io_context& io() { return io_; }
  http::Server& server() { return *server_; }

  // Runs a coroutine on the server's thread and waits for its result.
  template <typename F>
  auto run(F&& make) {
    return boost::asio::co_spawn(io_, std::forward<F>(make), boost::asio::use_future).get();
  }

  // A blocking connection speaking raw bytes; -1 if it cannot connect.
  int connect_raw() const {
    try {
      return connect_from("127.0.0.1");
    } catch (const std::runtime_error&) {
      return -1;
    }
  }
  static void send_all(int fd, const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
      auto n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<std::size_t>(n);
    }
  }
  // Reads until the server closes the connection (or 10 s pass).
  static std::string read_to_close(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
      auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }
  // A blocking connection from the given loopback source address (127.0.0.0/8 is all local, so
  // each address is a different peer to the server). receive_buffer > 0 shrinks the socket's
  // receive buffer, so a large reply it never reads stalls the server's write quickly.
  int connect_from(const char* source, int receive_buffer = 0) const {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket() failed");
    if (receive_buffer > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(port_);
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::inet_pton(AF_INET, source, &src.sin_addr) != 1 ||
        ::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
        ::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
      ::close(fd);
      throw std::runtime_error(std::string("cannot connect from ") + source);
    }
    return fd;
  }
  // Sends `bytes` on fd, reads until the server closes, closes fd.
  static std::string exchange_on(int fd, const std::string& bytes) {
    send_all(fd, bytes);
    auto out = read_to_close(fd);
    ::close(fd);
    return out;
  }
  std::string raw_exchange(const std::string& bytes) const { return exchange_on(connect_raw(), bytes); }

 private:
  boost::asio::io_context io_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<http::Server> server_;
  unsigned short port_ = 0;
  std::thread thread_;
};

inline ServerFixture::~ServerFixture() {
  run([this]() -> boost::asio::awaitable<int> {
    co_await server_->shutdown(std::chrono::milliseconds(100));
    server_.reset();
    co_return 0;
  });
  work_.reset();
  io_.stop();
  thread_.join();
}

// Polls `ready` (up to ~10 s) for state that settles on the server's thread.
template <typename F>
bool eventually(F ready) {
  for (int i = 0; i < 500; ++i) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// Helpers that keep test requests short.
inline http::ClientRequest get_request_to(std::string url,
                                         std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  http::ClientRequest r;
  r.url = std::move(url);
  r.timeout = timeout;
  return r;
}

}  // namespace aad::test

namespace aad::http {
// Lets Catch print a result<ClientResponse> when an assertion fails.
inline std::ostream& operator<<(std::ostream& os, const ClientResponse& r) {
  return os << "HTTP " << r.status << " body=" << r.body;
}
}  // namespace aad::http
