#include "catch_azure.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/serialize.hpp>

#include "azure/retry.hpp"
#include "azure/token.hpp"
#include "azure/transport.hpp"
#include "fake_clock.hpp"
#include "support/async.hpp"

using namespace aad;
using namespace aad::azure;
using namespace std::chrono_literals;

namespace {
const SystemTime kNow = SystemTime(std::chrono::seconds(1700000000));
}

TEST_CASE("IMDS token body: every field kept as sent, expiry from expires_on string") {
  std::string body =
      R"({"access_token":"eyJ0.eyJ1.sig","client_id":"cid","expires_in":"86399","expires_on":"1700086399",)"
      R"("ext_expires_in":"86399","not_before":"1700000000","resource":"https://management.azure.com/","token_type":"Bearer"})";
  auto t = parse_token_response(body, kNow);
  REQUIRE(t);
  CHECK(t->access_token == "eyJ0.eyJ1.sig");
  CHECK(t->client_id == "cid");
  CHECK(t->resource == "https://management.azure.com/");
  CHECK(t->token_type == "Bearer");
  CHECK(t->expires_on == SystemTime(std::chrono::seconds(1700086399)));
  CHECK(t->raw.at("expires_in").is_string());
  CHECK(t->raw.at("not_before").as_string() == "1700000000");
  CHECK(boost::json::serialize(t->raw) == body);  // byte-compatible relay
}

TEST_CASE("expiry: number, numeric string, date strings, expires_in fallback") {
  struct Row {
    std::string field;
    long long expect;
  };
  for (auto row : {Row{R"("expires_on":1700003600)", 1700003600},
                   Row{R"("expires_on":"1700003600")", 1700003600},
                   Row{R"("expires_on":"11/14/2023 23:13:20 +00:00")", 1700003600},
                   Row{R"("expires_on":"11/14/2023 11:13:20 PM +00:00")", 1700003600},
                   Row{R"("expires_on":"11/15/2023 01:13:20 +02:00")", 1700003600},
                   Row{R"("expires_on":"2023-11-14T23:13:20Z")", 1700003600},
                   Row{R"("expires_in":"3600")", 1700003600},
                   Row{R"("expires_in":3600)", 1700003600},
                   Row{R"("expires_on":"garbage","expires_in":3600)", 1700003600}}) {
    INFO(row.field);
    auto t = parse_token_response(R"({"access_token":"a",)" + row.field + "}", kNow);
    REQUIRE(t);
    CHECK(std::chrono::duration_cast<std::chrono::seconds>(t->expires_on.time_since_epoch()).count() == row.expect);
  }
  CHECK_FALSE(parse_token_response(R"({"access_token":"a"})", kNow));
  CHECK_FALSE(parse_token_response(R"({"expires_in":"1"})", kNow));
  CHECK_FALSE(parse_token_response("not json", kNow));
  CHECK_FALSE(parse_token_response("[1]", kNow));
}

TEST_CASE("token errors: status, codes, AADSTS, classification") {
  auto imds = token_http_error(Upstream::imds, 400,
                               R"({"error":"invalid_request","error_description":"Identity not found"})", "", kNow);
  CHECK(imds.status == 400);
  CHECK(imds.code == "invalid_request");
  CHECK(imds.message == "Identity not found");
  CHECK_FALSE(imds.retryable);
  for (unsigned s : {404u, 408u, 410u, 429u, 500u, 503u}) {
    INFO(s);
    CHECK(token_http_error(Upstream::imds, s, "{}", "", kNow).retryable);
  }
  auto aad = token_http_error(
      Upstream::aad, 401,
      R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x\r\nCorrelation ID: y","error_codes":[7000215]})",
      "", kNow);
  CHECK(aad.code == "invalid_client");
  CHECK(aad.aad_codes == std::vector<std::int64_t>{7000215});
  CHECK(aad.message == "AADSTS7000215: Invalid client secret provided.");
  CHECK_FALSE(aad.retryable);
  auto desc_only = token_http_error(Upstream::aad, 400, R"({"error":"x","error_description":"AADSTS90002: no tenant"})",
                                    "", kNow);
  CHECK(desc_only.aad_codes == std::vector<std::int64_t>{90002});
  auto throttled = token_http_error(Upstream::aad, 429, "{}", "7", kNow);
  CHECK(throttled.retryable);
  REQUIRE(throttled.retry_after);
  CHECK(*throttled.retry_after == 7s);
  CHECK(token_http_error(Upstream::aad, 400, R"({"error":"temporarily_unavailable"})", "", kNow).retryable);
  auto text = token_http_error(Upstream::imds, 502, "Bad Gateway", "", kNow);
  CHECK(text.message == "Bad Gateway");
}

TEST_CASE("scope to resource") {
  CHECK(resource_from_scope("https://vault.azure.net/.default") == "https://vault.azure.net");
  CHECK(resource_from_scope("https://management.azure.com/") == "https://management.azure.com/");
}

TEST_CASE("retry: backoff sequence, Retry-After, budget, final errors, cancellation") {
  boost::asio::io_context io;
  test::FakeClock clock;
  RetryPolicy p;
  p.max_attempts = 5;
  p.initial_delay = 500ms;
  p.max_delay = 2000ms;
  p.total_budget = 60s;
  int calls = 0;
  auto failing = [&](unsigned status, std::optional<std::chrono::seconds> ra = std::nullopt) {
    return [&, status, ra]() -> boost::asio::awaitable<Result<Token>> {
      ++calls;
      Error e = token_http_error(Upstream::imds, status, "{}", "", clock.now());
      e.retry_after = ra;
      co_return e;
    };
  };

  SECTION("exponential, capped, then the last error") {
    auto r = test::run_async(io, retry_token(p, clock, {}, failing(503)));
    REQUIRE_FALSE(r);
    CHECK(r.error().status == 503);
    CHECK(calls == 5);
    CHECK(clock.sleeps == std::vector<Millis>{500ms, 1000ms, 2000ms, 2000ms});
  }
  SECTION("final errors are not retried") {
    auto r = test::run_async(io, retry_token(p, clock, {}, failing(400)));
    REQUIRE_FALSE(r);
    CHECK(calls == 1);
    CHECK(clock.sleeps.empty());
  }
  SECTION("Retry-After lengthens a delay") {
    p.max_attempts = 2;
    auto r = test::run_async(io, retry_token(p, clock, {}, failing(429, 5s)));
    REQUIRE_FALSE(r);
    CHECK(clock.sleeps == std::vector<Millis>{5000ms});
  }
  SECTION("the total budget bounds the time a caller is held") {
    p.total_budget = 2000ms;
    auto r = test::run_async(io, retry_token(p, clock, {}, failing(500)));
    REQUIRE_FALSE(r);
    CHECK(calls == 3);  // sleeps 500 + 1000; the next 2000 would pass the budget
    Millis slept{0};
    for (auto s : clock.sleeps) slept += s;
    CHECK(slept <= 2000ms);
  }
  SECTION("success after failures") {
    auto flaky = [&]() -> boost::asio::awaitable<Result<Token>> {
      if (++calls < 3) co_return token_http_error(Upstream::imds, 410, "{}", "", clock.now());
      co_return parse_token_response(R"({"access_token":"x","expires_in":"60"})", clock.now());
    };
    auto r = test::run_async(io, retry_token(p, clock, {}, flaky));
    REQUIRE(r);
    CHECK(calls == 3);
  }
  SECTION("cancellation during backoff ends the loop with a cancelled error") {
    Cancellation cancel;
    clock.on_sleep = [&] { cancel.cancel(); };
    auto r = test::run_async(io, retry_token(p, clock, cancel, failing(500)));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == Error::Kind::cancelled);
    CHECK(calls == 1);
  }
}

namespace {
boost::asio::awaitable<bool> sleep_with_cancel_after(Clock& clock, Millis sleep, Millis cancel_at) {
  Cancellation cancel;
  boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, cancel_at);
  t.async_wait([cancel](boost::system::error_code) { cancel.cancel(); });
  auto slept = co_await clock.sleep(sleep, cancel);
  co_return slept;
}
}  // namespace

TEST_CASE("cancellation: copies share the state; none() never cancels; SystemClock sleeps are cut short") {
  Cancellation a;
  Cancellation b = a;
  CHECK(a.cancellable());
  CHECK_FALSE(b.cancelled());
  b.cancel();
  CHECK(a.cancelled());
  Cancellation none = Cancellation::none();
  CHECK_FALSE(none.cancellable());
  none.cancel();
  CHECK_FALSE(Cancellation::none().cancelled());

  boost::asio::io_context io;
  CHECK_FALSE(test::run_async(io, sleep_with_cancel_after(system_clock(), 60s, 10ms)));
  CHECK(test::run_async(io, system_clock().sleep(1ms, Cancellation::none())));
  Cancellation done;
  done.cancel();
  CHECK_FALSE(test::run_async(io, system_clock().sleep(1ms, done)));
}

TEST_CASE("hostile numbers never throw or overflow") {
  // An AADSTS code too long for 64 bits is simply not recorded.
  auto huge = token_http_error(Upstream::aad, 400,
                               R"({"error":"invalid_request","error_description":"AADSTS99999999999999999999: nope"})",
                               "", kNow);
  CHECK(huge.status == 400);
  CHECK(huge.aad_codes.empty());
  // expires_on beyond what a time_point holds falls back to expires_in; both unusable is an error.
  auto far = parse_token_response(R"({"access_token":"t","expires_on":"99999999999999","expires_in":"60"})", kNow);
  REQUIRE(far);
  CHECK(far->expires_on == kNow + std::chrono::seconds(60));
  CHECK_FALSE(parse_token_response(R"({"access_token":"t","expires_on":1e300,"expires_in":"99999999999999"})", kNow));
  CHECK_FALSE(parse_token_response(R"({"access_token":"t","expires_on":"12/31/9999 11:59:59 PM +00:00"})", kNow));
}

TEST_CASE("Retry-After is capped at an hour") {
  CHECK(aad::azure::parse_retry_after("5", kNow) == std::chrono::seconds(5));
  CHECK(aad::azure::parse_retry_after("999999999", kNow) == std::chrono::seconds(3600));
  CHECK(aad::azure::parse_retry_after("Wed, 21 Oct 2300 07:28:00 GMT", kNow) == std::chrono::seconds(3600));
  CHECK_FALSE(aad::azure::parse_retry_after("soon", kNow));
}
