// ListWatch/Cache against a scripted local apiserver: HTTP 410 on watch open -> relist with a
// diff (delete/update/add), bookmarks move the resourceVersion, ERROR 410 events relist too.
#include "catch_kube.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "kube/cache.hpp"
#include "support/server_fixture.hpp"

using namespace aad;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

std::string cm(const std::string& name, const std::string& rv) {
  return R"({"metadata":{"name":")" + name + R"(","namespace":"n","resourceVersion":")" + rv + R"("}})";
}

asio::awaitable<void> sleep_ms(int ms) {
  asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
  co_await t.async_wait(asio::use_awaitable);
}

}  // namespace

TEST_CASE("list-watch on a scripted server: 410 relists with a diff, bookmarks, ERROR events") {
  int lists = 0;
  std::vector<std::string> watches;
  test::ServerFixture fx([&](http::Request& req, const http::RequestContext&) -> asio::awaitable<http::Response> {
    std::string target(req.target());
    auto json = [&](http::Status s, const std::string& body) {
      return http::make_response(req, s, body, "application/json");
    };
    if (target.find("watch=1") == std::string::npos) {
      ++lists;
      if (lists == 1)
        co_return json(http::Status::ok, R"({"metadata":{"resourceVersion":"10"},"items":[)" + cm("a", "1") + "," +
                                             cm("b", "1") + "]}");
      co_return json(http::Status::ok, R"({"metadata":{"resourceVersion":"20"},"items":[)" + cm("b", "2") + "," +
                                           cm("c", "1") + "]}");
    }
    auto rv = target.substr(target.find("resourceVersion=") + 16);
    rv = rv.substr(0, rv.find('&'));
    watches.push_back(rv);
    if (rv == "10")  // too old: HTTP 410
      co_return json(http::Status::gone, R"({"kind":"Status","code":410,"reason":"Expired","message":"too old"})");
    if (rv == "20")  // a bookmark, an event, then the watch ends
      co_return json(http::Status::ok,
                     R"({"type":"BOOKMARK","object":{"kind":"ConfigMap","metadata":{"resourceVersion":"25"}}})"
                     "\n"
                     R"({"type":"ADDED","object":)" + cm("d", "26") + "}\n");
    if (rv == "26")  // expired again, as an ERROR event this time
      co_return json(http::Status::ok,
                     R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"old"}})"
                     "\n");
    co_await sleep_ms(200);
    co_return json(http::Status::ok, "");
  });
  auto summary = fx.run([&]() -> asio::awaitable<std::vector<std::string>> {
    kube::Config cfg;
    cfg.server = fx.url("/");
    cfg.server.pop_back();
    kube::ClientOptions co;
    co.qps = 0;
    kube::Client client(co_await asio::this_coro::executor, cfg, co);
    kube::InformerOptions o;
    o.ns = "n";
    o.backoff.initial = 10ms;
    o.backoff.max = 50ms;
    kube::Cache<kube::ConfigMap> cache(client, o);
    std::vector<std::string> events;
    kube::Cache<kube::ConfigMap>::Handlers h;
    h.on_add = [&](const kube::ConfigMap& c) { events.push_back("add " + c.meta.name); };
    h.on_update = [&](const kube::ConfigMap&, const kube::ConfigMap& c) { events.push_back("update " + c.meta.name); };
    h.on_delete = [&](const kube::ConfigMap& c) { events.push_back("delete " + c.meta.name); };
    cache.add_handlers(h);
    bool finished = false;
    asio::co_spawn(co_await asio::this_coro::executor, cache.run(), [&](std::exception_ptr) { finished = true; });
    // Stop only once the third list's diff reached the handlers (the server counting the request
    // is not enough: the response may still be on its way).
    for (int i = 0; i < 500 && (lists < 3 || events.size() < 7); ++i) co_await sleep_ms(10);
    cache.stop();
    while (!finished) co_await sleep_ms(5);
    events.push_back("gone " + std::to_string(cache.list_watch().gone()));
    events.push_back("bookmarks " + std::to_string(cache.list_watch().bookmarks()));
    co_return events;
  });
  REQUIRE(lists >= 3);
  REQUIRE(watches.size() >= 3);
  CHECK(watches[0] == "10");
  CHECK(watches[1] == "20");
  CHECK(watches[2] == "26");  // the bookmark (25) then the event (26) moved the resourceVersion
  // first list; relist after the HTTP 410 (diff: a vanished, c new, b changed); a watch event;
  // relist after the ERROR 410 event returns {b@2, c@1} again: only d vanished.
  std::vector<std::string> want{"add a", "add b", "delete a", "add c", "update b", "add d", "delete d"};
  REQUIRE(summary.size() >= want.size() + 2);
  CHECK(std::vector<std::string>(summary.begin(), summary.begin() + 7) == want);
  auto counter = [&](const std::string& name) {
    for (const auto& s : summary)
      if (s.rfind(name + " ", 0) == 0) return std::stoi(s.substr(name.size() + 1));
    return -1;
  };
  CHECK(counter("gone") >= 2);
  CHECK(counter("bookmarks") >= 1);
}
