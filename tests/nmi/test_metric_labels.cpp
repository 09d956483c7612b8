// Suite nmi, unit part: labels of NMI's metrics that come from requests stay bounded, whatever
// callers send (a caller inventing resources must not grow memory or /metrics without limit).
#include <catch2/catch.hpp>
#include <set>

#include "nmi/nmi_harness.hpp"

using namespace aad;
using namespace aad::test;

namespace {

std::set<std::string> resource_labels(const nmi::NmiMetrics& m) {
  std::set<std::string> out;
  for (const auto& [values, series] : m.operations.series()) out.insert(values.at(3));
  return out;
}

std::string resource(int i) { return "https://r" + std::to_string(i) + ".example/" + std::string(200, 'b'); }

}  // namespace

TEST_CASE("resource label: only for answers with a token, at most 50 distinct values, then \"other\"") {
  NmiHarness t;
  auto bound = make_pod("ns", "bound", "10.0.0.1", "sel");
  t.state.add(bound);
  t.bind(bound, "id-a", "client-a");
  t.state.add(make_pod("ns", "unbound", "10.0.0.2", ""));
  const std::string token = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=";
  for (int i = 0; i < 2000; ++i) {
    REQUIRE(t.call(token + resource(i), "10.0.0.1").result_int() == 200);
    REQUIRE(t.call(token + resource(100000 + i), "10.0.0.2").result_int() == 404);
  }
  auto labels = resource_labels(t.metrics);
  CHECK(labels.size() == 52);  // the first 50 answered, "other", "" for the 404s
  CHECK(labels.count(resource(0)));
  CHECK(labels.count(resource(49)));
  CHECK_FALSE(labels.count(resource(50)));
  CHECK(labels.count("other"));
  CHECK(labels.count(""));
  for (int i = 0; i < 2000; ++i) CHECK_FALSE(labels.count(resource(100000 + i)));
  // Two status codes; the 200s spread over 51 resource values, the 404s over one.
  CHECK(t.metrics.operations.series().size() == 52);
  CHECK(t.registry.render().size() < 1000000);  // without the bound: ~25 MB (4 000 resources of 230 bytes)
}

TEST_CASE("label budget: unprintable or overlong values are \"other\", known values stay") {
  nmi::LabelBudget b(2, 16);
  CHECK(b.admit("") == "");
  CHECK(b.admit("a\x01z") == "other");
  CHECK(b.admit(std::string("a\0z", 3)) == "other");
  CHECK(b.admit("caf\xc3\xa9") == "other");
  CHECK(b.admit(std::string(17, 'x')) == "other");
  CHECK(b.admit("one") == "one");
  CHECK(b.admit("two") == "two");
  CHECK(b.admit("three") == "other");
  CHECK(b.admit("one") == "one");
  CHECK(b.size() == 2);
}

TEST_CASE("/host/token: the namespace label comes from the pod found, not from the header") {
  NmiHarness t;
  for (int i = 0; i < 100; ++i) {
    auto r = t.call("/host/token/?resource=x", "127.0.0.1", {{"podname", "p"}, {"podns", "invented-" + std::to_string(i)}});
    REQUIRE(r.result_int() == 404);
  }
  REQUIRE(t.metrics.operations.series().size() == 1);
  CHECK(t.metrics.operations.series().begin()->first.at(2) == "");
}
