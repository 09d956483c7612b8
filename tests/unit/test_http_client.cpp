#include <catch2/catch.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/http_client.hpp"
#include "support/server_fixture.hpp"

using namespace aad;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

http::Handler slow_echo(std::chrono::milliseconds delay = 0ms) {
  return [delay](http::Request& req, const http::RequestContext&) -> asio::awaitable<http::Response> {
    if (delay > 0ms) {
      asio::steady_timer t(co_await asio::this_coro::executor, delay);
      co_await t.async_wait(asio::use_awaitable);
    }
    auto res = http::make_response(req, http::Status::created,
                                   std::string(http::bhttp::to_string(req.method())) + " " +
                                       std::string(req.target()) + " " + req.body());
    res.set("X-User-Agent", req[http::bhttp::field::user_agent]);
    res.set("X-Host", req[http::bhttp::field::host]);
    res.set("X-Custom", req["X-Custom"]);
    co_return res;
  };
}

// A one-connection server speaking raw bytes: answers the n-th request on the connection with
// answers[n], then waits for the client to close.
class RawServer {
 public:
  explicit RawServer(std::vector<std::string> answers) {
    listen_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listen_, 4) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(listen_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, answers = std::move(answers)] {
      int fd = ::accept(listen_, nullptr, nullptr);
      if (fd < 0) return;
      timeval tv{10, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      std::string in;
      char buf[4096];
      for (const auto& answer : answers) {
        while (in.find("\r\n\r\n") == std::string::npos) {
          auto n = ::recv(fd, buf, sizeof buf, 0);
          if (n <= 0) break;
          in.append(buf, static_cast<std::size_t>(n));
        }
        auto end = in.find("\r\n\r\n");
        if (end == std::string::npos) break;
        in.erase(0, end + 4);
        test::ServerFixture::send_all(fd, answer);
      }
      test::ServerFixture::read_to_close(fd);
      ::close(fd);
    });
  }
  ~RawServer() {
    ::shutdown(listen_, SHUT_RDWR);
    thread_.join();
    ::close(listen_);
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

 private:
  int listen_ = -1;
  unsigned short port_ = 0;
  std::thread thread_;
};

struct ClientOnFixture {
  test::ServerFixture& fx;
  http::Client client;
  explicit ClientOnFixture(test::ServerFixture& f, http::ClientOptions o = {})
      : fx(f), client(f.io().get_executor(), std::move(o)) {}
  boost::system::result<http::ClientResponse> send(http::ClientRequest r) {
    return fx.run([&]() { return client.send(r); });
  }
};

}  // namespace

TEST_CASE("client sends method, target, headers and body; reads status, headers and body") {
  test::ServerFixture fx(slow_echo());
  http::ClientOptions o;
  o.user_agent = "aad-pod-identity/test";
  ClientOnFixture c(fx, o);
  http::ClientRequest r;
  r.method = http::Verb::post;
  r.url = fx.url("/p/a%20th?x=1&y=%2F");
  r.headers = {{"X-Custom", "v"}};
  r.body = "payload";
  auto res = c.send(r);
  REQUIRE(res);
  CHECK(res->status == 201);
  CHECK(res->body == "POST /p/a%20th?x=1&y=%2F payload");
  CHECK(res->header("X-User-Agent") == "aad-pod-identity/test");
  CHECK(res->header("X-Host") == "127.0.0.1:" + std::to_string(fx.port()));
  CHECK(res->header("x-custom") == "v");
}

TEST_CASE("client reuses a keep-alive connection") {
  test::ServerFixture fx(slow_echo());
  ClientOnFixture c(fx);
  for (int i = 0; i < 5; ++i) REQUIRE(c.send(test::get_request_to(fx.url("/n"))));
  CHECK(c.client.connections_opened() == 1);
  CHECK(c.client.idle_connections() == 1);
}

TEST_CASE("client reconnects when the server closed a pooled connection") {
  http::ServerOptions so;
  so.idle_timeout = 100ms;
  test::ServerFixture fx(slow_echo(), so);
  ClientOnFixture c(fx);
  REQUIRE(c.send(test::get_request_to(fx.url("/a"))));
  std::this_thread::sleep_for(400ms);  // the server drops the idle connection meanwhile
  auto res = c.send(test::get_request_to(fx.url("/b")));
  REQUIRE(res);
  CHECK(res->body.find("/b") != std::string::npos);
  CHECK(c.client.connections_opened() == 2);
}

TEST_CASE("per-request timeout") {
  test::ServerFixture fx(slow_echo(5s));
  ClientOnFixture c(fx);
  auto res = c.send(test::get_request_to(fx.url("/slow"), 200ms));
  REQUIRE_FALSE(res);
  CHECK(res.error() == boost::beast::error::timeout);
}

TEST_CASE("connection errors and bad URLs come back as errors") {
  test::ServerFixture fx(slow_echo());
  ClientOnFixture c(fx);
  // A port that was just free: bind, read the port, close.
  int port;
  {
    asio::ip::tcp::acceptor a(fx.io(), {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  auto refused = c.send(test::get_request_to("http://127.0.0.1:" + std::to_string(port) + "/"));
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == asio::error::connection_refused);
  CHECK_FALSE(c.send(test::get_request_to("not a url")));
  CHECK_FALSE(c.send(test::get_request_to("ftp://127.0.0.1/")));
}

TEST_CASE("client rejects a response body over its limit") {
  auto big = [](http::Request& req, const http::RequestContext&) -> asio::awaitable<http::Response> {
    co_return http::make_response(req, http::Status::ok, std::string(10000, 'x'));
  };
  test::ServerFixture fx(big);
  http::ClientOptions o;
  o.body_limit = 1000;
  ClientOnFixture c(fx, o);
  auto res = c.send(test::get_request_to(fx.url("/")));
  REQUIRE_FALSE(res);
  CHECK(res.error() == http::bhttp::error::body_limit);
}

TEST_CASE("client reads no body after a HEAD response and reuses the connection") {
  // The HEAD answer announces the GET body's length but (correctly) sends none.
  RawServer upstream({"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-Head: yes\r\n\r\n",
                      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"});
  test::ServerFixture fx(slow_echo());
  ClientOnFixture c(fx);
  auto head = test::get_request_to(upstream.url("/h"), 5s);
  head.method = http::Verb::head;
  auto res = c.send(head);
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->header("Content-Length") == "1234");
  CHECK(res->header("X-Head") == "yes");
  CHECK(res->body.empty());
  auto get = c.send(test::get_request_to(upstream.url("/g"), 5s));
  REQUIRE(get);
  CHECK(get->body == "ok");
  CHECK(c.client.connections_opened() == 1);
  c.client.close_idle();
}
