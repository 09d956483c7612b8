#include <catch2/catch.hpp>

#include "core/duration.hpp"

using namespace std::chrono_literals;
using aad::format_go_duration;
using aad::parse_go_duration;

TEST_CASE("Go durations parse like time.ParseDuration") {
  CHECK(parse_go_duration("15s") == 15s);
  CHECK(parse_go_duration("3m") == 3min);
  CHECK(parse_go_duration("1h30m") == 90min);
  CHECK(parse_go_duration("300ms") == 300ms);
  CHECK(parse_go_duration("1.5s") == 1500ms);
  CHECK(parse_go_duration("3600s") == 1h);
  CHECK(parse_go_duration("0") == 0s);
  CHECK(parse_go_duration("-2s") == -2s);
  CHECK(parse_go_duration("10us") == 10us);
}

TEST_CASE("malformed durations are rejected") {
  for (auto bad : {"", "s", "10", "abc", "1x", "1.2.3s", "--1s", "1s2", ".s"}) {
    INFO(bad);
    CHECK_FALSE(parse_go_duration(bad).has_value());
  }
}

TEST_CASE("durations format like Go's Duration.String") {
  CHECK(format_go_duration(15s) == "15s");
  CHECK(format_go_duration(3min) == "3m0s");
  CHECK(format_go_duration(1h) == "1h0m0s");
  CHECK(format_go_duration(100ms) == "100ms");
  CHECK(format_go_duration(0s) == "0s");
  CHECK(format_go_duration(1500ms) == "1.5s");
}
