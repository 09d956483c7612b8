// Rough measurements of the pod watch cache on the real apiserver (not a test):
//   kube-bench [pods=500]
// Prints: time to create the pods, LIST+sync time and resident-memory growth of a Cache<Pod>
// with and without the field-dropping transform, and create->on_add latency through the watch.
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/json/parse.hpp>
#include <cstdio>
#include <fstream>
#include <unistd.h>

#include "kube/cache.hpp"
#include "kube/typed.hpp"
#include "support/async.hpp"
#include "support/kube_testenv.hpp"

using namespace aad;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

long rss_kb() {
  std::ifstream in("/proc/self/statm");
  long size = 0, resident = 0;
  in >> size >> resident;
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

kube::Pod make_pod(const std::string& ns, const std::string& name) {
  kube::Pod p;
  p.meta.ns = ns;
  p.meta.name = name;
  p.meta.labels = {{"aadpodidbinding", "sel"}, {"app", "bench"}};
  p.node_name = "node-1";
  p.raw = boost::json::parse(R"({"spec":{"containers":[{"name":"c","image":"busybox",
    "env":[{"name":"A","value":"some value to make the object realistic"}]}]}})").as_object();
  return p;
}

bool pump_until(asio::io_context& io, const std::function<bool()>& pred, std::chrono::seconds limit) {
  auto deadline = Clock::now() + limit;
  io.restart();
  while (!pred() && Clock::now() < deadline) io.run_one_for(10ms);
  return pred();
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 500;
  auto& kube = test::KubeTestenv::shared();
  asio::io_context io;
  kube::ClientOptions co;
  co.qps = 2000;
  co.burst = 2000;
  kube::Client client(io.get_executor(), kube::load_kubeconfig(kube.kubeconfig()), co);
  auto ns = kube.new_namespace("bench");

  auto t0 = Clock::now();
  int done = 0, failed = 0;
  for (int w = 0; w < 8; ++w)
    asio::co_spawn(io, [&, w]() -> asio::awaitable<void> {
      for (int i = w; i < n; i += 8) {
        auto r = co_await kube::create(client, make_pod(ns, "p" + std::to_string(i)));
        if (r) {
          auto st = co_await kube::patch<kube::Pod>(client, ns, r->meta.name, kube::PatchType::merge,
              R"({"status":{"phase":"Running","podIP":"10.1.)" + std::to_string(i / 250) + "." + std::to_string(i % 250) +
              R"(","podIPs":[{"ip":"10.1.)" + std::to_string(i / 250) + "." + std::to_string(i % 250) + R"("}]}})", "status");
          if (!st) ++failed;
        } else {
          ++failed;
        }
        ++done;
      }
    }, asio::detached);
  pump_until(io, [&] { return done == n; }, 600s);
  std::printf("created %d pods (+status) in %.0f ms, %d failures\n", n, ms(Clock::now() - t0), failed);

  for (bool trimmed : {false, true}) {
    long before = rss_kb();
    kube::InformerOptions o;
    o.ns = ns;
    auto cache = std::make_unique<kube::Cache<kube::Pod>>(client, o);
    cache->add_index("ip", kube::index::pod_ips);
    if (trimmed) {
      cache->set_transform([](boost::json::object& obj) {
        obj["metadata"].as_object().erase("managedFields");
        obj.erase("spec");  // keep only what the decoder needs
        obj["spec"] = boost::json::object{{"nodeName", "node-1"}};
      });
      cache->set_keep_raw(false);
    }
    bool finished = false;
    asio::co_spawn(io, cache->run(), [&](std::exception_ptr) { finished = true; });
    auto s0 = Clock::now();
    pump_until(io, [&] { return cache->synced(); }, 120s);
    auto sync_ms = ms(Clock::now() - s0);
    long after = rss_kb();
    std::printf("cache %-22s size=%zu sync=%.0f ms rss+=%ld KiB (%.2f KiB/pod)\n",
                trimmed ? "(transform, no raw):" : "(full objects):", cache->size(), sync_ms, after - before,
                double(after - before) / std::max<std::size_t>(1, cache->size()));
    if (trimmed) {
      std::vector<double> lat;
      Clock::time_point created;
      bool seen = false;
      std::string want;
      kube::Cache<kube::Pod>::Handlers h;
      h.on_add = [&](const kube::Pod& p) {
        if (p.meta.name == want) seen = true;
      };
      cache->add_handlers(h);
      for (int i = 0; i < 30; ++i) {
        want = "lat" + std::to_string(i);
        seen = false;
        created = Clock::now();
        auto r = test::run_async(io, kube::create(client, make_pod(ns, want)));
        if (!r) continue;
        pump_until(io, [&] { return seen; }, 30s);
        lat.push_back(ms(Clock::now() - created));
      }
      std::sort(lat.begin(), lat.end());
      if (!lat.empty())
        std::printf("create->on_add latency over %zu pods: median %.1f ms, max %.1f ms\n", lat.size(),
                    lat[lat.size() / 2], lat.back());
    }
    cache->stop();
    pump_until(io, [&] { return finished; }, 30s);
  }
  return 0;
}
