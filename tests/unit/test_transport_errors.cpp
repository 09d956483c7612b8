#include <catch2/catch.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <vector>

#include "azure/transport.hpp"
#include "support/server_fixture.hpp"

using namespace aad;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

http::Handler ok_handler() {
  return [](http::Request& req, const http::RequestContext&) -> asio::awaitable<http::Response> {
    co_return http::make_response(req, http::Status::ok, "ok");
  };
}

}  // namespace

TEST_CASE("a transport error names the host and port it could not reach") {
  test::ServerFixture fx(ok_handler());  // for its io_context thread
  http::Client client(fx.io().get_executor(), {});
  azure::Cancellation cancellable;
  for (const azure::Cancellation* cancel : std::vector<const azure::Cancellation*>{&azure::Cancellation::none(), &cancellable}) {
    INFO((cancel->cancellable() ? "cancellable" : "not cancellable"));
    // Name resolution fails (.invalid never resolves, RFC 6761).
    auto unresolvable = test::get_request_to("https://no-such-host.invalid/tenant/oauth2/v2.0/token", 10s);
    auto r = fx.run([&] { return azure::send_request(client, unresolvable, *cancel); });
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().kind == azure::Error::Kind::transport);
    CHECK_THAT(r.error().describe(), Catch::Contains("no-such-host.invalid:443: "));
    // Connection refused on loopback: a port that was just free.
    int port;
    {
      asio::ip::tcp::acceptor a(fx.io(), {asio::ip::make_address("127.0.0.1"), 0});
      port = a.local_endpoint().port();
    }
    auto refused_request = test::get_request_to("http://127.0.0.1:" + std::to_string(port) + "/x?secret=1", 10s);
    auto refused = fx.run([&] { return azure::send_request(client, refused_request, *cancel); });
    REQUIRE_FALSE(refused.has_value());
    CHECK_THAT(refused.error().describe(), Catch::Contains("127.0.0.1:" + std::to_string(port) + ": "));
    CHECK_THAT(refused.error().describe(), !Catch::Contains("secret"));  // host and port only
  }
  // A reachable server is still just a response.
  auto fine = test::get_request_to(fx.url("/"), 10s);
  auto ok = fx.run([&] { return azure::send_request(client, fine, azure::Cancellation::none()); });
  REQUIRE(ok.has_value());
  CHECK(ok->status == 200);
}
