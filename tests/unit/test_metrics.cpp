#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/metrics.hpp"

using namespace aad::metrics;

namespace {
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}
}  // namespace

TEST_CASE("counters, gauges and histograms render in the Prometheus text format") {
  Registry r;
  auto& ops = r.counter("aadpodidentity_imds_operations_count", "IMDS calls", {"operation_type", "status_code"});
  ops.with({"token", "200"}).inc();
  ops.with({"token", "200"}).inc(2);
  ops.with({"token", "500"}).inc();
  r.gauge("queue_depth", "Items waiting").get().set(4.5);
  auto& h = r.histogram("latency_seconds", "Request latency", {0.1, 0.5, 1}, {"route"});
  h.with({"token"}).observe(0.05);
  h.with({"token"}).observe(0.5);
  h.with({"token"}).observe(3);

  std::vector<std::string> expected = {
      "# HELP aadpodidentity_imds_operations_count IMDS calls",
      "# TYPE aadpodidentity_imds_operations_count counter",
      R"(aadpodidentity_imds_operations_count{operation_type="token",status_code="200"} 3)",
      R"(aadpodidentity_imds_operations_count{operation_type="token",status_code="500"} 1)",
      "# HELP latency_seconds Request latency",
      "# TYPE latency_seconds histogram",
      R"(latency_seconds_bucket{route="token",le="0.1"} 1)",
      R"(latency_seconds_bucket{route="token",le="0.5"} 2)",
      R"(latency_seconds_bucket{route="token",le="1"} 2)",
      R"(latency_seconds_bucket{route="token",le="+Inf"} 3)",
      R"(latency_seconds_sum{route="token"} 3.55)",
      R"(latency_seconds_count{route="token"} 3)",
      "# HELP queue_depth Items waiting",
      "# TYPE queue_depth gauge",
      "queue_depth 4.5",
  };
  CHECK(lines_of(r.render()) == expected);
}

TEST_CASE("label values and help text are escaped") {
  Registry r;
  r.counter("c_total", "line one\nback\\slash", {"path"}).with({"/a\"b\\c\nd"}).inc();
  auto lines = lines_of(r.render());
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == R"(# HELP c_total line one\nback\\slash)");
  CHECK(lines[2] == R"(c_total{path="/a\"b\\c\nd"} 1)");
}

TEST_CASE("registration mistakes are programming errors") {
  Registry r;
  r.counter("dup", "x");
  CHECK_THROWS_AS(r.gauge("dup", "y"), std::logic_error);
  CHECK_THROWS_AS(r.counter("bad-name", "x"), std::logic_error);
  CHECK_THROWS_AS(r.histogram("h", "x", {1, 0.5}), std::logic_error);
  auto& f = r.counter("labelled", "x", {"a"});
  CHECK_THROWS_AS(f.with({}), std::logic_error);
  CHECK(exponential_buckets(0.5, 2, 4) == std::vector<double>{0.5, 1, 2, 4});
  CHECK(format_value(1e-3) == "0.001");
}
