#include "identity/mic/engine.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <fmt/format.h>

#include "azure/provider_id.hpp"
#include "core/log.hpp"
#include "identity/matching.hpp"
#include "identity/mic/desired_state.hpp"

namespace aad::identity::mic {
namespace {

using AAI = kube::AzureAssignedIdentity;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr std::string_view kGonePrefix = "node-gone/";

// Field-trimming transforms: the caches keep only what MIC reads.
void trim_meta(json::object& o) {
  if (auto* m = o.if_contains("metadata"); m && m->is_object()) {
    auto& meta = m->as_object();
    meta.erase("managedFields");
    if (auto* a = meta.if_contains("annotations"); a && a->is_object())
      a->as_object().erase("kubectl.kubernetes.io/last-applied-configuration");
  }
}
void trim_pod(json::object& o) {
  trim_meta(o);
  if (auto* m = o.if_contains("metadata"); m && m->is_object()) m->as_object().erase("annotations");
  json::object spec;
  if (auto* s = o.if_contains("spec"); s && s->is_object())
    if (auto* n = s->as_object().if_contains("nodeName")) spec["nodeName"] = *n;
  o["spec"] = std::move(spec);
  o.erase("status");
}
void trim_node(json::object& o) {
  trim_meta(o);
  if (auto* m = o.if_contains("metadata"); m && m->is_object()) {
    m->as_object().erase("annotations");
    m->as_object().erase("labels");
  }
  json::object spec;
  if (auto* s = o.if_contains("spec"); s && s->is_object())
    if (auto* p = s->as_object().if_contains("providerID")) spec["providerID"] = *p;
  o["spec"] = std::move(spec);
  o.erase("status");
}

std::string label_of(const kube::Pod& p) {
  auto it = p.meta.labels.find(std::string(kPodLabel));
  return it == p.meta.labels.end() ? std::string() : it->second;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::optional<std::uint64_t> rv_number(const std::string& rv) {
  std::uint64_t n = 0;
  auto [p, ec] = std::from_chars(rv.data(), rv.data() + rv.size(), n);
  if (ec != std::errc() || p != rv.data() + rv.size()) return std::nullopt;
  return n;
}

std::string binding_name(const AAI& a) {
  return a.azure_binding_ref ? a.azure_binding_ref->meta.name : std::string();
}

}  // namespace

Engine::Engine(kube::Client& client, azure::ComputeClient& arm, azure::Clock& clock, kube::EventRecorder& events,
               MicMetrics& metrics, EngineOptions options)
    : client_(client),
      arm_(arm, metrics),
      clock_(clock),
      events_(events),
      metrics_(metrics),
      options_(std::move(options)),
      writer_(client, metrics),
      queue_(client.executor(), options_.queue),
      resync_timer_(client.executor()),
      drift_timer_(client.executor()),
      wait_timer_(client.executor()) {
  kube::InformerOptions pod_options;
  pod_options.label_selector = std::string(kPodLabel);  // only pods that can get an identity
  pods_ = std::make_unique<kube::Cache<kube::Pod>>(client, pod_options);
  pods_->set_transform(trim_pod);
  pods_->set_keep_raw(false);
  pods_->add_index("node", [](const kube::Pod& p) {
    return p.node_name.empty() ? std::vector<std::string>{} : std::vector<std::string>{p.node_name};
  });
  nodes_ = std::make_unique<kube::Cache<kube::Node>>(client);
  nodes_->set_transform(trim_node);
  nodes_->set_keep_raw(false);
  nodes_->add_index("compute", [this](const kube::Node& n) {
    return std::vector<std::string>{azure::resolve_node(n.provider_id, n.meta.name, options_.default_subscription,
                                                        options_.default_resource_group)
                                        .key()};
  });
  identities_ = std::make_unique<kube::Cache<kube::AzureIdentity>>(client);
  identities_->set_transform(trim_meta);  // raw kept: embedded into AAIs
  bindings_ = std::make_unique<kube::Cache<kube::AzureIdentityBinding>>(client);
  bindings_->set_transform(trim_meta);
  aais_ = std::make_unique<kube::Cache<AAI>>(client);
  aais_->set_transform(trim_meta);  // raw kept: PUT must not lose fields
  aais_->add_index("node", kube::index::assigned_node);
  register_handlers();
}

Engine::~Engine() { *alive_ = false; }

void Engine::register_handlers() {
  pods_->add_handlers({
      .on_add = [this](const kube::Pod& p) { enqueue_node(p.node_name); },
      .on_update =
          [this](const kube::Pod& o, const kube::Pod& n) {
            // As the original (v1.6.2): only a node or label change matters.
            if (o.node_name == n.node_name && label_of(o) == label_of(n)) return;
            enqueue_node(o.node_name);
            enqueue_node(n.node_name);
          },
      .on_delete = [this](const kube::Pod& p) { enqueue_node(p.node_name); },
  });
  auto all = [this](const auto&) { enqueue_all(); };
  identities_->add_handlers({
      .on_add = all,
      .on_update =
          [this](const kube::AzureIdentity& o, const kube::AzureIdentity& n) {
            AAI a, b;
            a.azure_identity_ref = o;
            b.azure_identity_ref = n;
            a.azure_binding_ref = b.azure_binding_ref = kube::AzureIdentityBinding{};
            if (!same_assignment(a, b)) enqueue_all();  // metadata-only edits change nothing
          },
      .on_delete = all,
  });
  bindings_->add_handlers({
      .on_add = all,
      .on_update =
          [this](const kube::AzureIdentityBinding& o, const kube::AzureIdentityBinding& n) {
            if (o.azure_identity != n.azure_identity || o.selector != n.selector) enqueue_all();
          },
      .on_delete = all,
  });
  nodes_->add_handlers({
      .on_add = [this](const kube::Node& n) { enqueue_node(n.meta.name); },
      .on_update =
          [this](const kube::Node& o, const kube::Node& n) {
            if (o.provider_id == n.provider_id) return;
            if (auto it = node_keys_.find(o.meta.name); it != node_keys_.end() && working_)
              queue_.add_after(it->second, options_.batch_delay);
            enqueue_node(n.meta.name);
          },
      .on_delete =
          [this](const kube::Node& n) {
            if (!working_) return;
            queue_.add(std::string(kGonePrefix) + n.meta.name);
            if (auto it = node_keys_.find(n.meta.name); it != node_keys_.end())
              queue_.add_after(it->second, options_.batch_delay);
          },
  });
}

void Engine::start_caches() {
  auto ex = client_.executor();
  boost::asio::co_spawn(ex, pods_->run(), boost::asio::detached);
  boost::asio::co_spawn(ex, nodes_->run(), boost::asio::detached);
  boost::asio::co_spawn(ex, identities_->run(), boost::asio::detached);
  boost::asio::co_spawn(ex, bindings_->run(), boost::asio::detached);
  boost::asio::co_spawn(ex, aais_->run(), boost::asio::detached);
}

bool Engine::caches_synced() const {
  return pods_->synced() && nodes_->synced() && identities_->synced() && bindings_->synced() && aais_->synced();
}

boost::asio::awaitable<bool> Engine::wait_synced(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  };
  bool ok = co_await pods_->wait_synced(left());
  if (ok) ok = co_await nodes_->wait_synced(left());
  if (ok) ok = co_await identities_->wait_synced(left());
  if (ok) ok = co_await bindings_->wait_synced(left());
  if (ok) ok = co_await aais_->wait_synced(left());
  co_return ok;
}

std::optional<std::string> Engine::key_of_node(const std::string& node_name) {
  auto node = nodes_->get(node_name);
  if (!node) return std::nullopt;
  auto ref = azure::resolve_node(node->provider_id, node->meta.name, options_.default_subscription,
                                 options_.default_resource_group);
  auto key = ref.key();
  refs_[key] = ref;
  node_keys_[node_name] = key;
  return key;
}

void Engine::enqueue_node(const std::string& node_name) {
  if (!working_ || node_name.empty()) return;
  if (auto key = key_of_node(node_name)) {
    queue_.add_after(*key, options_.batch_delay);
    return;
  }
  // Pod or AAI on a node we do not know: if AAIs point at it, clean them up.
  if (!aais_->by_index("node", node_name).empty()) queue_.add(std::string(kGonePrefix) + node_name);
}

void Engine::enqueue_all() {
  if (!working_) return;
  std::set<std::string> names;
  for (const auto& n : nodes_->list()) names.insert(n->meta.name);
  for (const auto& a : aais_->list())
    if (!a->node_name.empty()) names.insert(a->node_name);
  for (const auto& name : names) enqueue_node(name);
  metrics_.queue_depth.get().set(static_cast<double>(queue_.depth()));
}

void Engine::retry_all_now() {
  if (!working_) return;
  for (const auto& [key, ref] : refs_) {
    queue_.forget(key);
    queue_.add(key);
  }
}

void Engine::check_drift() {
  if (!working_) return;
  for (const auto& a : aais_->list()) {
    if (a->status != kube::kAssignedIDAssigned || assigned_resource_id(*a).empty()) continue;
    if (auto key = key_of_node(a->node_name)) {
      drift_due_.insert(*key);
      queue_.add(*key);
    }
  }
}

boost::asio::awaitable<void> Engine::tick(std::chrono::milliseconds period, bool drift) {
  std::weak_ptr<bool> alive = alive_;
  auto& timer = drift ? drift_timer_ : resync_timer_;
  for (;;) {
    timer.expires_after(period);
    auto [ec] = co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    if (alive.expired() || ec || !working_) co_return;
    if (drift) check_drift();
    else enqueue_all();
  }
}

boost::asio::awaitable<void> Engine::run_work() {
  working_ = true;
  work_cancel_ = azure::Cancellation();
  auto ex = client_.executor();
  if (options_.resync_period.count() > 0) boost::asio::co_spawn(ex, tick(options_.resync_period, false), boost::asio::detached);
  if (options_.drift_interval.count() > 0) boost::asio::co_spawn(ex, tick(options_.drift_interval, true), boost::asio::detached);
  enqueue_all();
  std::weak_ptr<bool> alive = alive_;
  for (;;) {
    auto key = co_await queue_.get();
    if (alive.expired() || !key) break;
    metrics_.queue_depth.get().set(static_cast<double>(queue_.depth()));
    auto start = std::chrono::steady_clock::now();
    Outcome out;
    try {
      out = co_await reconcile(*key);
    } catch (const std::exception& e) {  // a bug must not end the controller
      log::error("reconcile failed", e.what(), {{"key", *key}});
      out.retry = true;
    }
    if (alive.expired()) co_return;
    ++stats_.reconciles;
    metrics_.reconcile_duration.with({out.retry ? "retry" : "ok"}).observe(seconds_since(start));
    if (out.retry) {
      ++stats_.failures;
      queue_.add_rate_limited(*key, out.not_before);
    } else {
      queue_.forget(*key);
    }
    queue_.done(*key);
    metrics_.queue_depth.get().set(static_cast<double>(queue_.depth()));
  }
  working_ = false;
}

void Engine::stop_work() {
  working_ = false;
  work_cancel_.cancel();  // an ARM call in flight is abandoned
  resync_timer_.cancel();
  drift_timer_.cancel();
  wait_timer_.cancel();
  queue_.shut_down();
}

void Engine::stop() {
  stop_work();
  pods_->stop();
  nodes_->stop();
  identities_->stop();
  bindings_->stop();
  aais_->stop();
}

void Engine::expect(const AAI& written) { expected_[written.key()] = written.meta.resource_version; }
void Engine::expect_gone(const AAI& removed) { expected_[removed.key()] = ""; }

bool Engine::expectations_met() const {
  for (const auto& [key, rv] : expected_) {
    auto cached = aais_->get(key);
    if (rv.empty()) {
      if (cached) return false;
      continue;
    }
    if (!cached) return false;
    auto want = rv_number(rv), have = rv_number(cached->meta.resource_version);
    if (want && have && *have < *want) return false;
  }
  return true;
}

// The AAI cache must reflect what we wrote before we plan again, or we would write it twice.
boost::asio::awaitable<void> Engine::wait_for_own_writes() {
  auto deadline = std::chrono::steady_clock::now() + options_.write_wait;
  while (!expected_.empty() && !expectations_met()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      log::debug(2, "AAI cache did not catch up with our writes in time", {{"pending", expected_.size()}});
      break;
    }
    const auto step = std::min(left, std::chrono::milliseconds(500));
    co_await aais_->changed().wait(step);
  }
  expected_.clear();
}

boost::asio::awaitable<Engine::Outcome> Engine::reconcile(const std::string& key) {
  if (key.starts_with(kGonePrefix)) {
    auto node = key.substr(kGonePrefix.size());
    auto out = co_await reconcile_gone_node(node);
    co_return out;
  }
  auto out = co_await reconcile_compute(key);
  co_return out;
}

void Engine::binding_applied(const AAI& aai) {
  if (!aai.azure_binding_ref) return;
  events_.normal(kube::EventRecorder::reference(*aai.azure_binding_ref), "binding applied",
                 fmt::format("Binding {} applied on node {} for pod {}", binding_name(aai), aai.node_name,
                             aai.meta.name));
}

// As the original: a Warning on the AAI itself.
void Engine::status_update_error(const AAI& aai, const std::string& status, const kube::Error& e) {
  events_.warning(kube::EventRecorder::reference(aai), "status update error",
                  fmt::format("failed to update AzureAssignedIdentity {}/{} status to {} for pod {}/{}, error: {}",
                              aai.meta.ns, aai.meta.name, status, aai.pod_namespace, aai.pod, e.describe()));
}

void Engine::binding_error(const AAI& aai, const std::string& reason, const std::string& msg) {
  if (aai.azure_binding_ref) events_.warning(kube::EventRecorder::reference(*aai.azure_binding_ref), reason, msg);
}

// Node gone: its AAIs are deleted without any ARM call (the VM is gone or no longer ours).
boost::asio::awaitable<Engine::Outcome> Engine::reconcile_gone_node(const std::string& node) {
  Outcome out;
  if (nodes_->get(node)) co_return out;  // back again: the VM/VMSS key handles it
  co_await wait_for_own_writes();
  auto aais = aais_->by_index("node", node);
  if (aais.empty() || !can_write()) co_return out;
  for (const auto& a : aais) {
    if (!can_write()) co_return out;
    auto r = co_await writer_.remove(*a);
    ++stats_.aai_writes;
    if (r) {
      expect_gone(*a);
      if (a->azure_binding_ref)
        events_.normal(kube::EventRecorder::reference(*a->azure_binding_ref), "binding removed",
                       fmt::format("Binding {} removed from node {} for pod {}", binding_name(*a), node, a->pod));
    } else {
      out.retry = true;
      if (a->azure_binding_ref)
        events_.warning(kube::EventRecorder::reference(*a->azure_binding_ref), "binding remove error",
                        fmt::format("Binding {} removal from node {} for pod {} resulted in error {}",
                                    binding_name(*a), node, a->pod, r.error().describe()));
    }
  }
  log::info("node gone: its assigned identities deleted without ARM calls", {{"node", node}, {"count", aais.size()}});
  co_return out;
}

boost::asio::awaitable<Engine::Outcome> Engine::reconcile_compute(const std::string& key) {
  Outcome out;
  co_await wait_for_own_writes();
  auto ref_it = refs_.find(key);
  if (ref_it == refs_.end()) co_return out;
  const azure::ComputeRef ref = ref_it->second;

  // The nodes of this VM / VMSS, their pods and existing AAIs.
  std::vector<std::string> node_names;
  for (const auto& n : nodes_->by_index("compute", key)) node_names.push_back(n->meta.name);
  if (node_names.empty()) co_return out;
  std::vector<kube::Cache<kube::Pod>::Ptr> pods;
  PlanInputs in;
  in.immutable_client_ids = options_.immutable_client_ids;
  for (const auto& n : node_names) {
    for (auto& p : pods_->by_index("node", n)) pods.push_back(p);
    for (auto& a : aais_->by_index("node", n)) in.current.push_back(*a);
  }
  auto identities = identities_->list();
  auto bindings = bindings_->list();
  DesiredInputs din;
  for (const auto& p : pods) din.pods.push_back(p.get());
  for (const auto& i : identities) din.identities.push_back(i.get());
  for (const auto& b : bindings) din.bindings.push_back(b.get());
  din.force_namespaced = options_.force_namespaced;
  auto desired = desired_assignments(din);
  for (const auto& w : desired.warnings) log::debug(2, w, {{"key", key}});
  for (auto& [k, a] : desired.assignments) in.desired.push_back(std::move(a));
  in.verify_assigned = drift_due_.erase(key) > 0;

  Plan plan = plan_assignments(in);
  if (plan.writes_nothing() && plan.add_ids.empty() && plan.remove_ids.empty() && !claimed_.count(key)) {
    out.retry = plan.requeue;
    co_return out;
  }
  if (!can_write()) co_return out;
  auto start = std::chrono::steady_clock::now();
  // A periodic drift check that finds nothing to write is routine: not an info line every interval.
  const bool drift_check_only = plan.writes_nothing() && plan.remove_ids.empty() && !plan.verify.empty();
  if (drift_check_only)
    log::debug(1, "drift check", {{"key", key}, {"identities", plan.verify.size()}});
  else
    log::info("reconciling", {{"key", key}, {"create", plan.create.size()}, {"update", plan.update.size()},
                              {"retry", plan.retry.size()}, {"delete", plan.remove.size()},
                              {"add", plan.add_ids.size()}, {"remove", plan.remove_ids.size()}});

  // 1. AAIs to assign, written as Created first (so NMI knows to wait).
  std::vector<AAI> assigning;
  for (const auto& a : plan.create) {
    if (!can_write()) co_return out;  // leadership lost while we waited on the apiserver
    auto r = co_await writer_.create(a);
    ++stats_.aai_writes;
    if (r) {
      expect(*r);
      assigning.push_back(*r);
    } else {
      out.retry = true;
      binding_error(a, "binding apply error",
                    fmt::format("Applying binding {} node {} for pod {} resulted in error {}", binding_name(a),
                                a.node_name, a.meta.name, r.error().describe()));
    }
  }
  for (const auto& u : plan.update) {
    if (!can_write()) co_return out;
    auto r = co_await writer_.update(u.after);
    ++stats_.aai_writes;
    if (r) {
      expect(*r);
      assigning.push_back(*r);
    } else {
      out.retry = true;
      binding_error(u.after, "binding apply error",
                    fmt::format("Applying binding {} node {} for pod {} resulted in error {}",
                                binding_name(u.after), u.after.node_name, u.after.meta.name, r.error().describe()));
    }
  }
  for (const auto& a : plan.retry) assigning.push_back(a);

  // 2. One coalesced identity update for the VM / VMSS.
  std::set<std::string> add_set;
  for (const auto& a : assigning) add_set.insert(assigned_resource_id(a));
  for (const auto& a : plan.verify) add_set.insert(assigned_resource_id(a));
  add_set.erase(std::string());
  std::vector<std::string> adds(add_set.begin(), add_set.end());
  azure::UpdateResult result;
  std::set<std::string> before;
  if (!adds.empty() || !plan.remove_ids.empty()) {
    if (!can_write()) co_return out;
    const azure::Cancellation cancel = work_cancel_;
    result = co_await azure::update_user_identities(arm_, clock_, ref, adds, plan.remove_ids, options_.update,
                                                    cancel);
    ++stats_.arm_updates;
    before = arm_.last_seen(ref);
    // A leader that lost the lease meanwhile writes nothing more: the new leader reconciles.
    if (!can_write()) co_return out;
  }
  // Identities MIC itself put on the VM/VMSS now (absent from the GET before the PATCH), and
  // those whose found-on-vm AAIs could not be rewritten before: MIC owns them from now on.
  std::set<std::string> claimed;
  if (auto it = claimed_.find(key); it != claimed_.end()) {
    claimed = std::move(it->second);
    claimed_.erase(it);
  }
  for (const auto& id : result.added)
    if (!before.count(id)) {
      claimed.insert(id);
      if (drift_check_only) log::info("drift check: re-added an identity missing from the VM/VMSS", {{"key", key}, {"identity", id}});
    }
  std::set<std::string> added(result.added.begin(), result.added.end());
  std::set<std::string> removed(result.removed.begin(), result.removed.end());
  auto note_failure = [&](const azure::Error& e) {
    out.retry = true;
    if (e.retry_after) {
      auto nb = std::chrono::steady_clock::now() + *e.retry_after;
      if (!out.not_before || *out.not_before < nb) out.not_before = nb;
    }
  };
  for (const auto& [id, e] : result.failed) note_failure(e);

  // 3. Assigned for what succeeded; Created stays (with a Warning) for what failed.
  for (const auto& a : assigning) {
    auto id = assigned_resource_id(a);
    if (!id.empty() && !added.count(id)) {
      const auto* e = result.error_for(id);
      binding_error(a, "binding apply error",
                    fmt::format("Applying binding {} node {} for pod {} resulted in error {}", binding_name(a),
                                a.node_name, a.meta.name, e ? e->describe() : std::string("identity not assigned")));
      continue;
    }
    bool found = !claimed.count(id) && identity_found_on_vm(id, before, in.current, a.key());
    const std::string assigned_state = kube::kAssignedIDAssigned;
    if (!can_write()) co_return out;
    auto r = co_await writer_.set_status(a, assigned_state, found);
    ++stats_.aai_writes;
    if (r) {
      expect(*r);
      binding_applied(a);
    } else {
      out.retry = true;
      if (claimed.count(id)) claimed_[key].insert(id);
      status_update_error(a, assigned_state, r.error());
    }
  }
  // Found-on-vm AAIs kept on this VM/VMSS whose identity MIC has now (re-)added, e.g. the drift
  // reconcile after someone detached it by hand: no longer found-on-vm, so it goes with the last pod.
  std::set<std::string> handled;
  for (const auto& a : assigning) handled.insert(a.key());
  for (const auto& a : plan.remove) handled.insert(a.key());
  for (const auto& c : in.current) {
    auto id = assigned_resource_id(c);
    if (!claimed.count(id) || !marked_found_on_vm(c) || c.meta.deletion_timestamp || handled.count(c.key())) continue;
    if (!can_write()) co_return out;
    auto r = co_await writer_.clear_found_on_vm(c);
    ++stats_.aai_writes;
    if (r) {
      expect(*r);
      log::info("identity now assigned by MIC: no longer marked found on the VM/VMSS",
                {{"key", key}, {"assignment", c.key()}, {"identity", id}});
    } else if (!r.error().not_found()) {
      out.retry = true;
      claimed_[key].insert(id);
      log::warning("could not drop the found-on-vm mark", {{"assignment", c.key()}, {"error", r.error().describe()}});
    }
  }
  for (const auto& a : plan.verify) {
    auto id = assigned_resource_id(a);
    if (!added.count(id)) log::warning("drift check: identity could not be re-added", {{"key", key}, {"identity", id}});
  }

  // 4. Deletions: after the identity left the VM/VMSS (or never had to).
  std::set<std::string> to_remove(plan.remove_ids.begin(), plan.remove_ids.end());
  for (const auto& a : plan.remove) {
    auto id = assigned_resource_id(a);
    if (to_remove.count(id)) {
      if (!removed.count(id)) continue;  // kept; retried with backoff
      if (a.status != kube::kAssignedIDUnassigned) {
        const std::string unassigned_state = kube::kAssignedIDUnassigned;
        if (!can_write()) co_return out;
        auto s = co_await writer_.set_status(a, unassigned_state);
        ++stats_.aai_writes;
        if (!s && !s.error().not_found()) {
          out.retry = true;
          status_update_error(a, unassigned_state, s.error());
          continue;
        }
      }
    }
    if (!can_write()) co_return out;
    auto r = co_await writer_.remove(a);
    ++stats_.aai_writes;
    if (r) expect_gone(a);
    else out.retry = true;
  }
  if (plan.requeue) out.retry = true;
  metrics_.cycle_duration.get().observe(seconds_since(start));
  metrics_.cycle_count.get().inc();
  co_return out;
}

}  // namespace aad::identity::mic
