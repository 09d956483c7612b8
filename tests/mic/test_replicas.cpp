// Two real `aad-pod-identity --role=mic` processes against the apiserver and the emulator:
// /healthz Active only on the leader, the leader killed (SIGKILL) mid-flow while its ARM PATCH
// is slow, the other replica completes the assignment; SIGTERM releases the Lease.
#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "core/ascii.hpp"
#include "kube/typed.hpp"
#include "mic_fixture.hpp"
#include "support/async.hpp"

extern char** environ;

using namespace aad;
using namespace aad::test::mic;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

struct Replica {
  pid_t pid = -1;
  int probe_port = 0;
  std::string log;
  ~Replica() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  int wait_exit(std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      ::usleep(50000);
    }
    return -1;
  }
};

std::string binary() {
  const char* b = std::getenv("AAD_BUILD_ROOT");
  return std::string(b ? b : ".") + "/app/aad-pod-identity";
}

void start_replica(MicFixture& f, Replica& r, const std::string& name, const std::string& cloudconfig) {
  r.probe_port = free_port();
  r.log = "/tmp/mic-replica-" + name + "-" + f.ns + ".log";
  std::vector<std::string> args = {binary(),
                                   "--role=mic",
                                   "--kubeconfig=" + f.kube.kubeconfig(),
                                   "--cloudconfig=" + cloudconfig,
                                   "--leader-election-instance=" + name,
                                   "--leader-election-namespace=" + f.ns,
                                   "--leader-election-duration=3s",
                                   "--leader-election-renew-deadline=2s",
                                   "--leader-election-retry-period=500ms",
                                   "--identity-assignment-reconcile-interval=1h",
                                   "--update-user-msi-retry-interval=100ms",
                                   "--clientQps=50",
                                   "--http-probe-port=" + std::to_string(r.probe_port),
                                   "--prometheus-port=" + std::to_string(free_port())};
  std::vector<std::string> env = {"MIC_POD_NAMESPACE=" + f.ns, "AAD_POD_IDENTITY_ARM_ENDPOINT=" + f.emu.url() + "/",
                                  "AAD_POD_IDENTITY_AAD_ENDPOINT=" + f.emu.url() + "/"};
  for (char** e = environ; *e; ++e) {
    std::string s(*e);
    if (!s.starts_with("MIC_POD_NAMESPACE=")) env.push_back(s);
  }
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, r.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  int rc = posix_spawn(&r.pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
}

boost::asio::awaitable<std::string> get_body(http::Client& c, std::string url) {
  http::ClientRequest req;
  req.method = boost::beast::http::verb::get;
  req.url = url;
  auto r = co_await c.send(req);
  if (!r) co_return std::string("unreachable");
  std::string body = r->body;
  co_return body;
}

boost::asio::awaitable<unsigned> get_code(http::Client& c, std::string url) {
  http::ClientRequest req;
  req.method = boost::beast::http::verb::get;
  req.url = url;
  auto r = co_await c.send(req);
  unsigned code = r ? r->status : 0;
  co_return code;
}

unsigned get_status(MicFixture& f, http::Client& c, const Replica& r, const std::string& path) {
  return aad::test::run_async(f.io, get_code(c, "http://127.0.0.1:" + std::to_string(r.probe_port) + path),
                              std::chrono::seconds(10));
}

std::string healthz(MicFixture& f, http::Client& c, const Replica& r) {
  return aad::test::run_async(f.io, get_body(c, "http://127.0.0.1:" + std::to_string(r.probe_port) + "/healthz"),
                              std::chrono::seconds(10));
}

std::string lease_holder(MicFixture& f) {
  auto l = aad::test::run_async(f.io, kube::get<kube::Lease>(*f.client, f.ns, "aad-pod-identity-mic"),
                                std::chrono::seconds(10));
  if (!l) return "<none>";
  return l->holder_identity.value_or("");
}

// azure.json for a replica (MIC's service principal in the emulator), replaced atomically so a
// running replica never reads half a file.
void write_cloudconfig(MicFixture& f, const std::string& path, const std::string& secret = "mic-secret") {
  std::string tmp = path + ".tmp";
  std::ofstream(tmp) << json::serialize(json::object{{"cloud", "AzurePublicCloud"},
                                                     {"tenantId", f.emu.tenant_id()},
                                                     {"aadClientId", f.sp_client_id},
                                                     {"aadClientSecret", secret},
                                                     {"subscriptionId", f.emu.subscription_id()},
                                                     {"resourceGroup", f.rg}});
  std::rename(tmp.c_str(), path.c_str());
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A scale set with one node, and identity id1 bound to selector sel1; the replicas run the binary.
struct OneIdentityScene {
  MicFixture f{binary_options()};
  std::string vmss = f.make_vmss("pool");
  AzureIdentityInfo id = f.azure_identity("id1");
  OneIdentityScene() {
    f.create_node("pool-0", f.vmss_provider_id("pool", 0));
    f.create_identity("id1", id);
    f.create_binding("b1", "id1", "sel1");
  }
  static MicTestOptions binary_options() {
    MicTestOptions o;
    o.start = false;  // no in-process controller: the replicas are the binary
    return o;
  }
};

// The latency fault is consumed when the PATCH reaches the emulator: from then on it is in flight.
bool patch_in_flight(MicFixture& f) {
  return f.emu.admin(boost::beast::http::verb::get, "/admin/faults").as_array().empty();
}

}  // namespace

TEST_CASE("mic replicas: leader killed mid-flow, the other completes; SIGTERM releases the lease",
          "[mic][integration][binary]") {
  OneIdentityScene scene;
  auto& f = scene.f;
  const auto& vmss = scene.vmss;
  std::string cloudconfig = "/tmp/mic-azure-" + f.ns + ".json";
  write_cloudconfig(f, cloudconfig);
  http::Client hc(f.io.get_executor(), http::ClientOptions{});
  Replica a, b;
  start_replica(f, a, "replica-a", cloudconfig);
  REQUIRE(f.wait_for([&] { return healthz(f, hc, a) == "Active"; }, 60s));
  start_replica(f, b, "replica-b", cloudconfig);
  REQUIRE(f.wait_for([&] { return healthz(f, hc, b) == "Not Active"; }, 30s));
  REQUIRE(f.wait_for([&] { return get_status(f, hc, b, "/readyz") == 200; }, 30s));  // a synced standby is ready
  CHECK(lease_holder(f) == "replica-a");
  // The leader ran the v1.6 type upgrade first and recorded it.
  auto cm = aad::test::run_async(f.io, kube::get<kube::ConfigMap>(*f.client, f.ns, "aad-pod-identity-config"),
                                 std::chrono::seconds(10));
  REQUIRE(cm.has_value());
  CHECK(cm->data.count("type-upgrade-status") == 1);

  // A's PATCH hangs for 6 s; A is killed while it waits.
  f.emu.post("/admin/faults", {{"target", "arm-patch"}, {"kind", "latency"}, {"latencyMs", 6000}, {"count", 1}});
  f.create_pod("p1", "pool-0", "sel1");
  auto name = f.aai_name("p1", "id1");
  REQUIRE(f.wait_for([&] { return f.aai_status(name, "Created"); }, 30s));
  REQUIRE(f.wait_for([&] { return patch_in_flight(f); }, 10s));
  ::kill(a.pid, SIGKILL);
  a.wait_exit(5s);

  REQUIRE(f.wait_for([&] { return f.aai_status(name, "Assigned"); }, 60s));
  CHECK(lease_holder(f) == "replica-b");
  CHECK(healthz(f, hc, b) == "Active");
  CHECK(get_status(f, hc, b, "/readyz") == 200);
  CHECK(f.assigned(vmss).size() == 1);

  // The killed leader's slow PATCH still ends in the emulator: let it, so it cannot leak into
  // the next test's counters or scale set.
  CHECK(f.wait_for([&] { return f.arm_calls("arm-patch") >= 2; }, 30s));

  ::kill(b.pid, SIGTERM);
  int status = b.wait_exit(15s);
  INFO("replica-b log:\n" << slurp(b.log));
  CHECK(status == 0);
  CHECK(lease_holder(f).empty());  // released, so a new replica would not wait
  std::remove(cloudconfig.c_str());
  std::remove(a.log.c_str());
  std::remove(b.log.c_str());
}

TEST_CASE("mic binary: a changed azure.json applies without a restart", "[mic][integration][binary]") {
  OneIdentityScene scene;
  auto& f = scene.f;
  const auto& vmss = scene.vmss;
  const auto& id = scene.id;
  std::string cloudconfig = "/tmp/mic-azure-reload-" + f.ns + ".json";
  write_cloudconfig(f, cloudconfig, "a-stale-secret");
  http::Client hc(f.io.get_executor(), http::ClientOptions{});
  Replica r;
  start_replica(f, r, "replica-reload", cloudconfig);
  REQUIRE(f.wait_for([&] { return healthz(f, hc, r) == "Active"; }, 60s));
  f.create_pod("p1", "pool-0", "sel1");
  auto name = f.aai_name("p1", "id1");
  // AAD refuses the stale secret: the assignment waits in Created.
  REQUIRE(f.wait_for([&] { return f.arm_calls("aad-token", "401") >= 1; }, 30s));
  CHECK(f.aai_status(name, "Created"));
  CHECK(f.arm_calls("arm-patch") == 0);
  write_cloudconfig(f, cloudconfig, "mic-secret");
  REQUIRE(f.wait_for([&] { return f.aai_status(name, "Assigned"); }, 60s));
  CHECK(f.assigned(vmss) == std::set<std::string>{to_lower(id.resource_id)});
  ::kill(r.pid, SIGTERM);
  int status = r.wait_exit(15s);
  INFO("replica log:\n" << slurp(r.log));
  CHECK(status == 0);
  std::remove(cloudconfig.c_str());
  std::remove(r.log.c_str());
}

// The original's OnStoppedLeading: a replica whose Lease another holder took exits 1 at once,
// without finishing the work in flight (its ARM PATCH lands, but the AAI is never marked Assigned).
TEST_CASE("mic binary: a leader whose Lease is taken over exits 1 and writes nothing more",
          "[mic][integration][binary]") {
  OneIdentityScene scene;
  auto& f = scene.f;
  const auto& vmss = scene.vmss;
  const auto& id = scene.id;
  std::string cloudconfig = "/tmp/mic-azure-lost-" + f.ns + ".json";
  write_cloudconfig(f, cloudconfig);
  http::Client hc(f.io.get_executor(), http::ClientOptions{});
  Replica r;
  start_replica(f, r, "replica-lost", cloudconfig);
  REQUIRE(f.wait_for([&] { return healthz(f, hc, r) == "Active"; }, 60s));
  f.emu.post("/admin/faults", {{"target", "arm-patch"}, {"kind", "latency"}, {"latencyMs", 3000}, {"count", 1}});
  f.create_pod("p1", "pool-0", "sel1");
  auto name = f.aai_name("p1", "id1");
  REQUIRE(f.wait_for([&] { return f.aai_status(name, "Created"); }, 30s));
  REQUIRE(f.wait_for([&] { return patch_in_flight(f); }, 10s));
  f.steal_lease("aad-pod-identity-mic", "intruder");
  int status = r.wait_exit(30s);
  INFO("replica log:\n" << slurp(r.log));
  CHECK(status == 1);
  CHECK_THAT(slurp(r.log), Catch::Contains("leadership lost"));
  REQUIRE(f.wait_for([&] { return f.arm_calls("arm-patch") == 1; }, 10s));  // its PATCH, completed in Azure
  f.settle(500ms);
  CHECK(f.assigned(vmss) == std::set<std::string>{to_lower(id.resource_id)});
  CHECK(f.aai_status(name, "Created"));  // never marked Assigned by the replica that lost the Lease
  CHECK(lease_holder(f) == "intruder");
  std::remove(cloudconfig.c_str());
  std::remove(r.log.c_str());
}
