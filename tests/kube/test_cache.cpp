// Watch caches against the real apiserver: adds/updates/deletes with handlers and indexes,
// transforms, the change notifier, selector-filtered watches, bookmarks, 410 -> relist (with
// deletes/updates for what changed meanwhile) and an apiserver restart.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>

#include "helpers.hpp"
#include "kube/cache.hpp"
#include "kube/typed.hpp"

using namespace aad;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace json = boost::json;
using test::Background;
using test::KubeEnv;
using test::pump_until;

namespace {

kube::Pod make_pod(const std::string& ns, const std::string& name, const std::string& node,
                   kube::StringMap labels = {}) {
  kube::Pod p;
  p.meta.ns = ns;
  p.meta.name = name;
  p.meta.labels = std::move(labels);
  p.node_name = node;
  p.raw = json::parse(R"({"spec":{"containers":[{"name":"c","image":"busybox"}]}})").as_object();
  return p;
}

struct Recorder {
  std::vector<std::string> events;  // "add ns/p", "update ns/p", "delete ns/p"
  template <typename T>
  typename kube::Cache<T>::Handlers handlers(kube::Cache<T>& cache) {
    typename kube::Cache<T>::Handlers h;
    h.on_add = [this, &cache](const T& o) {
      CHECK(cache.get(o.key()) != nullptr);  // fired after the store was updated
      events.push_back("add " + o.key());
    };
    h.on_update = [this, &cache](const T&, const T& n) {
      auto cur = cache.get(n.key());
      REQUIRE(cur != nullptr);
      CHECK(cur->meta.resource_version == n.meta.resource_version);
      events.push_back("update " + n.key());
    };
    h.on_delete = [this, &cache](const T& o) {
      CHECK(cache.get(o.key()) == nullptr);
      events.push_back("delete " + o.key());
    };
    return h;
  }
  bool has(const std::string& e) const { return std::find(events.begin(), events.end(), e) != events.end(); }
};

template <typename T>
void stop_cache(asio::io_context& io, kube::Cache<T>& cache, Background& bg) {
  cache.stop();
  REQUIRE(pump_until(io, [&] { return bg.finished(); }, 30s));
  if (bg.error) std::rethrow_exception(bg.error);
}

long long rv_number(const std::string& rv) { return rv.empty() ? 0 : std::stoll(rv); }

}  // namespace

TEST_CASE("watch cache: adds, updates and deletes; handlers after the store; index by every pod IP") {
  KubeEnv env;
  auto ns = env.kube.new_namespace("cache");
  auto& c = *env.client;
  REQUIRE(env.run(kube::create(c, make_pod(ns, "before", "n1"))));

  kube::InformerOptions o;
  o.ns = ns;
  o.page_size = 1;  // exercise paging of the initial list
  kube::Cache<kube::Pod> pods(c, o);
  pods.add_index("ip", kube::index::pod_ips);
  pods.set_transform([](json::object& obj) {
    auto& md = obj["metadata"].as_object();
    md.erase("managedFields");
    md.erase("annotations");
  });
  pods.set_keep_raw(false);
  Recorder rec;
  pods.add_handlers(rec.handlers(pods));
  Background bg(env.io, pods.run());
  REQUIRE(pump_until(env.io, [&] { return pods.synced(); }));
  CHECK(rec.has("add " + ns + "/before"));
  REQUIRE(env.run(kube::create(c, make_pod(ns, "before2", "n1"))));  // after sync: via the watch

  // Add.
  auto p = make_pod(ns, "p", "n1");
  p.meta.annotations["dropped"] = "by-transform";
  auto made = env.run(kube::create(c, p));
  REQUIRE(made);
  REQUIRE(pump_until(env.io, [&] { return pods.get(ns, "p") != nullptr; }));
  CHECK(pods.get(ns, "p")->meta.annotations.empty());  // transform applied
  CHECK(pods.get(ns, "p")->raw.empty());
  CHECK(pods.size() == 3);
  // Update: pod IPs appear in the index, every one of them.
  auto status = env.run(kube::patch<kube::Pod>(
      c, ns, "p", kube::PatchType::merge,
      R"({"status":{"phase":"Running","podIP":"10.9.0.7","podIPs":[{"ip":"10.9.0.7"},{"ip":"fd00:9::7"}]}})", "status"));
  REQUIRE(status);
  REQUIRE(pump_until(env.io, [&] { return pods.by_index("ip", "fd00:9::7").size() == 1; }));
  CHECK(pods.by_index("ip", "10.9.0.7").at(0)->meta.name == "p");
  CHECK(rec.has("update " + ns + "/p"));
  CHECK(pods.get(ns, "p")->meta.resource_version == status->meta.resource_version);
  CHECK_THROWS(pods.by_index("nope", "x"));
  // Delete.
  REQUIRE(env.run(kube::remove(c, *status, false, 0)));
  REQUIRE(pump_until(env.io, [&] { return pods.get(ns, "p") == nullptr; }));
  CHECK(pods.by_index("ip", "10.9.0.7").empty());
  CHECK(rec.has("delete " + ns + "/p"));
  stop_cache(env.io, pods, bg);
}

TEST_CASE("watch cache: the change notifier wakes a waiter; a quiet cache times out") {
  KubeEnv env;
  auto ns = env.kube.new_namespace("notify");
  auto& c = *env.client;
  kube::InformerOptions o;
  o.ns = ns;
  kube::Cache<kube::Pod> pods(c, o);
  Background bg(env.io, pods.run());
  REQUIRE(env.run(pods.wait_synced(30s)));

  auto quiet = env.run(pods.changed().wait(300ms));
  CHECK_FALSE(quiet);

  // A waiter for pod "late": woken by the watch, not polling.
  bool found = false;
  int wakeups = 0;
  asio::co_spawn(
      env.io,
      [&]() -> asio::awaitable<void> {
        auto deadline = std::chrono::steady_clock::now() + 30s;
        while (!pods.get(ns, "late") && std::chrono::steady_clock::now() < deadline) {
          auto gen = pods.changed().generation();
          if (co_await pods.changed().wait_since(gen, 30s)) ++wakeups;
        }
        found = pods.get(ns, "late") != nullptr;
      },
      asio::detached);
  REQUIRE(env.run(kube::create(c, make_pod(ns, "late", "n1"))));
  REQUIRE(pump_until(env.io, [&] { return found; }));
  CHECK(wakeups >= 1);
  stop_cache(env.io, pods, bg);
}

TEST_CASE("selector-filtered watches: pods by spec.nodeName, assigned identities by label nodename") {
  KubeEnv env;
  test::ensure_test_crds(env.kube);
  auto ns = env.kube.new_namespace("sel");
  auto& c = *env.client;
  auto node = "node-" + ns;

  kube::InformerOptions po;
  po.field_selector = "spec.nodeName=" + node;  // all namespaces, this node only
  kube::Cache<kube::Pod> pods(c, po);
  kube::InformerOptions ao;
  ao.label_selector = "nodename=" + node;
  kube::Cache<kube::AzureAssignedIdentity> aais(c, ao);
  aais.add_index("pod", kube::index::assigned_pod);
  aais.add_index("node", kube::index::assigned_node);
  Recorder arec;
  aais.add_handlers(arec.handlers(aais));
  Background b1(env.io, pods.run());
  Background b2(env.io, aais.run());
  REQUIRE(pump_until(env.io, [&] { return pods.synced() && aais.synced(); }));

  REQUIRE(env.run(kube::create(c, make_pod(ns, "mine", node))));
  REQUIRE(env.run(kube::create(c, make_pod(ns, "other", "elsewhere"))));
  auto aai_for = [&](const std::string& name, const std::string& n) {
    kube::AzureAssignedIdentity a;
    a.meta.ns = ns;
    a.meta.name = name;
    a.meta.labels["nodename"] = n;
    a.pod = name;
    a.pod_namespace = ns;
    a.node_name = n;
    a.status = kube::kAssignedIDCreated;
    return a;
  };
  auto mine = env.run(kube::create(c, aai_for("mine", node)));
  REQUIRE(mine);
  REQUIRE(env.run(kube::create(c, aai_for("other", "elsewhere"))));
  REQUIRE(pump_until(env.io, [&] { return pods.get(ns, "mine") && aais.get(ns, "mine"); }));
  CHECK(aais.by_index("pod", ns + "/mine").size() == 1);
  CHECK(aais.by_index("node", node).size() == 1);
  // A marker created last: once it is seen, the earlier "other" objects would have been too.
  REQUIRE(env.run(kube::create(c, make_pod(ns, "marker", node))));
  REQUIRE(pump_until(env.io, [&] { return pods.get(ns, "marker") != nullptr; }));
  CHECK(pods.get(ns, "other") == nullptr);
  CHECK(pods.size() == 2);
  CHECK(aais.get(ns, "other") == nullptr);

  // Relabelled to another node: it leaves the selector, the cache sees a delete.
  auto moved = *mine;
  moved.meta.labels["nodename"] = "elsewhere";
  REQUIRE(env.run(kube::update(c, moved)));
  REQUIRE(pump_until(env.io, [&] { return aais.get(ns, "mine") == nullptr; }));
  CHECK(arec.has("delete " + ns + "/mine"));
  CHECK(aais.by_index("node", node).empty());
  stop_cache(env.io, pods, b1);
  stop_cache(env.io, aais, b2);
}

TEST_CASE("bookmarks advance the resourceVersion of a quiet watch") {
  KubeEnv env;
  auto quiet_ns = env.kube.new_namespace("quiet");
  auto busy_ns = env.kube.new_namespace("busy");
  auto& c = *env.client;
  kube::InformerOptions o;
  o.ns = quiet_ns;
  o.min_watch_timeout = 5s;  // the apiserver sends a bookmark ~2 s before the watch deadline
  o.max_watch_timeout = 6s;
  kube::Cache<kube::ConfigMap> cms(c, o);
  Background bg(env.io, cms.run());
  REQUIRE(pump_until(env.io, [&] { return cms.synced(); }));
  auto rv0 = cms.list_watch().resource_version();
  for (int i = 0; i < 3; ++i) {
    kube::ConfigMap cm;
    cm.meta.ns = busy_ns;
    cm.meta.name = "c" + std::to_string(i);
    REQUIRE(env.run(kube::create(c, cm)));
  }
  REQUIRE(pump_until(env.io, [&] {
    return cms.list_watch().bookmarks() > 0 && rv_number(cms.list_watch().resource_version()) > rv_number(rv0);
  }, 90s));
  CHECK(cms.size() == 0);
  CHECK(cms.list_watch().lists() == 1);  // no relist needed
  stop_cache(env.io, cms, bg);
}

TEST_CASE("410 Gone: a watch from a compacted resourceVersion relists; deletes and updates are emitted") {
  test::KubeTestenv::Options opts;
  opts.extra_args = {"--etcd-compaction-interval=2s", "--", "--watch-cache=false"};
  test::KubeTestenv kube(opts);
  asio::io_context io;
  auto admin_cfg = kube::load_kubeconfig(kube.kubeconfig());
  kube::ClientOptions co;
  co.qps = 100;
  co.burst = 100;
  kube::Client admin(io.get_executor(), admin_cfg, co);
  auto ns = kube.new_namespace("gone");

  // The cache's client reads its token from a file, so we can cut it off for a while.
  auto tokfile = std::filesystem::temp_directory_path() / ("kube-tok-" + std::to_string(::getpid()));
  std::ofstream(tokfile) << admin_cfg.token;
  auto cache_cfg = admin_cfg;
  cache_cfg.token.clear();
  cache_cfg.token_file = tokfile.string();
  co.token_reload = 0ms;
  co.max_retries = 0;
  kube::Client client(io.get_executor(), cache_cfg, co);

  for (auto name : {"p1", "p2"}) REQUIRE(test::run_async(io, kube::create(admin, make_pod(ns, name, "n"))));
  kube::InformerOptions o;
  o.ns = ns;
  o.min_watch_timeout = 2s;
  o.max_watch_timeout = 2s;
  o.backoff.initial = 200ms;
  o.backoff.max = 1s;
  kube::Cache<kube::Pod> pods(client, o);
  Recorder rec;
  pods.add_handlers(rec.handlers(pods));
  Background bg(io, pods.run());
  REQUIRE(pump_until(io, [&] { return pods.synced() && pods.size() == 2; }));
  auto old_rv = pods.list_watch().resource_version();
  auto lists0 = pods.list_watch().lists();

  // Cut the cache off (its next watch gets 401), change things meanwhile, wait for compaction.
  std::ofstream(tokfile, std::ios::trunc) << "revoked";
  auto failures0 = pods.list_watch().failures();
  REQUIRE(pump_until(io, [&] { return pods.list_watch().failures() > failures0; }, 30s));
  auto p1 = pods.get(ns, "p1");
  REQUIRE(test::run_async(io, kube::remove(admin, *p1, false, 0)));
  REQUIRE(test::run_async(io, kube::patch<kube::Pod>(admin, ns, "p2", kube::PatchType::merge,
                                                     R"({"metadata":{"labels":{"changed":"yes"}}})")));
  REQUIRE(test::run_async(io, kube::create(admin, make_pod(ns, "p3", "n"))));
  bool compacted = false;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!compacted && std::chrono::steady_clock::now() < deadline) {
    kube::ConfigMap filler;  // keep the revision moving
    filler.meta.ns = ns;
    filler.meta.generate_name = "filler-";
    REQUIRE(test::run_async(io, kube::create(admin, filler)));
    // A watch from old_rv starts at old_rv + 1: wait until that revision is compacted too.
    kube::ListOptions lo;
    lo.resource_version = std::to_string(rv_number(old_rv) + 1);
    lo.resource_version_match = "Exact";
    auto r = test::run_async(io, admin.list_page(kube::resources::pods, ns, lo));
    compacted = !r && r.error().gone();
    if (!compacted) pump_until(io, [] { return false; }, 1s);
  }
  REQUIRE(compacted);
  CHECK(pods.get(ns, "p1") != nullptr);  // the cache has not seen anything yet

  std::ofstream(tokfile, std::ios::trunc) << admin_cfg.token;
  REQUIRE(pump_until(io, [&] { return pods.get(ns, "p3") != nullptr && pods.get(ns, "p1") == nullptr; }, 60s));
  CHECK(pods.list_watch().gone() >= 1);
  CHECK(pods.list_watch().lists() > lists0);
  CHECK(rec.has("delete " + ns + "/p1"));
  CHECK(rec.has("update " + ns + "/p2"));
  CHECK(rec.has("add " + ns + "/p3"));
  CHECK(pods.get(ns, "p2")->meta.labels.at("changed") == "yes");
  stop_cache(io, pods, bg);
  std::filesystem::remove(tokfile);
}

TEST_CASE("watch cache survives an apiserver restart and converges") {
  test::KubeTestenv kube(test::KubeTestenv::Options{});
  asio::io_context io;
  auto cfg = kube::load_kubeconfig(kube.kubeconfig());
  kube::ClientOptions co;
  co.qps = 100;
  co.burst = 100;
  co.max_retries = 1;
  kube::Client client(io.get_executor(), cfg, co);
  auto ns = kube.new_namespace("restart");
  REQUIRE(test::run_async(io, kube::create(client, make_pod(ns, "a", "n"))));
  kube::InformerOptions o;
  o.ns = ns;
  o.backoff.max = 2s;
  kube::Cache<kube::Pod> pods(client, o);
  Background bg(io, pods.run());
  REQUIRE(pump_until(io, [&] { return pods.synced() && pods.get(ns, "a"); }));

  kube.stop();
  auto failures0 = pods.list_watch().failures();
  REQUIRE(pump_until(io, [&] { return pods.list_watch().failures() > failures0; }, 30s));
  kube.start();
  REQUIRE(kube.server_url() == cfg.server);  // same data, same port
  REQUIRE(test::run_async(io, kube::create(client, make_pod(ns, "b", "n")), 60s));
  auto a = test::run_async(io, kube::get<kube::Pod>(client, ns, "a"));
  REQUIRE(a);
  REQUIRE(test::run_async(io, kube::remove(client, *a, false, 0)));
  REQUIRE(pump_until(io, [&] { return pods.get(ns, "b") != nullptr && pods.get(ns, "a") == nullptr; }, 90s));
  CHECK(pods.size() == 1);
  stop_cache(io, pods, bg);
}
