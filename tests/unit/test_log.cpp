#include <catch2/catch.hpp>
#include <boost/json/parse.hpp>
#include <regex>
#include <string>
#include <vector>

#include "core/log.hpp"

using namespace aad;

namespace {
struct Capture {
  std::vector<std::string> lines;
  explicit Capture(log::Format f, int v = 0) {
    log::Config c;
    c.format = f;
    c.verbosity = v;
    c.sink = [this](std::string_view l) { lines.emplace_back(l); };
    log::configure(std::move(c));
  }
  ~Capture() { log::configure({}); }
};
}  // namespace

TEST_CASE("text lines follow klog's header and key/value layout") {
  auto loc = std::source_location::current();
  auto line = log::format_line(log::Format::text, log::Severity::warning, 0, "token fetched", "",
                               {{"pod", "default/demo"}, {"attempt", 3}, {"cached", true}}, loc,
                               1764778706.123456, 4242);
  std::regex klog(R"(W\d{4} \d{2}:\d{2}:\d{2}\.\d{6}\s+4242 test_log\.cpp:\d+\] "token fetched" pod="default/demo" attempt=3 cached=true)");
  CHECK(std::regex_match(line, klog));
}

TEST_CASE("json lines carry ts, v, msg, err and the key/values") {
  Capture cap(log::Format::json, 2);
  log::error("IMDS call failed", "connection refused", {{"status", 503}, {"resource", "https://vault.azure.net"}});
  log::debug(2, "verbose detail", {{"k", "v"}});
  REQUIRE(cap.lines.size() == 2);
  auto obj = boost::json::parse(cap.lines[0]).as_object();
  CHECK(obj.at("msg").as_string() == "IMDS call failed");
  CHECK(obj.at("err").as_string() == "connection refused");
  CHECK(obj.at("status").as_int64() == 503);
  CHECK(obj.at("resource").as_string() == "https://vault.azure.net");
  CHECK(obj.at("v").as_int64() == 0);
  CHECK(obj.at("ts").is_double());
  CHECK(boost::json::parse(cap.lines[1]).as_object().at("v").as_int64() == 2);
}

TEST_CASE("verbosity gates debug lines") {
  Capture cap(log::Format::text, 1);
  log::debug(1, "shown");
  log::debug(2, "hidden");
  log::info("always");
  REQUIRE(cap.lines.size() == 2);
  CHECK(cap.lines[0].find("shown") != std::string::npos);
  CHECK(cap.lines[1].find("always") != std::string::npos);
}

TEST_CASE("secrets never reach a log line, in either format") {
  for (auto format : {log::Format::text, log::Format::json}) {
    Capture cap(format);
    log::info("request body client_secret=hunter2&resource=x",
              {{"access_token", "opaque-token-value"}, {"header", "Bearer abc123"}});
    REQUIRE(cap.lines.size() == 1);
    CHECK(cap.lines[0].find("hunter2") == std::string::npos);
    CHECK(cap.lines[0].find("opaque-token-value") == std::string::npos);
    CHECK(cap.lines[0].find("abc123") == std::string::npos);
    CHECK(cap.lines[0].find("resource=x") != std::string::npos);
  }
}

TEST_CASE("numbers and bools under a sensitive key stay valid JSON and are shown") {
  Capture cap(log::Format::json);
  log::info("token cache", {{"token_cache", true}, {"token_count", 3}, {"token", "opaque-token-value"}});
  REQUIRE(cap.lines.size() == 1);
  auto obj = boost::json::parse(cap.lines[0]).as_object();
  CHECK(obj.at("token_cache").as_bool());
  CHECK(obj.at("token_count").as_int64() == 3);
  CHECK(obj.at("token").as_string() != "opaque-token-value");
  CHECK(cap.lines[0].find("opaque-token-value") == std::string::npos);
}

TEST_CASE("unknown log format is an error") {
  CHECK(log::parse_format("json") == log::Format::json);
  CHECK_THROWS_WITH(log::parse_format("xml"), Catch::Contains("unknown log format \"xml\""));
}
