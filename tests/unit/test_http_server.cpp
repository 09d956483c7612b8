#include <catch2/catch.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <atomic>
#include <future>

#include "core/http_client.hpp"
#include "support/server_fixture.hpp"

using namespace aad;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

http::Handler echo_handler() {
  return [](http::Request& req, const http::RequestContext& ctx) -> asio::awaitable<http::Response> {
    co_return http::make_response(req, http::Status::ok,
                                  std::string(req.target()) + " from " + ctx.peer.address().to_string() +
                                      " body=" + req.body());
  };
}

std::string get_request(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n";
}

}  // namespace

TEST_CASE("keep-alive serves several requests on one connection") {
  test::ServerFixture fx(echo_handler());
  int fd = fx.connect_raw();
  test::ServerFixture::send_all(fd, get_request("/one") + get_request("/two", "Connection: close\r\n"));
  auto out = test::ServerFixture::read_to_close(fd);
  ::close(fd);
  CHECK(out.find("/one from 127.0.0.1") != std::string::npos);
  CHECK(out.find("/two from 127.0.0.1") != std::string::npos);
  CHECK(out.find("Content-Length: ") != std::string::npos);
}

TEST_CASE("oversized header gets 431 and the server keeps serving") {
  http::ServerOptions o;
  o.header_limit = 1024;
  test::ServerFixture fx(echo_handler(), o);
  auto out = fx.raw_exchange(get_request("/", "X-Big: " + std::string(4000, 'a') + "\r\n"));
  CHECK(out.rfind("HTTP/1.1 431", 0) == 0);
  CHECK(fx.raw_exchange(get_request("/after", "Connection: close\r\n")).find("/after") != std::string::npos);
}

TEST_CASE("oversized body gets 413") {
  http::ServerOptions o;
  o.body_limit = 100;
  test::ServerFixture fx(echo_handler(), o);
  auto out = fx.raw_exchange("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + std::string(1000, 'b'));
  CHECK(out.rfind("HTTP/1.1 413", 0) == 0);
}

TEST_CASE("malformed requests get 400 and the server keeps serving") {
  test::ServerFixture fx(echo_handler());
  for (const std::string& bad : std::vector<std::string>{"GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
                          "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", std::string("G\0T / HTTP/1.1\r\n\r\n", 18)}) {
    INFO(bad);
    auto out = fx.raw_exchange(bad);
    CHECK(out.rfind("HTTP/1.1 400", 0) == 0);
    CHECK(out.find("\"error\"") != std::string::npos);
  }
  CHECK(fx.raw_exchange(get_request("/still-up", "Connection: close\r\n")).find("/still-up") != std::string::npos);
}

TEST_CASE("a request that stalls is dropped after the read timeout") {
  http::ServerOptions o;
  o.read_timeout = 200ms;
  test::ServerFixture fx(echo_handler(), o);
  auto out = fx.raw_exchange("GET / HTTP/1.1\r\nHost: x\r\n");  // headers never finish
  CHECK(out.empty());
}

TEST_CASE("idle keep-alive connections are closed after the idle timeout") {
  http::ServerOptions o;
  o.idle_timeout = 200ms;
  test::ServerFixture fx(echo_handler(), o);
  int fd = fx.connect_raw();
  auto out = test::ServerFixture::read_to_close(fd);  // returns when the server closes
  ::close(fd);
  CHECK(out.empty());
}

TEST_CASE("a client that disconnects cancels its handler") {
  std::promise<std::string> outcome;
  auto handler = [&](http::Request& req, const http::RequestContext&) -> asio::awaitable<http::Response> {
    asio::steady_timer timer(co_await asio::this_coro::executor, 30s);
    try {
      co_await timer.async_wait(asio::use_awaitable);
      outcome.set_value("finished");
    } catch (const boost::system::system_error& e) {
      outcome.set_value(e.code() == asio::error::operation_aborted ? "cancelled" : e.what());
      throw;
    }
    co_return http::make_response(req, http::Status::ok, "late");
  };
  test::ServerFixture fx(handler);
  int fd = fx.connect_raw();
  test::ServerFixture::send_all(fd, get_request("/slow"));
  auto fut = outcome.get_future();
  CHECK(fut.wait_for(100ms) == std::future_status::timeout);  // handler is running
  ::close(fd);
  REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  CHECK(fut.get() == "cancelled");
}

TEST_CASE("a handler that throws yields a JSON 500, not a dead server") {
  auto handler = [](http::Request& req, const http::RequestContext&) -> asio::awaitable<http::Response> {
    if (req.target() == "/boom") throw std::runtime_error("boom");
    co_return http::make_response(req, http::Status::ok, "fine");
  };
  test::ServerFixture fx(handler);
  auto out = fx.raw_exchange(get_request("/boom", "Connection: close\r\n"));
  CHECK(out.rfind("HTTP/1.1 500", 0) == 0);
  CHECK(out.find("application/json") != std::string::npos);
  CHECK(fx.raw_exchange(get_request("/ok", "Connection: close\r\n")).find("fine") != std::string::npos);
}

TEST_CASE("shutdown lets in-flight requests finish and closes the connection") {
  std::promise<void> started;
  auto handler = [&](http::Request& req, const http::RequestContext&) -> asio::awaitable<http::Response> {
    started.set_value();
    asio::steady_timer timer(co_await asio::this_coro::executor, 300ms);
    co_await timer.async_wait(asio::use_awaitable);
    co_return http::make_response(req, http::Status::ok, "drained");
  };
  test::ServerFixture fx(handler);
  int fd = fx.connect_raw();
  test::ServerFixture::send_all(fd, get_request("/work"));
  started.get_future().wait();
  auto shutdown = std::async(std::launch::async, [&] {
    fx.run([&]() -> asio::awaitable<int> {
      co_await fx.server().shutdown(5s);
      co_return 0;
    });
  });
  auto out = test::ServerFixture::read_to_close(fd);
  ::close(fd);
  shutdown.get();
  CHECK(out.find("drained") != std::string::npos);
  CHECK(out.find("Connection: close") != std::string::npos);
  CHECK(fx.connect_raw() == -1);  // no longer accepting
}

TEST_CASE("framing the server cannot trust gets 400 and a closed connection") {
  test::ServerFixture fx(echo_handler());
  // A transfer coding other than chunked: the body length is unknown (RFC 9112 6.3).
  auto gz = fx.raw_exchange("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(gz.rfind("HTTP/1.1 400", 0) == 0);
  CHECK(gz.find("/smuggled") == std::string::npos);
  // HTTP/1.1 requires Host.
  auto no_host = fx.raw_exchange("GET / HTTP/1.1\r\n\r\n");
  CHECK(no_host.rfind("HTTP/1.1 400", 0) == 0);
  CHECK(no_host.find("missing Host header") != std::string::npos);
  // HTTP/1.0 without Host is fine.
  CHECK(fx.raw_exchange("GET /old HTTP/1.0\r\n\r\n").find("/old from") != std::string::npos);
}

TEST_CASE("connections over the limit get 503 at once; the server keeps serving") {
  http::ServerOptions o;
  o.max_connections = 2;
  test::ServerFixture fx(echo_handler(), o);
  int a = fx.connect_raw(), b = fx.connect_raw();
  // Make sure both are registered before the third arrives.
  test::ServerFixture::send_all(a, get_request("/a"));
  test::ServerFixture::send_all(b, get_request("/b"));
  char buf[512];
  CHECK(::recv(a, buf, sizeof buf, 0) > 0);
  CHECK(::recv(b, buf, sizeof buf, 0) > 0);
  auto refused = fx.raw_exchange(get_request("/c"));
  CHECK(refused.rfind("HTTP/1.1 503", 0) == 0);
  CHECK(refused.find("server_busy") != std::string::npos);
  ::close(a);
  ::close(b);
  std::string after;
  for (int i = 0; i < 50 && after.find("/d from") == std::string::npos; ++i) {
    after = fx.raw_exchange(get_request("/d", "Connection: close\r\n"));
    if (after.find("/d from") == std::string::npos) std::this_thread::sleep_for(20ms);
  }
  CHECK(after.find("/d from") != std::string::npos);
}

TEST_CASE("shutdown does not wait for a request that is still being sent") {
  test::ServerFixture fx(echo_handler());
  int fd = fx.connect_raw();
  test::ServerFixture::send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n");  // never finished
  std::this_thread::sleep_for(50ms);
  auto finished = std::async(std::launch::async, [&] {
    fx.run([&]() -> asio::awaitable<int> {
      co_await fx.server().shutdown(30s);
      co_return 0;
    });
  });
  // Bounded by the test's own patience, not asserted as a duration: with a 30 s drain, a server
  // that waited for this connection would still be draining when we look.
  CHECK(finished.wait_for(10s) == std::future_status::ready);
  CHECK(test::ServerFixture::read_to_close(fd).empty());
  ::close(fd);
}
