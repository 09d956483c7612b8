#include "identity/mic/type_upgrade.hpp"

#include <fmt/format.h>

#include <boost/json/value.hpp>
#include <functional>
#include <map>
#include <span>
#include <string_view>

#include "core/log.hpp"
#include "core/version.hpp"
#include "kube/models.hpp"
#include "kube/resource.hpp"
#include "kube/typed.hpp"

namespace aad::identity::mic {

namespace json = boost::json;
namespace asio = boost::asio;

// ---------------------------------------------------------------------------------------------
// Key mapping (original-behaviour.md section 1.9.1). Before v1.6.0 the objects were decoded
// case-insensitively (Go encoding/json) and the docs used capitalised keys:
//   AzureIdentity            ClientID -> clientID, ClientPassword -> clientPassword,
//                            ResourceID -> resourceID, TenantID -> tenantID
//   AzureIdentityBinding     AzureIdentity -> azureIdentity, Selector -> selector
//   AzurePodIdentityException PodLabels -> podLabels
// and the pre-1.6 Go types wrote lower-case keys: resourceid, clientid, clientpassword,
// tenantid, adresourceid, adendpoint, azureidentity, azureidentityref, azurebindingref,
// podnamespace, plus a capitalised top-level `Status` on AAIs and exceptions.
// The original's upgrade decoded every object with encoding/json into the v1 types and PUT it
// back, i.e. each field takes the value of any key equal to its name ignoring case. We do the
// same on the raw JSON with the v1 field names below (the CRD schema of section 1): a key equal
// to a field name ignoring ASCII case is renamed to the field name. If the exact camelCase key
// is present it wins and the variants are dropped; among several variants the last one in the
// server's (sorted) key order wins, as with encoding/json. Unknown keys are kept.
// ---------------------------------------------------------------------------------------------
namespace {

struct Field;
using Schema = std::span<const Field>;
struct Field {
  std::string_view key;
  Schema child{};  // recurse into the value when it is an object
};

constexpr Field kSecretRef[] = {{"name"}, {"namespace"}};
constexpr Field kIdentitySpec[] = {{"metadata"},     {"type"},     {"resourceID"},
                                   {"clientID"},     {"clientPassword", kSecretRef},
                                   {"tenantID"},     {"auxiliaryTenantIDs"},
                                   {"adEndpoint"},   {"adResourceID"}, {"replicas"}};
constexpr Field kReplicaStatus[] = {{"metadata"}, {"availableReplicas"}};
constexpr Field kIdentity[] = {
    {"apiVersion"}, {"kind"}, {"metadata"}, {"spec", kIdentitySpec}, {"status", kReplicaStatus}};
constexpr Field kBindingSpec[] = {{"metadata"}, {"azureIdentity"}, {"selector"}, {"weight"}};
constexpr Field kBinding[] = {
    {"apiVersion"}, {"kind"}, {"metadata"}, {"spec", kBindingSpec}, {"status", kReplicaStatus}};
// The embedded copies are handled separately (see upgrade_assigned), hence no child here.
constexpr Field kAssignedSpec[] = {{"metadata"}, {"azureIdentityRef"}, {"azureBindingRef"}, {"pod"},
                                   {"podNamespace"}, {"nodename"}, {"replicas"}};
constexpr Field kAssignedStatus[] = {{"metadata"}, {"status"}, {"availableReplicas"}};
constexpr Field kAssigned[] = {
    {"apiVersion"}, {"kind"}, {"metadata"}, {"spec", kAssignedSpec}, {"status", kAssignedStatus}};
constexpr Field kExceptionSpec[] = {{"metadata"}, {"podLabels"}};  // label keys stay as they are
constexpr Field kExceptionStatus[] = {{"metadata"}, {"status"}};
constexpr Field kException[] = {
    {"apiVersion"}, {"kind"}, {"metadata"}, {"spec", kExceptionSpec}, {"status", kExceptionStatus}};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto x = a[i] >= 'A' && a[i] <= 'Z' ? a[i] - 'A' + 'a' : a[i];
    auto y = b[i] >= 'A' && b[i] <= 'Z' ? b[i] - 'A' + 'a' : b[i];
    if (x != y) return false;
  }
  return true;
}

bool normalise(json::object& o, Schema schema) {
  bool changed = false;
  for (const auto& f : schema) {
    std::vector<std::string> variants;
    for (const auto& kv : o)
      if (kv.key() != f.key && iequals(kv.key(), f.key)) variants.emplace_back(kv.key());
    if (!variants.empty()) {
      if (!o.contains(f.key)) {
        json::value v = o.at(variants.back());
        o[f.key] = std::move(v);
      }
      for (const auto& k : variants) o.erase(k);
      changed = true;
    }
    if (!f.child.empty())
      if (auto* v = o.if_contains(f.key); v && v->is_object()) changed = normalise(v->get_object(), f.child) || changed;
  }
  return changed;
}

// Embedded resources need apiVersion and kind (the apiserver refuses an AAI whose copies lack
// them); pre-1.8 MIC wrote copies without (the original's fix #1057 injects them).
bool add_type_meta(json::object& o, const kube::Resource& r) {
  bool changed = false;
  if (!o.contains("apiVersion")) {
    o["apiVersion"] = r.api_version();
    changed = true;
  }
  if (!o.contains("kind")) {
    o["kind"] = r.kind;
    changed = true;
  }
  return changed;
}

json::object* spec_of(json::object& o) {
  auto* s = o.if_contains("spec");
  return s && s->is_object() ? &s->get_object() : nullptr;
}

}  // namespace

namespace legacy_keys {
bool upgrade_identity(json::object& o) { return normalise(o, kIdentity); }
bool upgrade_binding(json::object& o) { return normalise(o, kBinding); }
bool upgrade_exception(json::object& o) { return normalise(o, kException); }

AssignedChanges upgrade_assigned(json::object& o) {
  AssignedChanges c;
  c.any = normalise(o, kAssigned);
  bool type_meta = false;
  if (auto* spec = spec_of(o)) {
    if (auto* r = spec->if_contains("azureIdentityRef"); r && r->is_object()) {
      c.identity_ref = normalise(r->get_object(), kIdentity);
      type_meta = add_type_meta(r->get_object(), kube::resources::azure_identities) || type_meta;
    }
    if (auto* r = spec->if_contains("azureBindingRef"); r && r->is_object()) {
      c.binding_ref = normalise(r->get_object(), kBinding);
      type_meta = add_type_meta(r->get_object(), kube::resources::azure_identity_bindings) || type_meta;
    }
  }
  c.any = c.any || c.identity_ref || c.binding_ref || type_meta;
  return c;
}
}  // namespace legacy_keys

namespace {

// The objects as they are after the upgrade of their kind, for the AAIs' embedded copies.
struct Current {
  json::object object;
  bool rewritten = false;
};
using CurrentMap = std::map<std::string, Current>;  // "ns/name"

// What a transform decided for one object.
struct Step {
  bool changed = false;
  std::string malformed;  // non-empty: leave the object alone, log this
};
using Transform = std::function<Step(json::object&)>;

template <typename T>
std::string decode_problem(const json::object& o) {
  auto d = T::decode(o);
  if (!d) return d.error().message;
  if (d->meta.name.empty()) return "metadata.name missing";
  return {};
}

std::string object_ref(const json::object& o) {
  auto k = kube::object_key(o);
  return k.empty() ? "<unnamed>" : k;
}

bool same_identity(const json::object& a, const json::object& b) {
  auto x = kube::AzureIdentity::decode(a);
  auto y = kube::AzureIdentity::decode(b);
  if (!x || !y) return false;
  const auto& p = x->client_password;
  const auto& q = y->client_password;
  bool same_secret = p.has_value() == q.has_value() && (!p || (p->name == q->name && p->ns == q->ns));
  return x->meta.uid == y->meta.uid && x->meta.annotations == y->meta.annotations && x->type == y->type &&
         x->resource_id == y->resource_id && x->client_id == y->client_id && same_secret &&
         x->tenant_id == y->tenant_id && x->auxiliary_tenant_ids == y->auxiliary_tenant_ids &&
         x->ad_endpoint == y->ad_endpoint && x->ad_resource_id == y->ad_resource_id;
}

bool same_binding(const json::object& a, const json::object& b) {
  auto x = kube::AzureIdentityBinding::decode(a);
  auto y = kube::AzureIdentityBinding::decode(b);
  if (!x || !y) return false;
  return x->meta.uid == y->meta.uid && x->azure_identity == y->azure_identity && x->selector == y->selector &&
         x->weight == y->weight;
}

// The copy MIC embeds: the object with apiVersion/kind (fix #1057 of the original), without
// the server's bookkeeping of field managers.
json::object embedded_copy(json::object o, const kube::Resource& r) {
  o["apiVersion"] = r.api_version();
  o["kind"] = r.kind;
  if (auto* m = o.if_contains("metadata"); m && m->is_object()) m->get_object().erase("managedFields");
  return o;
}

// Replaces spec.<field> by the current object when the copy was just renamed (or the object
// was just rewritten) and both describe the same object: the AAI then looks exactly as MIC
// would write it now, so no re-assignment follows. A copy that differs is a change MIC has not
// processed yet; it stays (renamed) so MIC still sees it.
bool refresh_ref(json::object& spec, const char* field, bool renamed, const CurrentMap& current,
                 const kube::Resource& r, bool (*same)(const json::object&, const json::object&)) {
  auto* v = spec.if_contains(field);
  if (!v || !v->is_object()) return false;
  auto key = kube::object_key(v->get_object());
  auto it = current.find(key);
  if (it == current.end() || !(renamed || it->second.rewritten)) return false;
  if (!same(v->get_object(), it->second.object)) return false;
  auto copy = embedded_copy(it->second.object, r);
  if (copy == v->get_object()) return false;
  *v = std::move(copy);
  return true;
}

enum class Done { unchanged, rewritten, skipped, gone };

struct ObjectOutcome {
  Done done = Done::unchanged;
  json::object current;  // unchanged / rewritten
};

// One object: transform, PUT if changed; on 409 a fresh GET and again.
asio::awaitable<kube::Result<ObjectOutcome>> upgrade_object(kube::Client& c, const kube::Resource& r,
                                                            json::object item, Transform transform,
                                                            int max_conflicts, TypeUpgradeReport& report) {
  const std::string who = r.kind + " " + object_ref(item);
  for (int attempt = 0;; ++attempt) {
    json::object obj = item;
    Step step = transform(obj);
    if (!step.malformed.empty()) {
      log::warning("type upgrade: object left as it is", {{"object", who}, {"reason", step.malformed}});
      report.skipped.push_back(who + ": " + step.malformed);
      co_return ObjectOutcome{Done::skipped, {}};
    }
    if (!step.changed) co_return ObjectOutcome{Done::unchanged, std::move(item)};
    auto put = co_await c.update(r, std::move(obj));
    if (put) {
      log::debug(2, "type upgrade: rewritten with camelCase keys", {{"object", who}});
      co_return ObjectOutcome{Done::rewritten, std::move(*put)};
    }
    const auto& e = put.error();
    if (e.not_found()) co_return ObjectOutcome{Done::gone, {}};
    if (e.invalid() || e.code == 400) {
      log::warning("type upgrade: apiserver refused the upgraded object; left as it is",
                   {{"object", who}, {"reason", e.describe()}});
      report.skipped.push_back(who + ": " + e.describe());
      co_return ObjectOutcome{Done::skipped, {}};
    }
    if (!e.conflict() || attempt >= max_conflicts) co_return e;
    auto md = kube::decode_meta(item);
    std::string ns = md ? md->ns : std::string();
    std::string name = md ? md->name : std::string();
    auto fresh = co_await c.get(r, ns, name);
    if (!fresh) {
      if (fresh.error().not_found()) co_return ObjectOutcome{Done::gone, {}};
      co_return fresh.error();
    }
    item = std::move(*fresh);
  }
}

void count(TypeUpgradeCounts& n, Done d) {
  switch (d) {
    case Done::unchanged: ++n.unchanged; break;
    case Done::rewritten: ++n.rewritten; break;
    case Done::skipped: ++n.skipped; break;
    case Done::gone: ++n.gone; break;
  }
}

// Lists every object of a kind (all namespaces, raw JSON) and upgrades each one.
asio::awaitable<kube::Result<void>> upgrade_kind(kube::Client& c, const kube::Resource& r, Transform transform,
                                                 int max_conflicts, TypeUpgradeCounts& counts,
                                                 TypeUpgradeReport& report, CurrentMap* current) {
  std::string all_namespaces;
  kube::ListOptions options;  // named: a defaulted argument is a temporary (GCC 12)
  auto list = co_await c.list(r, std::move(all_namespaces), std::move(options));
  if (!list) co_return list.error();
  counts.listed = static_cast<int>(list->items.size());
  for (auto& item : list->items) {
    auto out = co_await upgrade_object(c, r, std::move(item), transform, max_conflicts, report);
    if (!out) co_return out.error();
    count(counts, out->done);
    if (current && (out->done == Done::unchanged || out->done == Done::rewritten)) {
      auto key = kube::object_key(out->current);
      (*current)[key] = Current{std::move(out->current), out->done == Done::rewritten};
    }
  }
  co_return kube::Result<void>();
}

template <typename T>
Transform simple_transform(bool (*rename)(json::object&)) {
  return [rename](json::object& o) {
    Step s;
    s.changed = rename(o);
    s.malformed = decode_problem<T>(o);
    return s;
  };
}

asio::awaitable<kube::Result<kube::ConfigMap>> get_or_create_config_map(kube::Client& c,
                                                                        const TypeUpgradeOptions& o) {
  for (int attempt = 0;; ++attempt) {
    auto got = co_await kube::get<kube::ConfigMap>(c, o.ns, o.config_map_name);
    if (got || !got.error().not_found()) co_return got;
    kube::ConfigMap cm;
    cm.meta.ns = o.ns;
    cm.meta.name = o.config_map_name;
    auto made = co_await kube::create(c, cm);
    if (made || !made.error().already_exists() || attempt >= 1) co_return made;
  }
}

asio::awaitable<kube::Result<void>> record_done(kube::Client& c, const TypeUpgradeOptions& o, kube::ConfigMap cm,
                                                const std::string& version) {
  for (int attempt = 0;; ++attempt) {
    if (cm.data.contains(o.status_key)) co_return kube::Result<void>();  // another writer was first
    cm.data[o.status_key] = version;
    auto put = co_await kube::update(c, cm);
    if (put) co_return kube::Result<void>();
    if (!put.error().conflict() || attempt >= o.max_conflict_retries) co_return put.error();
    auto fresh = co_await kube::get<kube::ConfigMap>(c, o.ns, o.config_map_name);
    if (!fresh) co_return fresh.error();
    cm = std::move(*fresh);
  }
}

}  // namespace

asio::awaitable<TypeUpgradeResult> run_type_upgrade(kube::Client& c, TypeUpgradeOptions o) {
  TypeUpgradeReport report;
  if (!o.enabled) {
    log::info("type upgrade disabled (--enable-type-upgrade=false)");
    co_return report;
  }
  auto cm = co_await get_or_create_config_map(c, o);
  if (!cm) co_return cm.error();
  if (auto it = cm->data.find(o.status_key); it != cm->data.end()) {
    report.outcome = TypeUpgradeReport::Outcome::already_done;
    report.recorded_version = it->second;
    log::info("type upgrade status found in the ConfigMap; skipping the type upgrade",
              {{"configmap", o.ns + "/" + o.config_map_name}, {"version", it->second}});
    co_return report;
  }
  log::info("upgrading the aadpodidentity.k8s.io objects to camelCase field names",
            {{"configmap", o.ns + "/" + o.config_map_name}});

  namespace res = kube::resources;
  const int retries = o.max_conflict_retries;
  CurrentMap identities, bindings;
  // Named transforms: no temporaries inside co_await arguments (GCC 12).
  Transform identity = simple_transform<kube::AzureIdentity>(legacy_keys::upgrade_identity);
  Transform binding = simple_transform<kube::AzureIdentityBinding>(legacy_keys::upgrade_binding);
  Transform exception = simple_transform<kube::AzurePodIdentityException>(legacy_keys::upgrade_exception);
  auto step = co_await upgrade_kind(c, res::azure_identities, identity, retries, report.identities, report,
                                    &identities);
  if (!step) co_return step.error();
  step = co_await upgrade_kind(c, res::azure_identity_bindings, binding, retries, report.bindings, report, &bindings);
  if (!step) co_return step.error();
  step = co_await upgrade_kind(c, res::azure_pod_identity_exceptions, exception, retries, report.exceptions, report,
                               nullptr);
  if (!step) co_return step.error();

  // AAIs last: their embedded copies follow the identities and bindings just written.
  Transform assigned = [&identities, &bindings](json::object& o) {
    Step s;
    auto changes = legacy_keys::upgrade_assigned(o);
    s.changed = changes.any;
    if (auto* spec = spec_of(o)) {
      bool a = refresh_ref(*spec, "azureIdentityRef", changes.identity_ref, identities, res::azure_identities,
                           same_identity);
      bool b = refresh_ref(*spec, "azureBindingRef", changes.binding_ref, bindings, res::azure_identity_bindings,
                           same_binding);
      s.changed = s.changed || a || b;
    }
    s.malformed = decode_problem<kube::AzureAssignedIdentity>(o);
    return s;
  };
  step = co_await upgrade_kind(c, res::azure_assigned_identities, assigned, retries, report.assigned, report,
                               nullptr);
  if (!step) co_return step.error();

  const std::string version = o.version.empty() ? std::string(aad::version::semver) : o.version;
  auto recorded = co_await record_done(c, o, std::move(*cm), version);
  if (!recorded) co_return recorded.error();
  report.outcome = TypeUpgradeReport::Outcome::upgraded;
  report.recorded_version = version;
  auto total = [](const TypeUpgradeCounts& n) { return fmt::format("{}/{}", n.rewritten, n.listed); };
  log::info("type upgrade completed",
            {{"identities", total(report.identities)}, {"bindings", total(report.bindings)},
             {"exceptions", total(report.exceptions)}, {"assignedIdentities", total(report.assigned)},
             {"skipped", static_cast<int>(report.skipped.size())}, {"version", version}});
  co_return report;
}

}  // namespace aad::identity::mic
