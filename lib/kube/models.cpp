#include "kube/models.hpp"

#include <cstdint>
#include <fmt/format.h>

#include <boost/json/value.hpp>
#include <ctime>

#include "kube/config.hpp"

namespace aad::kube {

namespace json = boost::json;

namespace {

// Reads fields of one JSON object; the first type error is kept (with its path) and reported.
class Reader {
 public:
  Reader(const json::object* o, std::string path, std::optional<std::string>& err)
      : o_(o), path_(std::move(path)), err_(err) {}

  const json::value* find(const char* key) const {
    if (!o_) return nullptr;
    auto* v = o_->if_contains(key);
    return v && !v->is_null() ? v : nullptr;
  }
  void fail(const char* key, const char* want) {
    if (!err_) err_ = fmt::format("{}{}: expected {}", path_.empty() ? "" : path_ + ".", key, want);
  }
  void str(const char* key, std::string& out) {
    if (auto* v = find(key)) {
      if (v->is_string()) out = std::string(v->get_string());
      else fail(key, "string");
    }
  }
  void str(const char* key, std::optional<std::string>& out) {
    if (find(key)) {
      std::string s;
      str(key, s);
      out = s;
    }
  }
  void boolean(const char* key, bool& out) {
    if (auto* v = find(key)) {
      if (v->is_bool()) out = v->get_bool();
      else fail(key, "boolean");
    }
  }
  void boolean(const char* key, std::optional<bool>& out) {
    if (find(key)) {
      bool b = false;
      boolean(key, b);
      out = b;
    }
  }
  void integer(const char* key, int& out) {
    // 32-bit fields: a larger value is an error for this object, never silently truncated.
    if (auto* v = find(key)) {
      if (v->is_int64() && v->get_int64() >= INT32_MIN && v->get_int64() <= INT32_MAX)
        out = static_cast<int>(v->get_int64());
      else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT32_MAX))
        out = static_cast<int>(v->get_uint64());
      else if (v->is_double() && v->get_double() >= INT32_MIN && v->get_double() <= INT32_MAX &&
               v->get_double() == static_cast<double>(static_cast<int>(v->get_double())))
        out = static_cast<int>(v->get_double());
      else fail(key, "32-bit integer");
    }
  }
  void integer(const char* key, std::optional<int>& out) {
    if (find(key)) {
      int i = 0;
      integer(key, i);
      out = i;
    }
  }
  void strmap(const char* key, StringMap& out) {
    if (auto* v = find(key)) {
      if (!v->is_object()) return fail(key, "object of strings");
      for (const auto& [k, x] : v->get_object()) {
        if (x.is_string()) out[std::string(k)] = std::string(x.get_string());
        else if (!x.is_null()) return fail(key, "object of strings");
      }
    }
  }
  void strlist(const char* key, std::vector<std::string>& out) {
    if (auto* v = find(key)) {
      if (!v->is_array()) return fail(key, "array of strings");
      for (const auto& x : v->get_array()) {
        if (!x.is_string()) return fail(key, "array of strings");
        out.emplace_back(x.get_string());
      }
    }
  }
  // A nested object (nullptr when absent; a type error when not an object).
  Reader child(const char* key) {
    auto* v = find(key);
    if (v && !v->is_object()) fail(key, "object");
    return Reader(v && v->is_object() ? &v->get_object() : nullptr, path_.empty() ? key : path_ + "." + key, err_);
  }
  const json::object* object() const { return o_; }
  const std::string& path() const { return path_; }
  std::optional<std::string>& err() { return err_; }

 private:
  const json::object* o_;
  std::string path_;
  std::optional<std::string>& err_;
};

// Writes fields: a default value is written only if the key was already there (round-trip).
json::object& sub(json::object& o, const char* key) {
  auto& v = o[key];
  if (!v.is_object()) v = json::object();
  return v.get_object();
}
void put(json::object& o, const char* key, const std::string& v) {
  // An empty value is written only over an existing string ("" stays "", null stays null).
  auto* cur = o.if_contains(key);
  if (!v.empty() || (cur && cur->is_string())) o[key] = v;
}
void put(json::object& o, const char* key, const std::optional<std::string>& v) {
  if (v) o[key] = *v;
  else o.erase(key);
}
void put(json::object& o, const char* key, bool v) {
  if (v || o.contains(key)) o[key] = v;
}
void put(json::object& o, const char* key, int v) {
  if (v != 0 || o.contains(key)) o[key] = v;
}
void put(json::object& o, const char* key, const std::optional<int>& v) {
  if (v) o[key] = *v;
  else o.erase(key);
}
void put(json::object& o, const char* key, const StringMap& m) {
  if (m.empty() && !o.contains(key)) return;
  json::object x;
  for (const auto& [k, v] : m) x[k] = v;
  o[key] = std::move(x);
}
void put(json::object& o, const char* key, const std::vector<std::string>& l) {
  if (l.empty() && !o.contains(key)) return;
  json::array a;
  for (const auto& s : l) a.emplace_back(s);
  o[key] = std::move(a);
}
void drop_empty(json::object& o, const json::object& raw, std::initializer_list<const char*> keys) {
  for (auto* k : keys) {
    auto* v = o.if_contains(k);
    if (v && v->is_object() && v->get_object().empty() && !raw.contains(k)) o.erase(k);
  }
}

template <typename T>
Result<T> finish(T&& t, const std::optional<std::string>& err, const char* kind) {
  if (err) return Error::decode(fmt::format("{} {}: {}", kind, t.key(), *err));
  return std::move(t);
}

void read_meta(Reader m, ObjectMeta& out) {
  m.str("name", out.name);
  m.str("generateName", out.generate_name);
  m.str("namespace", out.ns);
  m.str("uid", out.uid);
  m.str("resourceVersion", out.resource_version);
  m.str("creationTimestamp", out.creation_timestamp);
  m.str("deletionTimestamp", out.deletion_timestamp);
  m.strmap("labels", out.labels);
  m.strmap("annotations", out.annotations);
  m.strlist("finalizers", out.finalizers);
  if (auto* refs = m.find("ownerReferences")) {
    if (!refs->is_array()) return m.fail("ownerReferences", "array");
    for (const auto& r : refs->get_array()) {
      if (!r.is_object()) return m.fail("ownerReferences", "array of objects");
      Reader rr(&r.get_object(), m.path() + ".ownerReferences[]", m.err());
      OwnerReference ref;
      rr.str("apiVersion", ref.api_version);
      rr.str("kind", ref.kind);
      rr.str("name", ref.name);
      rr.str("uid", ref.uid);
      rr.boolean("controller", ref.controller);
      rr.boolean("blockOwnerDeletion", ref.block_owner_deletion);
      out.owner_references.push_back(std::move(ref));
    }
  }
}

void start(json::object& out, const json::object& raw, const Resource& r) {
  out = raw;
  if (!out.contains("apiVersion")) out["apiVersion"] = r.api_version();
  if (!out.contains("kind")) out["kind"] = r.kind;
}

Result<AzureIdentity> decode_identity(Reader root);
Result<AzureIdentityBinding> decode_binding(Reader root);

}  // namespace

// ---------------- metadata ----------------

Result<ObjectMeta> decode_meta(const json::object& o) {
  std::optional<std::string> err;
  Reader r(&o, "", err);
  ObjectMeta m;
  read_meta(r.child("metadata"), m);
  if (err) return Error::decode(*err);
  return m;
}

void encode_meta(const ObjectMeta& m, json::object& o) {
  auto& md = sub(o, "metadata");
  put(md, "name", m.name);
  put(md, "generateName", m.generate_name);
  put(md, "namespace", m.ns);
  put(md, "uid", m.uid);
  put(md, "resourceVersion", m.resource_version);
  put(md, "creationTimestamp", m.creation_timestamp);
  put(md, "deletionTimestamp", m.deletion_timestamp);
  put(md, "labels", m.labels);
  put(md, "annotations", m.annotations);
  put(md, "finalizers", m.finalizers);
  if (!m.owner_references.empty() || md.contains("ownerReferences")) {
    json::array prev;
    if (auto* p = md.if_contains("ownerReferences"); p && p->is_array()) prev = p->get_array();
    json::array refs;
    for (std::size_t i = 0; i < m.owner_references.size(); ++i) {
      const auto& r = m.owner_references[i];
      json::object x = i < prev.size() && prev[i].is_object() ? prev[i].get_object() : json::object();
      x["apiVersion"] = r.api_version;
      x["kind"] = r.kind;
      x["name"] = r.name;
      x["uid"] = r.uid;
      if (r.controller) x["controller"] = *r.controller;
      else x.erase("controller");
      if (r.block_owner_deletion) x["blockOwnerDeletion"] = *r.block_owner_deletion;
      else x.erase("blockOwnerDeletion");
      refs.push_back(std::move(x));
    }
    md["ownerReferences"] = std::move(refs);
  }
}

std::string object_key(const json::object& o) {
  auto m = decode_meta(o);
  if (!m) return {};
  return m->ns.empty() ? m->name : m->ns + "/" + m->name;
}

std::string object_resource_version(const json::object& o) {
  auto* m = o.if_contains("metadata");
  if (!m || !m->is_object()) return {};
  auto* v = m->get_object().if_contains("resourceVersion");
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

// ---------------- Pod ----------------

const Resource& Pod::resource() { return resources::pods; }

Result<Pod> Pod::decode(const json::object& o) {
  std::optional<std::string> err;
  Reader r(&o, "", err);
  Pod p;
  read_meta(r.child("metadata"), p.meta);
  auto spec = r.child("spec");
  spec.str("nodeName", p.node_name);
  spec.str("serviceAccountName", p.service_account_name);
  spec.boolean("hostNetwork", p.host_network);
  auto st = r.child("status");
  st.str("phase", p.phase);
  st.str("podIP", p.pod_ip);
  if (auto* ips = st.find("podIPs")) {
    if (!ips->is_array()) st.fail("podIPs", "array");
    else
      for (const auto& x : ips->get_array()) {
        if (!x.is_object()) {
          st.fail("podIPs", "array of objects");
          break;
        }
        Reader ir(&x.get_object(), "status.podIPs[]", err);
        std::string ip;
        ir.str("ip", ip);
        if (!ip.empty()) p.pod_ips.push_back(ip);
      }
  }
  p.raw = o;
  return finish(std::move(p), err, "Pod");
}

json::object Pod::encode() const {
  json::object o;
  start(o, raw, resource());
  encode_meta(meta, o);
  auto& spec = sub(o, "spec");
  put(spec, "nodeName", node_name);
  put(spec, "serviceAccountName", service_account_name);
  put(spec, "hostNetwork", host_network);
  auto& st = sub(o, "status");
  put(st, "phase", phase);
  put(st, "podIP", pod_ip);
  if (!pod_ips.empty() || st.contains("podIPs")) {
    json::array a;
    for (const auto& ip : pod_ips) a.push_back(json::object{{"ip", ip}});
    st["podIPs"] = std::move(a);
  }
  drop_empty(o, raw, {"spec", "status"});
  return o;
}

// ---------------- Node ----------------

const Resource& Node::resource() { return resources::nodes; }

Result<Node> Node::decode(const json::object& o) {
  std::optional<std::string> err;
  Reader r(&o, "", err);
  Node n;
  read_meta(r.child("metadata"), n.meta);
  r.child("spec").str("providerID", n.provider_id);
  n.raw = o;
  return finish(std::move(n), err, "Node");
}

json::object Node::encode() const {
  json::object o;
  start(o, raw, resource());
  encode_meta(meta, o);
  put(sub(o, "spec"), "providerID", provider_id);
  drop_empty(o, raw, {"spec"});
  return o;
}

// ---------------- Secret ----------------

const Resource& Secret::resource() { return resources::secrets; }

Result<Secret> Secret::decode(const json::object& o) {
  std::optional<std::string> err;
  Reader r(&o, "", err);
  Secret s;
  read_meta(r.child("metadata"), s.meta);
  r.str("type", s.type);
  StringMap b64;
  r.strmap("data", b64);
  for (auto& [k, v] : b64) {
    try {
      s.data[k] = base64_decode(v);
    } catch (const std::exception&) {
      if (!err) err = "data." + k + ": expected base64";
    }
  }
  StringMap plain;
  r.strmap("stringData", plain);
  for (auto& [k, v] : plain) s.data[k] = v;
  s.raw = o;
  return finish(std::move(s), err, "Secret");
}

json::object Secret::encode() const {
  json::object o;
  start(o, raw, resource());
  encode_meta(meta, o);
  put(o, "type", type);
  StringMap b64;
  for (const auto& [k, v] : data) b64[k] = base64_encode(v);
  o.erase("stringData");
  put(o, "data", b64);
  return o;
}

// ---------------- ConfigMap ----------------

const Resource& ConfigMap::resource() { return resources::configmaps; }

Result<ConfigMap> ConfigMap::decode(const json::object& o) {
  std::optional<std::string> err;
  Reader r(&o, "", err);
  ConfigMap c;
  read_meta(r.child("metadata"), c.meta);
  r.strmap("data", c.data);
  c.raw = o;
  return finish(std::move(c), err, "ConfigMap");
}

json::object ConfigMap::encode() const {
  json::object o;
  start(o, raw, resource());
  encode_meta(meta, o);
  put(o, "data", data);
  return o;
}

// ---------------- Event ----------------

const Resource& Event::resource() { return resources::events; }

Result<Event> Event::decode(const json::object& o) {
  std::optional<std::string> err;
  Reader r(&o, "", err);
  Event e;
  read_meta(r.child("metadata"), e.meta);
  auto io = r.child("involvedObject");
  io.str("apiVersion", e.involved_object.api_version);
  io.str("kind", e.involved_object.kind);
  io.str("namespace", e.involved_object.ns);
  io.str("name", e.involved_object.name);
  io.str("uid", e.involved_object.uid);
  io.str("resourceVersion", e.involved_object.resource_version);
  io.str("fieldPath", e.involved_object.field_path);
  r.str("reason", e.reason);
  r.str("message", e.message);
  r.str("type", e.type);
  auto src = r.child("source");
  src.str("component", e.source_component);
  src.str("host", e.source_host);
  r.str("firstTimestamp", e.first_timestamp);
  r.str("lastTimestamp", e.last_timestamp);
  r.integer("count", e.count);
  r.str("reportingComponent", e.reporting_component);
  r.str("reportingInstance", e.reporting_instance);
  e.raw = o;
  return finish(std::move(e), err, "Event");
}

json::object Event::encode() const {
  json::object o;
  start(o, raw, resource());
  encode_meta(meta, o);
  auto& io = sub(o, "involvedObject");
  put(io, "apiVersion", involved_object.api_version);
  put(io, "kind", involved_object.kind);
  put(io, "namespace", involved_object.ns);
  put(io, "name", involved_object.name);
  put(io, "uid", involved_object.uid);
  put(io, "resourceVersion", involved_object.resource_version);
  put(io, "fieldPath", involved_object.field_path);
  put(o, "reason", reason);
  put(o, "message", message);
  put(o, "type", type);
  auto& src = sub(o, "source");
  put(src, "component", source_component);
  put(src, "host", source_host);
  put(o, "firstTimestamp", first_timestamp);
  put(o, "lastTimestamp", last_timestamp);
  put(o, "count", count);
  put(o, "reportingComponent", reporting_component);
  put(o, "reportingInstance", reporting_instance);
  drop_empty(o, raw, {"source"});
  return o;
}

// ---------------- Lease ----------------

const Resource& Lease::resource() { return resources::leases; }

Result<Lease> Lease::decode(const json::object& o) {
  std::optional<std::string> err;
  Reader r(&o, "", err);
  Lease l;
  read_meta(r.child("metadata"), l.meta);
  auto spec = r.child("spec");
  spec.str("holderIdentity", l.holder_identity);
  spec.integer("leaseDurationSeconds", l.lease_duration_seconds);
  spec.str("acquireTime", l.acquire_time);
  spec.str("renewTime", l.renew_time);
  spec.integer("leaseTransitions", l.lease_transitions);
  l.raw = o;
  return finish(std::move(l), err, "Lease");
}

json::object Lease::encode() const {
  json::object o;
  start(o, raw, resource());
  encode_meta(meta, o);
  auto& spec = sub(o, "spec");
  put(spec, "holderIdentity", holder_identity);
  put(spec, "leaseDurationSeconds", lease_duration_seconds);
  put(spec, "acquireTime", acquire_time);
  put(spec, "renewTime", renew_time);
  put(spec, "leaseTransitions", lease_transitions);
  return o;
}

// ---------------- AzureIdentity ----------------

const Resource& AzureIdentity::resource() { return resources::azure_identities; }

namespace {
Result<AzureIdentity> decode_identity(Reader r) {
  AzureIdentity a;
  read_meta(r.child("metadata"), a.meta);
  auto spec = r.child("spec");
  spec.integer("type", a.type);
  spec.str("resourceID", a.resource_id);
  spec.str("clientID", a.client_id);
  if (spec.find("clientPassword")) {
    auto cp = spec.child("clientPassword");
    SecretReference ref;
    cp.str("name", ref.name);
    cp.str("namespace", ref.ns);
    a.client_password = ref;
  }
  spec.str("tenantID", a.tenant_id);
  spec.strlist("auxiliaryTenantIDs", a.auxiliary_tenant_ids);
  spec.str("adEndpoint", a.ad_endpoint);
  spec.str("adResourceID", a.ad_resource_id);
  spec.integer("replicas", a.replicas);
  r.child("status").integer("availableReplicas", a.available_replicas);
  if (r.object()) a.raw = *r.object();
  return finish(std::move(a), r.err(), "AzureIdentity");
}

Result<AzureIdentityBinding> decode_binding(Reader r) {
  AzureIdentityBinding b;
  read_meta(r.child("metadata"), b.meta);
  auto spec = r.child("spec");
  spec.str("azureIdentity", b.azure_identity);
  spec.str("selector", b.selector);
  spec.integer("weight", b.weight);
  r.child("status").integer("availableReplicas", b.available_replicas);
  if (r.object()) b.raw = *r.object();
  return finish(std::move(b), r.err(), "AzureIdentityBinding");
}
}  // namespace

Result<AzureIdentity> AzureIdentity::decode(const json::object& o) {
  std::optional<std::string> err;
  return decode_identity(Reader(&o, "", err));
}

json::object AzureIdentity::encode() const {
  json::object o;
  start(o, raw, resource());
  encode_meta(meta, o);
  auto& spec = sub(o, "spec");
  put(spec, "type", type);
  if (!spec.contains("type")) spec["type"] = type;  // always explicit, like the original
  put(spec, "resourceID", resource_id);
  put(spec, "clientID", client_id);
  if (client_password) {
    auto& cp = sub(spec, "clientPassword");
    put(cp, "name", client_password->name);
    put(cp, "namespace", client_password->ns);
  } else {
    spec.erase("clientPassword");
  }
  put(spec, "tenantID", tenant_id);
  put(spec, "auxiliaryTenantIDs", auxiliary_tenant_ids);
  put(spec, "adEndpoint", ad_endpoint);
  put(spec, "adResourceID", ad_resource_id);
  put(spec, "replicas", replicas);
  put(sub(o, "status"), "availableReplicas", available_replicas);
  drop_empty(o, raw, {"status"});
  return o;
}

// ---------------- AzureIdentityBinding ----------------

const Resource& AzureIdentityBinding::resource() { return resources::azure_identity_bindings; }

Result<AzureIdentityBinding> AzureIdentityBinding::decode(const json::object& o) {
  std::optional<std::string> err;
  return decode_binding(Reader(&o, "", err));
}

json::object AzureIdentityBinding::encode() const {
  json::object o;
  start(o, raw, resource());
  encode_meta(meta, o);
  auto& spec = sub(o, "spec");
  put(spec, "azureIdentity", azure_identity);
  put(spec, "selector", selector);
  put(spec, "weight", weight);
  put(sub(o, "status"), "availableReplicas", available_replicas);
  drop_empty(o, raw, {"status"});
  return o;
}

// ---------------- AzureAssignedIdentity ----------------

const Resource& AzureAssignedIdentity::resource() { return resources::azure_assigned_identities; }

Result<AzureAssignedIdentity> AzureAssignedIdentity::decode(const json::object& o) {
  std::optional<std::string> err;
  Reader r(&o, "", err);
  AzureAssignedIdentity a;
  read_meta(r.child("metadata"), a.meta);
  auto spec = r.child("spec");
  if (spec.find("azureIdentityRef")) {
    auto id = decode_identity(spec.child("azureIdentityRef"));
    if (!id && !err) err = "spec.azureIdentityRef: " + id.error().message;
    if (id) a.azure_identity_ref = std::move(*id);
  }
  if (spec.find("azureBindingRef")) {
    auto b = decode_binding(spec.child("azureBindingRef"));
    if (!b && !err) err = "spec.azureBindingRef: " + b.error().message;
    if (b) a.azure_binding_ref = std::move(*b);
  }
  spec.str("pod", a.pod);
  spec.str("podNamespace", a.pod_namespace);
  spec.str("nodename", a.node_name);
  spec.integer("replicas", a.replicas);
  auto st = r.child("status");
  st.str("status", a.status);
  st.integer("availableReplicas", a.available_replicas);
  a.raw = o;
  return finish(std::move(a), err, "AzureAssignedIdentity");
}

json::object AzureAssignedIdentity::encode() const {
  json::object o;
  start(o, raw, resource());
  encode_meta(meta, o);
  auto& spec = sub(o, "spec");
  if (azure_identity_ref) spec["azureIdentityRef"] = azure_identity_ref->encode();
  else spec.erase("azureIdentityRef");
  if (azure_binding_ref) spec["azureBindingRef"] = azure_binding_ref->encode();
  else spec.erase("azureBindingRef");
  put(spec, "pod", pod);
  put(spec, "podNamespace", pod_namespace);
  put(spec, "nodename", node_name);
  put(spec, "replicas", replicas);
  auto& st = sub(o, "status");
  put(st, "status", status);
  put(st, "availableReplicas", available_replicas);
  drop_empty(o, raw, {"status"});
  return o;
}

// ---------------- AzurePodIdentityException ----------------

const Resource& AzurePodIdentityException::resource() { return resources::azure_pod_identity_exceptions; }

Result<AzurePodIdentityException> AzurePodIdentityException::decode(const json::object& o) {
  std::optional<std::string> err;
  Reader r(&o, "", err);
  AzurePodIdentityException e;
  read_meta(r.child("metadata"), e.meta);
  r.child("spec").strmap("podLabels", e.pod_labels);
  r.child("status").str("status", e.status);
  e.raw = o;
  return finish(std::move(e), err, "AzurePodIdentityException");
}

json::object AzurePodIdentityException::encode() const {
  json::object o;
  start(o, raw, resource());
  encode_meta(meta, o);
  put(sub(o, "spec"), "podLabels", pod_labels);
  put(sub(o, "status"), "status", status);
  drop_empty(o, raw, {"status"});
  return o;
}

// ---------------- time ----------------

std::string format_time(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string format_micro_time(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::floor<std::chrono::seconds>(t);
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t - secs).count();
  auto base = format_time(secs);
  base.pop_back();
  return fmt::format("{}.{:06}Z", base, us);
}

std::optional<std::chrono::system_clock::time_point> parse_time(const std::string& s) {
  std::tm tm{};
  int y, mo, d, h, mi, sec;
  int n = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6) return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  auto t = std::chrono::system_clock::from_time_t(timegm(&tm));
  std::size_t i = static_cast<std::size_t>(n);
  if (i < s.size() && s[i] == '.') {
    ++i;
    long long frac = 0;
    int digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (digits < 6) {
        frac = frac * 10 + (s[i] - '0');
        ++digits;
      }
      ++i;
    }
    while (digits < 6) {
      frac *= 10;
      ++digits;
    }
    t += std::chrono::microseconds(frac);
  }
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh = 0, om = 0;
    if (std::sscanf(s.c_str() + i + 1, "%2d:%2d", &oh, &om) == 2) {
      auto off = std::chrono::hours(oh) + std::chrono::minutes(om);
      t = s[i] == '+' ? t - off : t + off;
    }
  } else if (i >= s.size() || (s[i] != 'Z' && s[i] != 'z')) {
    return std::nullopt;
  }
  return t;
}

}  // namespace aad::kube
