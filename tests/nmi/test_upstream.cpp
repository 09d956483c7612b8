// Suite nmi, unit part: the IMDS proxy over real sockets (a local server plays IMDS).
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "core/http_client.hpp"
#include "core/http_server.hpp"
#include "core/log.hpp"
#include "identity/nmi/imds_upstream.hpp"
#include "support/async.hpp"

using namespace aad;
namespace json = boost::json;

TEST_CASE("proxy: request relayed as is (no hop-by-hop, no X-Forwarded-For), answer relayed as is") {
  boost::asio::io_context io;
  std::optional<http::Request> seen;
  http::ServerOptions so;
  so.port = 0;
  http::Server imds(io.get_executor(), so, [&](http::Request& req, const http::RequestContext&) -> boost::asio::awaitable<http::Response> {
    seen = req;
    http::Response res{http::Status::conflict, 11};
    res.set("X-Ms-Request-Id", "abc");
    res.set(http::bhttp::field::content_type, "text/plain");
    res.body() = "upstream body";
    res.prepare_payload();
    co_return res;
  });
  imds.start();
  http::Client client(io.get_executor(), http::ClientOptions{});
  identity::nmi::HttpUpstream upstream(client, "http://127.0.0.1:" + std::to_string(imds.local_endpoint().port()) + "/");

  http::Request req{http::Verb::put, "/metadata/some/%2Fpath?a=1&b=%20", 11};
  req.set(http::bhttp::field::host, "169.254.169.254");
  req.set("Metadata", "true");
  req.set("X-Custom", "kept");
  req.set(http::bhttp::field::connection, "keep-alive");
  req.body() = "request body";
  req.prepare_payload();
  auto res = test::run_async(io, upstream.forward(req, "10.0.0.1:40000"));
  CHECK(res.result_int() == 409);
  CHECK(res.body() == "upstream body");
  CHECK(res["X-Ms-Request-Id"] == "abc");
  CHECK(res[http::bhttp::field::content_type] == "text/plain");
  REQUIRE(seen);
  CHECK(seen->method() == http::Verb::put);
  CHECK(seen->target() == "/metadata/some/%2Fpath?a=1&b=%20");
  CHECK((*seen)["Metadata"] == "true");
  CHECK((*seen)["X-Custom"] == "kept");
  CHECK(seen->body() == "request body");
  CHECK(seen->count("X-Forwarded-For") == 0);
  auto port = imds.local_endpoint().port();
  test::run_async(io, imds.shutdown(std::chrono::milliseconds(100)));

  // IMDS unreachable: 500 with a JSON error (row 13 of the status table) naming where IMDS was
  // looked for; the warning names the caller and IMDS, never the query.
  std::vector<std::string> lines;
  log::Config lc;
  lc.format = log::Format::json;
  lc.sink = [&](std::string_view l) { lines.emplace_back(l); };
  log::configure(std::move(lc));
  identity::nmi::HttpUpstream gone(client, "http://127.0.0.1:" + std::to_string(port));
  auto down = test::run_async(io, gone.forward(req, "10.0.0.1:40000"));
  log::configure({});
  CHECK(down.result_int() == 500);
  auto body = json::parse(down.body()).as_object();
  CHECK(body.at("error").as_string() == "internal_error");
  auto where = "127.0.0.1:" + std::to_string(port);
  CHECK_THAT(std::string(body.at("error_description").as_string()),
             Catch::StartsWith("failed to reach the instance metadata service at " + where + ": "));
  REQUIRE(lines.size() == 1);
  INFO(lines[0]);
  CHECK_THAT(lines[0], Catch::Contains(R"("peer":"10.0.0.1:40000")"));
  CHECK_THAT(lines[0], Catch::Contains(R"("upstream":")" + where + "\""));
  CHECK_THAT(lines[0], Catch::Contains(R"("path":"/metadata/some/%2Fpath")"));
  CHECK_THAT(lines[0], !Catch::Contains("a=1"));
}

TEST_CASE("proxy: IMDS host:port comes from the base URL once, the scheme giving the default port") {
  boost::asio::io_context io;
  http::Client client(io.get_executor(), http::ClientOptions{});
  CHECK(identity::nmi::HttpUpstream(client, "http://169.254.169.254").host_port() == "169.254.169.254:80");
  CHECK(identity::nmi::HttpUpstream(client, "http://169.254.169.254:8080/").host_port() == "169.254.169.254:8080");
  CHECK(identity::nmi::HttpUpstream(client, "https://imds.example").host_port() == "imds.example:443");
}

TEST_CASE("proxy: a HEAD answer keeps IMDS's Content-Length (the GET body's), with no body") {
  boost::asio::io_context io;
  http::ServerOptions so;
  so.port = 0;
  const std::string get_body = R"({"compute":{"name":"vm-1","location":"westeurope"}})";
  std::vector<http::Verb> methods;
  http::Server imds(io.get_executor(), so, [&](http::Request& req, const http::RequestContext&) -> boost::asio::awaitable<http::Response> {
    methods.push_back(req.method());
    co_return http::make_response(req, http::Status::ok, get_body, "application/json; charset=utf-8");
  });
  imds.start();
  http::Client client(io.get_executor(), http::ClientOptions{});
  identity::nmi::HttpUpstream upstream(client, "http://127.0.0.1:" + std::to_string(imds.local_endpoint().port()));
  for (auto verb : {http::Verb::head, http::Verb::get}) {
    INFO(http::bhttp::to_string(verb));
    http::Request req{verb, "/metadata/instance?api-version=2021-02-01", 11};
    req.set("Metadata", "true");
    auto res = test::run_async(io, upstream.forward(req, "10.0.0.1:40000"));
    CHECK(res.result_int() == 200);
    CHECK(res[http::bhttp::field::content_length] == std::to_string(get_body.size()));
    CHECK(res.body() == (verb == http::Verb::head ? "" : get_body));
  }
  CHECK(methods == std::vector<http::Verb>{http::Verb::head, http::Verb::get});
  test::run_async(io, imds.shutdown(std::chrono::milliseconds(100)));
}

TEST_CASE("hop-by-hop headers are recognised in any case") {
  using identity::nmi::is_hop_by_hop;
  CHECK(is_hop_by_hop("Connection"));
  CHECK(is_hop_by_hop("TRANSFER-ENCODING"));
  CHECK(is_hop_by_hop("host"));
  CHECK_FALSE(is_hop_by_hop("Metadata"));
  CHECK_FALSE(is_hop_by_hop("X-Forwarded-For-Not"));
}
