#pragma once
// A typed watch cache: a ListWatch feeding a store of decoded objects (T has decode(), key(),
// resource(), see models.hpp), secondary indexes, add/update/delete handlers fired after the
// store is updated, an optional transform applied to the raw JSON before decoding (drop fields
// to keep memory small), and a ChangeNotifier for callers that wait for the cache.
//
//   kube::Cache<kube::Pod> pods(client, {.field_selector = "spec.nodeName=" + node});
//   pods.add_index("ip", kube::index::pod_ips);
//   co_spawn(io, pods.run(), detached);
//   auto hits = pods.by_index("ip", "10.0.0.7");
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/log.hpp"
#include "kube/informer.hpp"
#include "kube/models.hpp"
#include "kube/notifier.hpp"

namespace aad::kube {

template <typename T>
class Cache : private InformerSink {
 public:
  using Ptr = std::shared_ptr<const T>;
  using IndexFn = std::function<std::vector<std::string>(const T&)>;

  struct Handlers {
    std::function<void(const T&)> on_add;
    std::function<void(const T& old_obj, const T& new_obj)> on_update;
    std::function<void(const T&)> on_delete;
  };

  Cache(Client& client, InformerOptions options = {}, const Resource& resource = T::resource())
      : lw_(client, resource, std::move(options), *this) {
    lw_.on_change = [this] { changed_.notify(); };
  }

  // Configure before run().
  void add_index(std::string name, IndexFn fn) { index_fns_[std::move(name)] = std::move(fn); }
  void add_handlers(Handlers h) { handlers_.push_back(std::move(h)); }
  void set_transform(std::function<void(boost::json::object&)> t) { transform_ = std::move(t); }
  void set_keep_raw(bool keep) { keep_raw_ = keep; }  // false: drop T::raw after decoding

  boost::asio::awaitable<void> run() { return lw_.run(); }
  void stop() { lw_.stop(); }
  bool synced() const { return lw_.synced(); }
  // Waits until synced or the timeout passes.
  boost::asio::awaitable<bool> wait_synced(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!synced()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) co_return false;
      co_await changed_.wait(left);
    }
    co_return true;
  }

  ChangeNotifier& changed() { return changed_; }
  ListWatch& list_watch() { return lw_; }
  const ListWatch& list_watch() const { return lw_; }

  Ptr get(const std::string& key) const {
    auto it = store_.find(key);
    return it == store_.end() ? nullptr : it->second;
  }
  Ptr get(const std::string& ns, const std::string& name) const { return get(ns.empty() ? name : ns + "/" + name); }
  std::vector<Ptr> list() const {
    std::vector<Ptr> out;
    out.reserve(store_.size());
    for (const auto& [k, v] : store_) out.push_back(v);
    return out;
  }
  std::size_t size() const { return store_.size(); }
  std::vector<Ptr> by_index(const std::string& index, const std::string& value) const {
    std::vector<Ptr> out;
    auto i = indexes_.find(index);
    if (i == indexes_.end()) {
      if (!index_fns_.count(index)) throw std::invalid_argument("no index named " + index);
      return out;
    }
    auto v = i->second.find(value);
    if (v == i->second.end()) return out;
    for (const auto& key : v->second)
      if (auto p = get(key)) out.push_back(p);
    return out;
  }

 private:
  Ptr decode(boost::json::object& o) {
    if (transform_) transform_(o);
    auto r = T::decode(o);
    if (!r) {
      log::warning("skipping undecodable object", {{"kind", lw_.resource().kind}, {"error", r.error().describe()}});
      return nullptr;
    }
    if (!keep_raw_) r->raw = {};
    return std::make_shared<const T>(std::move(*r));
  }
  void index_add(const std::string& key, const T& obj) {
    for (const auto& [name, fn] : index_fns_)
      for (const auto& v : fn(obj)) indexes_[name][v].insert(key);
  }
  void index_remove(const std::string& key, const T& obj) {
    for (const auto& [name, fn] : index_fns_) {
      auto& idx = indexes_[name];
      for (const auto& v : fn(obj)) {
        auto it = idx.find(v);
        if (it == idx.end()) continue;
        it->second.erase(key);
        if (it->second.empty()) idx.erase(it);
      }
    }
  }
  void put(const std::string& key, Ptr obj) {
    if (auto old = get(key)) index_remove(key, *old);
    index_add(key, *obj);
    store_[key] = std::move(obj);
  }
  void erase(const std::string& key) {
    if (auto old = get(key)) index_remove(key, *old);
    store_.erase(key);
  }

  void replace(std::vector<boost::json::object> items) override {
    std::map<std::string, Ptr> fresh;
    for (auto& o : items)
      if (auto p = decode(o)) fresh[p->key()] = p;
    std::vector<Ptr> added, deleted;
    std::vector<std::pair<Ptr, Ptr>> updated;
    for (const auto& [k, old] : store_)
      if (!fresh.count(k)) deleted.push_back(old);
    for (const auto& [k, p] : fresh) {
      auto old = get(k);
      if (!old) added.push_back(p);
      else if (old->meta.resource_version != p->meta.resource_version) updated.emplace_back(old, p);
    }
    store_.clear();
    indexes_.clear();
    for (auto& [k, p] : fresh) put(k, p);
    for (const auto& h : handlers_) {
      for (const auto& p : deleted)
        if (h.on_delete) h.on_delete(*p);
      for (const auto& p : added)
        if (h.on_add) h.on_add(*p);
      for (const auto& [o, n] : updated)
        if (h.on_update) h.on_update(*o, *n);
    }
  }

  void apply(const std::string& type, boost::json::object object) override {
    auto p = decode(object);
    if (!p) return;
    auto key = p->key();
    auto old = get(key);
    if (type == "DELETED") {
      erase(key);
      for (const auto& h : handlers_)
        if (h.on_delete) h.on_delete(old ? *old : *p);
      return;
    }
    put(key, p);
    for (const auto& h : handlers_) {
      if (old) {
        if (h.on_update) h.on_update(*old, *p);
      } else if (h.on_add) {
        h.on_add(*p);
      }
    }
  }

  ListWatch lw_;
  ChangeNotifier changed_;
  std::map<std::string, Ptr> store_;
  std::map<std::string, IndexFn> index_fns_;
  std::map<std::string, std::map<std::string, std::set<std::string>>> indexes_;
  std::vector<Handlers> handlers_;
  std::function<void(boost::json::object&)> transform_;
  bool keep_raw_ = true;
};

// Standard index functions.
namespace index {
// Every IP of the pod: status.podIP and each status.podIPs entry (deduplicated).
std::vector<std::string> pod_ips(const Pod& p);
// "podNamespace/pod" of an assigned identity.
std::vector<std::string> assigned_pod(const AzureAssignedIdentity& a);
// spec.nodename of an assigned identity.
std::vector<std::string> assigned_node(const AzureAssignedIdentity& a);
// metadata.namespace.
template <typename T>
std::vector<std::string> by_namespace(const T& t) {
  return {t.meta.ns};
}
}  // namespace index

}  // namespace aad::kube
