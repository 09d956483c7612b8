// Suite nmi, unit part: the kubenet refusal and the route_localnet warning.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "identity/nmi/node_checks.hpp"
#include "identity/nmi/redirect_rules.hpp"

using namespace aad::identity::nmi;
namespace fs = std::filesystem;

namespace {
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("nmi-checks-" + std::to_string(::getpid()) + "-" + std::to_string(rand()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  void write(const fs::path& rel, const std::string& text) {
    fs::create_directories((path / rel).parent_path());
    std::ofstream(path / rel) << text;
  }
};
}  // namespace

TEST_CASE("kubenet: refused when the kubelet config names the kubenet plugin, as the original") {
  CHECK(kubenet_refusal("KUBELET_FLAGS=--network-plugin=kubenet --max-pods=110"));
  CHECK_FALSE(kubenet_refusal("KUBELET_FLAGS=--network-plugin=cni"));
  CHECK_FALSE(kubenet_refusal(""));
  TempDir d;
  d.write("kubelet", "--network-plugin=kubenet");
  auto refused = check_kubenet((d.path / "kubelet").string());
  REQUIRE(refused);
  CHECK_THAT(*refused, Catch::Contains("not supported for Kubenet"));
  d.write("empty", "");
  CHECK_FALSE(check_kubenet((d.path / "empty").string()));
  auto missing = check_kubenet((d.path / "absent").string());
  REQUIRE(missing);
  CHECK_THAT(*missing, Catch::Contains("cannot read"));
}

TEST_CASE("route_localnet: a clear warning when off everywhere, none when on") {
  TempDir d;
  d.write("all/route_localnet", "0\n");
  d.write("eth0/route_localnet", "0\n");
  auto w = route_localnet_warning(d.path.string());
  REQUIRE(w);
  CHECK_THAT(*w, Catch::Contains("route_localnet"));
  d.write("veth1/route_localnet", "1\n");
  CHECK_FALSE(route_localnet_warning(d.path.string()));
  d.write("veth1/route_localnet", "0\n");
  d.write("all/route_localnet", "1\n");
  CHECK_FALSE(route_localnet_warning(d.path.string()));
  CHECK(needs_route_localnet("127.0.0.1"));
  CHECK_FALSE(needs_route_localnet("10.0.0.4"));
}
