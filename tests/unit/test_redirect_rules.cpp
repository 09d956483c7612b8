#include <catch2/catch.hpp>

#include "identity/nmi/redirect_rules.hpp"

using namespace aad::identity::nmi;

namespace {
const auto kSpec = make_redirect_spec("169.254.169.254", 80, "127.0.0.1", 2579);
const std::string kInstalled =
    "-N aad-metadata\n"
    "-A aad-metadata ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination "
    "127.0.0.1:2579\n"
    "-A aad-metadata -j RETURN\n";
const std::string kPrerouting = "-P PREROUTING ACCEPT\n-A PREROUTING -j aad-metadata\n-A PREROUTING -j KUBE-SERVICES\n";

std::string joined(const Command& c) {
  std::string s;
  for (const auto& a : c) s += (s.empty() ? "" : " ") + a;
  return s;
}
}  // namespace

TEST_CASE("the chain as v1.8.17 lists it") {
  auto chain = expected_chain(kSpec);
  REQUIRE(chain.size() == 3);
  CHECK(chain[1] ==
        "-A aad-metadata ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination "
        "127.0.0.1:2579");
  CHECK(make_redirect_spec("169.254.169.254", 80, "0.0.0.0", 2579).target_ip == "127.0.0.1");
  CHECK(make_redirect_spec("169.254.169.254", 80, "10.0.0.5", 3000).target_ip == "10.0.0.5");
}

TEST_CASE("installed rules: no drift, no commands") {
  auto d = detect_drift(kSpec, true, kInstalled, kPrerouting);
  CHECK_FALSE(d.any());
  CHECK(repair_commands(kSpec, d).empty());
}

TEST_CASE("nothing installed: create chain, rules and jump at position 1") {
  auto d = detect_drift(kSpec, false, "", "-P PREROUTING ACCEPT\n");
  CHECK(d.chain_missing);
  CHECK(d.jump_missing);
  auto cmds = repair_commands(kSpec, d);
  REQUIRE(cmds.size() == 4);
  CHECK(joined(cmds[0]) == "iptables -w -t nat -N aad-metadata");
  CHECK(joined(cmds[1]) ==
        "iptables -w -t nat -A aad-metadata ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT "
        "--to-destination 127.0.0.1:2579");
  CHECK(joined(cmds[2]) == "iptables -w -t nat -A aad-metadata -j RETURN");
  CHECK(joined(cmds[3]) == "iptables -w -t nat -I PREROUTING 1 -j aad-metadata");
}

TEST_CASE("flushed or tampered chain is flushed and rewritten, jump kept") {
  for (const std::string& listing : {std::string("-N aad-metadata\n"),
                                     kInstalled + "-A aad-metadata -j ACCEPT\n",
                                     std::string("-N aad-metadata\n-A aad-metadata -j RETURN\n")}) {
    auto d = detect_drift(kSpec, true, listing, kPrerouting);
    CHECK(d.chain_wrong);
    CHECK_FALSE(d.jump_missing);
    auto cmds = repair_commands(kSpec, d);
    REQUIRE(cmds.size() == 3);
    CHECK(joined(cmds[0]) == "iptables -w -t nat -F aad-metadata");
  }
  // A different port is drift too.
  CHECK(detect_drift(make_redirect_spec("169.254.169.254", 80, "127.0.0.1", 2580), true, kInstalled, kPrerouting)
            .chain_wrong);
}

TEST_CASE("removal and route_localnet") {
  auto cmds = removal_commands();
  REQUIRE(cmds.size() == 3);
  CHECK(joined(cmds[0]) == "iptables -w -t nat -D PREROUTING -j aad-metadata");
  CHECK(joined(cmds[2]) == "iptables -w -t nat -X aad-metadata");
  CHECK(needs_route_localnet("127.0.0.1"));
  CHECK_FALSE(needs_route_localnet("10.240.0.4"));
}
