#include <catch2/catch.hpp>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>

#include "core/http_client.hpp"
#include "core/tls.hpp"
#include "support/server_fixture.hpp"
#include "support/test_certs.hpp"

using namespace aad;
namespace asio = boost::asio;

namespace {

http::Handler hello() {
  return [](http::Request& req, const http::RequestContext& ctx) -> asio::awaitable<http::Response> {
    co_return http::make_response(req, http::Status::ok, ctx.tls ? "secure hello" : "plain hello");
  };
}

http::ServerOptions tls_server(bool require_client_cert = false) {
  const auto& pki = test::test_pki();
  tls::ServerConfig sc;
  sc.cert_pem = pki.server.cert_pem;
  sc.key_pem = pki.server.key_pem;
  if (require_client_cert) sc.client_ca_pem = pki.ca.cert_pem;
  http::ServerOptions o;
  o.tls = tls::make_server_context(sc);
  return o;
}

boost::system::result<http::ClientResponse> get(test::ServerFixture& fx, tls::ClientConfig tc,
                                                const std::string& host = "127.0.0.1") {
  http::ClientOptions o;
  o.tls = std::move(tc);
  http::Client client(fx.io().get_executor(), o);
  auto url = "https://" + host + ":" + std::to_string(fx.port()) + "/";
  return fx.run([&]() { return client.send(test::get_request_to(url)); });
}

}  // namespace

TEST_CASE("HTTPS with the CA given as PEM data or as a file") {
  test::ServerFixture fx(hello(), tls_server());
  const auto& pki = test::test_pki();
  auto by_data = get(fx, {.ca_pem = pki.ca.cert_pem});
  REQUIRE(by_data);
  CHECK(by_data->body == "secure hello");
  auto ca_file = test::write_temp_file(pki.ca.cert_pem);
  auto by_file = get(fx, {.ca_file = ca_file});
  REQUIRE(by_file);
  CHECK(by_file->status == 200);
  // SNI + DNS name verification through "localhost".
  CHECK(get(fx, {.ca_pem = pki.ca.cert_pem}, "localhost"));
  ::unlink(ca_file.c_str());
}

TEST_CASE("a server signed by another CA is refused unless verification is off") {
  test::ServerFixture fx(hello(), tls_server());
  const auto& pki = test::test_pki();
  auto res = get(fx, {.ca_pem = pki.other_ca.cert_pem});
  REQUIRE_FALSE(res);
  CHECK(res.error().category() == asio::error::get_ssl_category());
  CHECK(res.error().message().find("certificate verify failed") != std::string::npos);
  CHECK(get(fx, {.ca_pem = pki.other_ca.cert_pem, .insecure_skip_verify = true}));
}

TEST_CASE("client certificate authentication") {
  test::ServerFixture fx(hello(), tls_server(true));
  const auto& pki = test::test_pki();
  CHECK_FALSE(get(fx, {.ca_pem = pki.ca.cert_pem}));
  auto res = get(fx, {.ca_pem = pki.ca.cert_pem, .cert_pem = pki.client.cert_pem, .key_pem = pki.client.key_pem});
  REQUIRE(res);
  CHECK(res->body == "secure hello");
  // A client certificate from an unknown CA is refused.
  CHECK_FALSE(get(fx, {.ca_pem = pki.ca.cert_pem, .cert_pem = pki.other_ca.cert_pem, .key_pem = pki.other_ca.key_pem}));
}

TEST_CASE("plain HTTP to a TLS server fails cleanly and the server keeps serving") {
  test::ServerFixture fx(hello(), tls_server());
  auto out = fx.raw_exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(out.find("hello") == std::string::npos);
  CHECK(get(fx, {.ca_pem = test::test_pki().ca.cert_pem}));
}

TEST_CASE("broken TLS material is a clear configuration error") {
  CHECK_THROWS_WITH(tls::make_client_context({.ca_pem = "not a certificate"}),
                    Catch::StartsWith("tls: certificate authority data:"));
  CHECK_THROWS_WITH(tls::make_client_context({.ca_file = "/nonexistent/ca.crt"}),
                    Catch::StartsWith("tls: certificate authority file /nonexistent/ca.crt:"));
  CHECK_THROWS_WITH(tls::make_client_context({.cert_pem = test::test_pki().client.cert_pem}),
                    Catch::Contains("certificate and key must be given together"));
  CHECK_THROWS_WITH(tls::make_server_context({}), Catch::Contains("server certificate is required"));
}
