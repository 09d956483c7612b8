// Suite nmi: the iptables redirect against the real iptables, inside a network namespace of
// its own. meson runs this binary under `unshare --net` (root), and every test first checks it
// is not in the host's namespace, so the host's own rules are never touched.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "identity/nmi/command.hpp"
#include "identity/nmi/redirector.hpp"

using namespace aad::identity::nmi;
using namespace std::chrono_literals;

namespace {

// The parent (meson, or the shell that ran `unshare --net`) is in the namespace this test must
// not touch; ours has to be a different one. When in doubt, refuse.
bool in_own_network_namespace() {
  struct stat self {}, parent {};
  auto parent_ns = "/proc/" + std::to_string(getppid()) + "/ns/net";
  if (stat("/proc/self/ns/net", &self) != 0 || stat(parent_ns.c_str(), &parent) != 0) return false;
  return self.st_ino != parent.st_ino;
}

std::string iptables_list(const std::string& chain) {
  return run_command({"iptables", "-w", "-t", "nat", "-S", chain}).out;
}

std::string expected_listing(const RedirectSpec& spec) {
  std::string out;
  for (const auto& line : expected_chain(spec)) out += line + "\n";
  return out;
}

RedirectSpec spec() { return make_redirect_spec("169.254.169.254", 80, "127.0.0.1", 2579); }

template <typename Pred>
bool eventually(Pred pred, std::chrono::seconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

}  // namespace

TEST_CASE("redirect: installed exactly as v1.8.17 lists it, jump first in PREROUTING, removed on stop") {
  REQUIRE(in_own_network_namespace());
  run_command({"ip", "link", "set", "lo", "up"});
  // Someone else's rule already in PREROUTING: our jump must go before it.
  REQUIRE(run_command({"iptables", "-w", "-t", "nat", "-A", "PREROUTING", "-p", "udp", "-j", "RETURN"}).ok());
  Redirector r({spec(), 200ms, false});
  std::string error;
  REQUIRE(r.ensure(error));
  CHECK(iptables_list("aad-metadata") == expected_listing(spec()));
  auto prerouting = iptables_list("PREROUTING");
  CHECK(prerouting.find("-A PREROUTING -j aad-metadata\n-A PREROUTING -p udp -j RETURN") != std::string::npos);
  // Idempotent: nothing to repair, nothing duplicated.
  REQUIRE(r.ensure(error));
  CHECK(iptables_list("aad-metadata") == expected_listing(spec()));
  r.remove();
  CHECK_FALSE(run_command({"iptables", "-w", "-t", "nat", "-S", "aad-metadata"}).ok());
  CHECK(iptables_list("PREROUTING").find("aad-metadata") == std::string::npos);
  CHECK(iptables_list("PREROUTING").find("-p udp -j RETURN") != std::string::npos);  // others' rules stay
  run_command({"iptables", "-w", "-t", "nat", "-D", "PREROUTING", "-p", "udp", "-j", "RETURN"});
}

TEST_CASE("redirect: drift (flushed chain, foreign rule, lost jump) is repaired by the periodic check") {
  REQUIRE(in_own_network_namespace());
  bool installed = false;
  auto s = make_redirect_spec("169.254.169.254", 80, "0.0.0.0", 3000);  // 0.0.0.0 -> DNAT to 127.0.0.1
  Redirector r({s, 100ms, false}, run_command, [&] { installed = true; });
  r.start();
  REQUIRE(eventually([&] { return installed; }));
  CHECK(iptables_list("aad-metadata").find("--to-destination 127.0.0.1:3000") != std::string::npos);

  REQUIRE(run_command({"iptables", "-w", "-t", "nat", "-F", "aad-metadata"}).ok());
  CHECK(eventually([&] { return iptables_list("aad-metadata") == expected_listing(s); }));
  REQUIRE(run_command({"iptables", "-w", "-t", "nat", "-I", "aad-metadata", "1", "-j", "ACCEPT"}).ok());
  CHECK(eventually([&] { return iptables_list("aad-metadata") == expected_listing(s); }));
  REQUIRE(run_command({"iptables", "-w", "-t", "nat", "-D", "PREROUTING", "-j", "aad-metadata"}).ok());
  CHECK(eventually([&] { return iptables_list("PREROUTING").find("-A PREROUTING -j aad-metadata") != std::string::npos; }));
  CHECK(r.repairs() >= 3);

  r.stop();
  CHECK_FALSE(run_command({"iptables", "-w", "-t", "nat", "-S", "aad-metadata"}).ok());
  CHECK(iptables_list("PREROUTING").find("aad-metadata") == std::string::npos);
}

TEST_CASE("conntrack deletion towards IMDS succeeds when there is nothing to delete") {
  REQUIRE(in_own_network_namespace());
  Redirector r({spec(), 1s, true});
  std::string error;
  CHECK(r.delete_conntrack(error));
  CHECK(error.empty());
}

TEST_CASE("a failing iptables is reported with the command, not fatal") {
  REQUIRE(in_own_network_namespace());
  int calls = 0;
  Redirector r({spec(), 1s, false}, [&](const std::vector<std::string>& argv) {
    ++calls;
    CommandResult res;
    res.exit_code = argv.back() == "PREROUTING" ? 4 : 1;
    res.err = "iptables: Permission denied (you must be root).";
    return res;
  });
  std::string error;
  CHECK_FALSE(r.ensure(error));
  CHECK_THAT(error, Catch::Contains("iptables -w -t nat -S PREROUTING") && Catch::Contains("Permission denied"));
  CHECK(calls == 2);
}

// Hidden ([.]): run by tests/nmi/iptables_wrapper_test.sh in a network and mount namespace where
// `iptables` is the image's tools/image/iptables-wrapper, with AAD_EXPECT_IPTABLES_BACKEND naming
// the backend (legacy or nft) the wrapper must pick. There the parent shell shares our network
// namespace, so the guard compares with the host's, whose inode the script passes in.
TEST_CASE("redirect: lands in the backend the iptables wrapper picked", "[.][wrapper]") {
  struct stat self {};
  const char* host = std::getenv("AAD_HOST_NETNS_INODE");
  REQUIRE(host != nullptr);
  REQUIRE(stat("/proc/self/ns/net", &self) == 0);
  REQUIRE(std::to_string(self.st_ino) != host);
  const char* env = std::getenv("AAD_EXPECT_IPTABLES_BACKEND");
  REQUIRE(env != nullptr);
  const std::string expected = env, other = expected == "legacy" ? "nft" : "legacy";
  std::atomic<bool> installed = false;
  Redirector r({spec(), 200ms, false}, run_command, [&] { installed = true; });
  r.start();  // logs `iptables --version` first: the wrapper's first call
  REQUIRE(eventually([&] { return installed.load(); }));
  // No `-t nat`: iptables-legacy-save would create the legacy table just by being asked.
  auto mine = run_command({"iptables-" + expected + "-save"}).out;
  CHECK_THAT(mine, Catch::Contains(":aad-metadata - [0:0]") && Catch::Contains("-A PREROUTING -j aad-metadata"));
  CHECK_THAT(run_command({"iptables-" + other + "-save"}).out, !Catch::Contains("aad-metadata"));
  r.stop();
  CHECK_THAT(run_command({"iptables-" + expected + "-save"}).out, !Catch::Contains("aad-metadata"));
}
