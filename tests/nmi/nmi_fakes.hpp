#pragma once
// In-memory stand-ins for the unit part of suite `nmi` (and the latency bench): the node's
// objects without an apiserver, a token fetcher that hands out recognisable tokens, and an
// IMDS upstream that records what it was sent. The real Handler, Resolver, TokenService and
// ImdsLimiter run on top of them.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "azure/cancel.hpp"
#include "identity/nmi/cancelled.hpp"
#include "identity/nmi/imds_upstream.hpp"
#include "identity/nmi/node_state.hpp"
#include "identity/nmi/token_fetcher.hpp"

namespace aad::test {

using identity::nmi::Shared;

class MemoryNodeState final : public identity::nmi::NodeState {
 public:
  std::vector<Shared<kube::Pod>> pods;
  std::vector<Shared<kube::AzureAssignedIdentity>> assigned;
  std::vector<Shared<kube::AzureIdentityBinding>> binding_list;
  std::vector<Shared<kube::AzureIdentity>> identity_list;
  std::vector<Shared<kube::AzurePodIdentityException>> exception_list;
  kube::ChangeNotifier notifier;

  template <typename T>
  static void put(std::vector<Shared<T>>& v, T obj) {
    for (auto& p : v)
      if (p->key() == obj.key()) {
        p = std::make_shared<const T>(std::move(obj));
        return;
      }
    v.push_back(std::make_shared<const T>(std::move(obj)));
  }
  void add(kube::Pod p) {
    put(pods, std::move(p));
    notifier.notify();
  }
  void add(kube::AzureAssignedIdentity a) {
    put(assigned, std::move(a));
    notifier.notify();
  }
  void add(kube::AzureIdentityBinding b) {
    put(binding_list, std::move(b));
    notifier.notify();
  }
  void add(kube::AzureIdentity i) {
    put(identity_list, std::move(i));
    notifier.notify();
  }
  void add(kube::AzurePodIdentityException e) {
    put(exception_list, std::move(e));
    notifier.notify();
  }

  std::vector<Shared<kube::Pod>> pods_with_ip(const std::string& ip) const override {
    std::vector<Shared<kube::Pod>> out;
    for (const auto& p : pods)
      if (p->pod_ip == ip || std::find(p->pod_ips.begin(), p->pod_ips.end(), ip) != p->pod_ips.end())
        out.push_back(p);
    return out;
  }
  Shared<kube::Pod> pod(const std::string& ns, const std::string& name) const override {
    for (const auto& p : pods)
      if (p->meta.ns == ns && p->meta.name == name) return p;
    return nullptr;
  }
  std::vector<Shared<kube::AzureAssignedIdentity>> assigned_to(const std::string& ns,
                                                               const std::string& name) const override {
    std::vector<Shared<kube::AzureAssignedIdentity>> out;
    for (const auto& a : assigned)
      if (a->pod_namespace == ns && a->pod == name) out.push_back(a);
    return out;
  }
  template <typename T>
  static std::vector<Shared<T>> in_ns(const std::vector<Shared<T>>& v, const std::string& ns) {
    std::vector<Shared<T>> out;
    for (const auto& x : v)
      if (ns.empty() || x->meta.ns == ns) out.push_back(x);
    return out;
  }
  std::vector<Shared<kube::AzureIdentityBinding>> bindings(const std::string& ns) const override {
    return in_ns(binding_list, ns);
  }
  std::vector<Shared<kube::AzureIdentity>> identities(const std::string& ns) const override {
    return in_ns(identity_list, ns);
  }
  std::vector<Shared<kube::AzurePodIdentityException>> exceptions(const std::string& ns) const override {
    return in_ns(exception_list, ns);
  }
  kube::ChangeNotifier& changed() override { return notifier; }
};

// Tokens named after what they were fetched for: "tok:<client_id>:<resource>:<n>".
class FakeFetcher final : public identity::nmi::TokenFetcher {
 public:
  explicit FakeFetcher(azure::Clock& clock) : clock_(clock) {}

  struct Call {
    std::string client_id, resource;
    azure::Cancellation cancel;
  };
  std::vector<Call> calls;
  std::map<std::string, azure::Error> errors;  // by client id
  // Makes the identity's fetches fail as Azure AD or IMDS refusing with `status`.
  void refuse(const std::string& client_id, int status, std::string code, std::string message) {
    azure::Error e;
    e.kind = azure::Error::Kind::http;
    e.status = status;
    e.code = std::move(code);
    e.message = std::move(message);
    errors[client_id] = std::move(e);
  }
  std::chrono::seconds lifetime{3600};
  bool hold = false;  // fetches wait until release()
  std::set<std::string> held_resources;  // fetches for these wait until release(resource)
  int in_flight = 0;
  int max_in_flight = 0;
  kube::ChangeNotifier released;

  void release() {
    hold = false;
    released.notify();
  }
  void release(const std::string& resource) {
    held_resources.erase(resource);
    released.notify();
  }

  boost::asio::awaitable<azure::Result<std::vector<azure::Token>>> fetch(const kube::AzureIdentity& identity,
                                                                         const std::string& resource,
                                                                         const azure::Cancellation& cancel) override {
    calls.push_back({identity.client_id, resource, cancel});
    std::size_t n = calls.size();
    ++in_flight;
    max_in_flight = std::max(max_in_flight, in_flight);
    while ((hold || held_resources.count(resource)) && !cancel.cancelled()) {
      bool changed = co_await released.wait(std::chrono::milliseconds(20));
      (void)changed;
    }
    co_await boost::asio::post(co_await boost::asio::this_coro::executor, boost::asio::use_awaitable);
    --in_flight;
    if (cancel.cancelled()) co_return azure::local_error(azure::Error::Kind::cancelled, "cancelled", "cancelled");
    if (auto it = errors.find(identity.client_id); it != errors.end()) co_return it->second;
    std::vector<azure::Token> out;
    auto make = [&](const std::string& tenant) {
      azure::Token t;
      t.access_token = "tok:" + identity.client_id + ":" + resource + ":" + std::to_string(n) + tenant;
      t.token_type = "Bearer";
      t.resource = resource;
      t.expires_on = clock_.now() + lifetime;
      t.raw["access_token"] = t.access_token;
      t.raw["resource"] = resource;
      t.raw["not_before"] = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                               clock_.now().time_since_epoch()).count());
      return t;
    };
    out.push_back(make(""));
    if (identity.type == 1)
      for (const auto& aux : identity.auxiliary_tenant_ids) out.push_back(make(":" + aux));
    co_return out;
  }

 private:
  azure::Clock& clock_;
};

class FakeUpstream final : public identity::nmi::Upstream {
 public:
  std::vector<http::Request> seen;
  std::vector<std::string> peers;
  http::Status status = http::Status::ok;
  std::string body = R"({"upstream":"imds"})";
  std::vector<std::pair<std::string, std::string>> headers{{"Content-Type", "application/json"}, {"X-Upstream", "1"}};

  boost::asio::awaitable<http::Response> forward(const http::Request& req, std::string_view peer) override {
    seen.push_back(req);
    peers.emplace_back(peer);
    http::Response res{status, req.version()};
    for (const auto& [k, v] : headers) res.set(k, v);
    res.body() = body;
    res.prepare_payload();
    co_return res;
  }
};

}  // namespace aad::test
