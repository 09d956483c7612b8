// Leader election between candidates on a real Lease, and the event recorder.
#include <filesystem>
#include <fstream>

#include <boost/asio/detached.hpp>

#include "helpers.hpp"
#include "kube/events.hpp"
#include "kube/leader_election.hpp"
#include "kube/typed.hpp"

using namespace aad;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using test::Background;
using test::KubeEnv;
using test::pump_until;

namespace {

kube::LeaderElectionConfig fast_config(const std::string& ns, const std::string& id) {
  kube::LeaderElectionConfig c;
  c.ns = ns;
  c.name = "test-lock";
  c.identity = id;
  c.lease_duration = 4s;
  c.renew_deadline = 3s;
  c.retry_period = 500ms;
  return c;
}

struct Candidate {
  kube::LeaderElector elector;
  int started = 0, stopped = 0;
  kube::LeadershipEnd why = kube::LeadershipEnd::stopped;
  std::string detail;
  std::optional<kube::LeadershipEnd> result;
  std::unique_ptr<Background> bg;
  Candidate(asio::io_context& io, kube::Client& c, kube::LeaderElectionConfig cfg) : elector(c, std::move(cfg)) {
    elector.on_started_leading = [this] { ++started; };
    elector.on_stopped_leading = [this](kube::LeadershipEnd w, const std::string& d) {
      ++stopped;
      why = w;
      detail = d;
    };
    bg = std::make_unique<Background>(io, campaign());
  }
  // A member coroutine, not a lambda: a temporary closure would be gone when it resumes.
  asio::awaitable<void> campaign() { result = co_await elector.run(); }
};

}  // namespace

TEST_CASE("leader election: exactly one of two leads; release hands over at once; a crash within the lease duration") {
  KubeEnv env;
  auto ns = env.kube.new_namespace("le");
  CHECK_THROWS_AS(kube::LeaderElector(*env.client, [&] {
                    auto c = fast_config(ns, "x");
                    c.renew_deadline = c.lease_duration;
                    return c;
                  }()),
                  std::invalid_argument);

  Candidate a(env.io, *env.client, fast_config(ns, "cand-a"));
  Candidate b(env.io, *env.client, fast_config(ns, "cand-b"));
  REQUIRE(pump_until(env.io, [&] { return a.elector.is_leader() || b.elector.is_leader(); }, 30s));
  // Watch them for a few renew rounds: never two leaders.
  int both = 0;
  pump_until(env.io, [&] {
    if (a.elector.is_leader() && b.elector.is_leader()) ++both;
    return false;
  }, 3s);
  CHECK(both == 0);
  CHECK(a.started + b.started == 1);
  auto& leader = a.elector.is_leader() ? a : b;
  auto& follower = a.elector.is_leader() ? b : a;
  CHECK(follower.elector.observed_holder() == leader.elector.config().identity);
  auto lease = env.run(kube::get<kube::Lease>(*env.client, ns, "test-lock"));
  REQUIRE(lease);
  CHECK(lease->holder_identity.value() == leader.elector.config().identity);
  CHECK(lease->lease_duration_seconds.value() == 4);
  auto transitions = lease->lease_transitions.value_or(0);

  // Stop the leader: it releases, the follower takes over (well within a lease duration).
  leader.elector.stop();
  REQUIRE(pump_until(env.io, [&] { return leader.bg->finished(); }, 30s));
  CHECK(leader.result == kube::LeadershipEnd::stopped);
  CHECK(leader.stopped == 1);
  auto released = env.run(kube::get<kube::Lease>(*env.client, ns, "test-lock"));
  REQUIRE(released);
  if (!follower.elector.is_leader()) CHECK(released->holder_identity.value_or("") == "");
  REQUIRE(pump_until(env.io, [&] { return follower.elector.is_leader(); }, 30s));
  auto taken = env.run(kube::get<kube::Lease>(*env.client, ns, "test-lock"));
  REQUIRE(taken);
  CHECK(taken->holder_identity.value() == follower.elector.config().identity);
  CHECK(taken->lease_transitions.value() == transitions + 1);

  // A third candidate waits while the follower renews, then takes over after the follower
  // "crashes" (stops without releasing), once the lease expired.
  auto cfg = follower.elector.config();
  Candidate c(env.io, *env.client, fast_config(ns, "cand-c"));
  pump_until(env.io, [] { return false; }, 2s);
  CHECK_FALSE(c.elector.is_leader());
  // No release: simulate a crash by revoking release before stopping.
  const_cast<kube::LeaderElectionConfig&>(follower.elector.config()).release_on_stop = false;
  follower.elector.stop();
  REQUIRE(pump_until(env.io, [&] { return follower.bg->finished(); }, 30s));
  auto held = env.run(kube::get<kube::Lease>(*env.client, ns, "test-lock"));
  REQUIRE(held);
  if (!c.elector.is_leader()) CHECK(held->holder_identity.value() == cfg.identity);  // not released
  REQUIRE(pump_until(env.io, [&] { return c.elector.is_leader(); }, 30s));
  c.elector.stop();
  REQUIRE(pump_until(env.io, [&] { return c.bg->finished(); }, 30s));
}

TEST_CASE("leader election: a leader that cannot renew (RBAC revoked) stops leading and says so") {
  auto& kube = test::KubeTestenv::shared();
  auto ns = kube.new_namespace("le-rbac");
  REQUIRE(kube.kubectl({"-n", ns, "create", "serviceaccount", "elector"}).exit_code == 0);
  REQUIRE(kube.kubectl({"-n", ns, "create", "role", "lease", "--verb=get,create,update",
                        "--resource=leases.coordination.k8s.io"}).exit_code == 0);
  REQUIRE(kube.kubectl({"-n", ns, "create", "rolebinding", "elector", "--role=lease",
                        "--serviceaccount=" + ns + ":elector"}).exit_code == 0);
  auto cfg = kube::load_kubeconfig(kube.kubeconfig());
  cfg.token = kube.token("elector", ns);
  asio::io_context io;
  kube::Client client(io.get_executor(), cfg);
  Candidate a(io, client, fast_config(ns, "rbac-a"));
  REQUIRE(pump_until(io, [&] { return a.elector.is_leader(); }, 30s));
  REQUIRE(kube.kubectl({"-n", ns, "delete", "rolebinding", "elector"}).exit_code == 0);
  REQUIRE(pump_until(io, [&] { return a.bg->finished(); }, 60s));
  CHECK(a.result == kube::LeadershipEnd::lost);
  CHECK(a.stopped == 1);
  CHECK(a.why == kube::LeadershipEnd::lost);
  CHECK_THAT(a.detail, Catch::Contains("403"));
  CHECK_FALSE(a.elector.is_leader());
}

TEST_CASE("leader election: renewal is not queued behind other requests of a saturated client") {
  auto& kube = test::KubeTestenv::shared();
  auto ns = kube.new_namespace("le-busy");
  asio::io_context io;
  kube::ClientOptions co;
  co.qps = 2;  // 20 queued requests take ~10 s, far more than the 3 s renew deadline
  co.burst = 1;
  kube::Client client(io.get_executor(), kube::load_kubeconfig(kube.kubeconfig()), co);
  Candidate a(io, client, fast_config(ns, "busy"));
  REQUIRE(pump_until(io, [&] { return a.elector.is_leader(); }, 30s));
  int done = 0;
  for (int i = 0; i < 20; ++i)
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          auto r = co_await client.get(kube::resources::namespaces, "", ns);
          CHECK(r);
          ++done;
        },
        asio::detached);
  // An unthrottled observer sees the renewals continue while the client's queue is full.
  kube::ClientOptions fast;
  fast.qps = 0;
  kube::Client observer(io.get_executor(), kube::load_kubeconfig(kube.kubeconfig()), fast);
  auto before = test::run_async(io, kube::get<kube::Lease>(observer, ns, "test-lock"));
  REQUIRE(before);
  int not_leader = 0;
  pump_until(io, [&] {
    if (!a.elector.is_leader()) ++not_leader;
    return false;
  }, 5s);  // longer than the lease duration
  auto after = test::run_async(io, kube::get<kube::Lease>(observer, ns, "test-lock"));
  REQUIRE(after);
  CHECK(after->renew_time != before->renew_time);
  CHECK(after->holder_identity == before->holder_identity);
  CHECK(not_leader == 0);
  CHECK(a.stopped == 0);
  CHECK(done < 20);  // the limiter was busy all along
  a.elector.stop();
  REQUIRE(pump_until(io, [&] { return a.bg->finished() && done == 20; }, 60s));
  CHECK(a.result == kube::LeadershipEnd::stopped);
}

TEST_CASE("events: Normal/Warning on an object, repeats aggregated into count, spam limited") {
  KubeEnv env;
  auto ns = env.kube.new_namespace("events");
  auto& c = *env.client;
  kube::ConfigMap target;
  target.meta.ns = ns;
  target.meta.name = "target";
  auto made = env.run(kube::create(c, target));
  REQUIRE(made);
  kube::EventRecorderOptions o;
  o.component = "aad-pod-identity-mic";
  o.spam_burst = 4;
  kube::EventRecorder rec(c, o);
  auto ref = kube::EventRecorder::reference(*made);
  CHECK(ref.kind == "ConfigMap");
  CHECK(ref.uid == made->meta.uid);

  for (int i = 0; i < 3; ++i) {
    auto e = env.run(rec.record_async(ref, "Warning", "BindingFailed", "identity not found"));
    REQUIRE(e);
    CHECK(e->count == i + 1);
  }
  CHECK(rec.created() == 1);
  CHECK(rec.patched() == 2);
  rec.normal(ref, "Assigned", "ok");  // fire and forget
  REQUIRE(pump_until(env.io, [&] { return rec.created() == 2; }));
  auto dropped = env.run(rec.record_async(ref, "Normal", "Other", "x"));  // 5th for this object
  REQUIRE_FALSE(dropped);
  CHECK(dropped.error().reason == "SpamLimited");
  CHECK(rec.dropped() == 1);

  kube::ListOptions lo;
  lo.field_selector = "involvedObject.name=target";
  auto events = env.run(kube::list<kube::Event>(c, ns, lo));
  REQUIRE(events);
  REQUIRE(events->items.size() == 2);
  for (auto& e : events->items) {
    CHECK(e.source_component == "aad-pod-identity-mic");
    CHECK(e.involved_object.uid == made->meta.uid);
    CHECK_FALSE(e.first_timestamp.empty());
    if (e.reason == "BindingFailed") {
      CHECK(e.type == "Warning");
      CHECK(e.count == 3);
      CHECK(e.message == "identity not found");
    } else {
      CHECK(e.reason == "Assigned");
      CHECK(e.type == "Normal");
      CHECK(e.count == 1);
    }
  }
}
