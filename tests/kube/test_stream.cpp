// http::Stream: chunked bodies delivered incrementally, lines split across chunks, cancel(),
// error statuses, TLS.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <thread>

#include "core/http_stream.hpp"
#include "support/async.hpp"
#include "support/server_fixture.hpp"
#include "support/test_certs.hpp"

using namespace aad;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

// A one-connection raw HTTP server on a thread: `script` writes the response by hand.
struct RawServer {
  int listen_fd = -1;
  unsigned short port = 0;
  std::thread thread;
  std::string request;
  RawServer(std::function<void(int fd)> script) {
    listen_fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listen_fd, 4) == 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    thread = std::thread([this, script] {
      int fd = ::accept(listen_fd, nullptr, nullptr);
      if (fd < 0) return;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        request.append(buf, static_cast<std::size_t>(n));
      }
      script(fd);
      ::close(fd);
    });
  }
  ~RawServer() {
    ::shutdown(listen_fd, SHUT_RDWR);
    ::close(listen_fd);
    thread.join();
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port) + path; }
};

void send_all(int fd, const std::string& s) { ::send(fd, s.data(), s.size(), MSG_NOSIGNAL); }
std::string chunk(const std::string& s) {
  char hex[16];
  std::snprintf(hex, sizeof hex, "%zx", s.size());
  return std::string(hex) + "\r\n" + s + "\r\n";
}

}  // namespace

TEST_CASE("stream: chunked lines arrive one by one, split lines are joined") {
  std::atomic<bool> first_line_read{false};
  RawServer srv([&](int fd) {
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    send_all(fd, chunk("{\"n\":1}\n{\"n\""));
    // The next chunk is sent only after the client has consumed line 1: proves incremental delivery.
    for (int i = 0; i < 500 && !first_line_read; ++i) std::this_thread::sleep_for(10ms);
    send_all(fd, chunk(":2}\n"));
    send_all(fd, chunk("{\"n\":3}"));  // last line without newline
    send_all(fd, "0\r\n\r\n");
  });
  asio::io_context io;
  auto lines = test::run_async(io, [&]() -> asio::awaitable<std::vector<std::string>> {
    http::Stream s(io.get_executor(), tls::ClientConfig{}, "ua/1");
    http::ClientRequest r;
    r.url = srv.url("/watch?x=1");
    auto st = co_await s.open(r);
    REQUIRE(st);
    CHECK(*st == 200);
    CHECK(s.headers()["Content-Type"] == "application/json");
    std::vector<std::string> out;
    for (;;) {
      auto l = co_await s.read_line();
      if (!l) {
        CHECK(l.error() == boost::beast::http::error::end_of_stream);
        break;
      }
      out.push_back(*l);
      first_line_read = true;
    }
    co_return out;
  }());
  CHECK(lines == std::vector<std::string>{"{\"n\":1}", "{\"n\":2}", "{\"n\":3}"});
  CHECK(srv.request.find("GET /watch?x=1 HTTP/1.1") == 0);
  CHECK(srv.request.find("User-Agent: ua/1") != std::string::npos);
}

TEST_CASE("stream: cancel() ends a pending read with operation_aborted") {
  std::atomic<bool> release{false};
  RawServer srv([&](int fd) {
    send_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 1000 && !release; ++i) std::this_thread::sleep_for(10ms);
  });
  asio::io_context io;
  auto ec = test::run_async(io, [&]() -> asio::awaitable<boost::system::error_code> {
    http::Stream s(io.get_executor(), tls::ClientConfig{}, "ua");
    http::ClientRequest r;
    r.url = srv.url("/");
    auto st = co_await s.open(r);
    REQUIRE(st);
    asio::steady_timer t(io, 200ms);
    t.async_wait([&](boost::system::error_code) { s.cancel(); });
    auto l = co_await s.read_line();
    CHECK_FALSE(s.is_open());
    co_return l ? boost::system::error_code{} : l.error();
  }());
  release = true;
  CHECK(ec == asio::error::operation_aborted);
}

TEST_CASE("stream: idle timeout and an error status with its body") {
  std::atomic<bool> release{false};
  RawServer srv([&](int fd) {
    send_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 1000 && !release; ++i) std::this_thread::sleep_for(10ms);
  });
  asio::io_context io;
  test::run_async(io, [&]() -> asio::awaitable<void> {
    http::Stream s(io.get_executor(), tls::ClientConfig{}, "ua");
    http::ClientRequest r;
    r.url = srv.url("/");
    auto st = co_await s.open(r);  // never co_await inside a Catch macro (GCC evaluates it twice)
    REQUIRE(st);
    s.set_idle_timeout(300ms);
    auto l = co_await s.read_line();
    REQUIRE_FALSE(l);
    CHECK(l.error() == boost::beast::error::timeout);
  }());
  release = true;

  test::ServerFixture fx([](http::Request& req, const http::RequestContext&) -> asio::awaitable<http::Response> {
    co_return http::make_response(req, http::Status::gone, R"({"kind":"Status","code":410})", "application/json");
  });
  auto body = fx.run([&]() -> asio::awaitable<std::string> {
    http::Stream s(fx.io().get_executor(), tls::ClientConfig{}, "ua");
    http::ClientRequest r;
    r.url = fx.url("/x");
    auto st = co_await s.open(r);
    CHECK(st.value() == 410);
    auto b = co_await s.read_all();
    co_return b.value();
  });
  CHECK(body == R"({"kind":"Status","code":410})");
}

TEST_CASE("stream: TLS with a CA, and a wrong CA fails the handshake") {
  auto& pki = test::test_pki();
  http::ServerOptions so;
  tls::ServerConfig sc;
  sc.cert_pem = pki.server.cert_pem;
  sc.key_pem = pki.server.key_pem;
  so.tls = tls::make_server_context(sc);
  test::ServerFixture fx(
      [](http::Request& req, const http::RequestContext&) -> asio::awaitable<http::Response> {
        co_return http::make_response(req, http::Status::ok, "a\nb\n");
      },
      so);
  auto url = "https://127.0.0.1:" + std::to_string(fx.port()) + "/";
  auto ok = fx.run([&]() -> asio::awaitable<std::string> {
    tls::ClientConfig c;
    c.ca_pem = pki.ca.cert_pem;
    http::Stream s(fx.io().get_executor(), c, "ua");
    http::ClientRequest r;
    r.url = url;
    auto st = co_await s.open(r);  // never co_await inside a Catch macro (GCC evaluates it twice)
    REQUIRE(st);
    auto a = co_await s.read_line();
    auto b = co_await s.read_line();
    co_return a.value() + b.value();
  });
  CHECK(ok == "ab");
  auto bad = fx.run([&]() -> asio::awaitable<bool> {
    tls::ClientConfig c;
    c.ca_pem = pki.other_ca.cert_pem;
    http::Stream s(fx.io().get_executor(), c, "ua");
    http::ClientRequest r;
    r.url = url;
    auto st = co_await s.open(r);
    co_return static_cast<bool>(st);
  });
  CHECK_FALSE(bad);
}
