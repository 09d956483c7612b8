#include "identity/nmi/kube_node_state.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>

namespace aad::identity::nmi {

using namespace boost::asio::experimental::awaitable_operators;

namespace {

kube::InformerOptions pod_options(const std::string& node) {
  kube::InformerOptions o;
  o.field_selector = "spec.nodeName=" + node;
  return o;
}

kube::InformerOptions assigned_options(const KubeNodeStateOptions& o) {
  kube::InformerOptions io;
  if (o.scale_features) io.label_selector = "nodename=" + o.node;
  return io;
}

template <typename T>
std::vector<Shared<T>> of_namespace(const kube::Cache<T>& cache, const std::string& ns) {
  return ns.empty() ? cache.list() : cache.by_index("namespace", ns);
}

}  // namespace

KubeNodeState::KubeNodeState(kube::Client& client, KubeNodeStateOptions options)
    : options_(std::move(options)),
      pods_(client, pod_options(options_.node)),
      bindings_(client),
      identities_(client),
      exceptions_(client) {
  if (options_.standard_mode) assigned_.emplace(client, assigned_options(options_));
  // Only what lookups use is kept: the raw JSON of every object is dropped after decoding.
  pods_.set_keep_raw(false);
  pods_.add_index("ip", kube::index::pod_ips);
  watch(pods_);
  if (assigned_) {
    assigned_->set_keep_raw(false);
    assigned_->add_index("pod", kube::index::assigned_pod);
    watch(*assigned_);
  }
  bindings_.set_keep_raw(false);
  bindings_.add_index("namespace", kube::index::by_namespace<kube::AzureIdentityBinding>);
  watch(bindings_);
  identities_.set_keep_raw(false);
  identities_.add_index("namespace", kube::index::by_namespace<kube::AzureIdentity>);
  watch(identities_);
  exceptions_.set_keep_raw(false);
  exceptions_.add_index("namespace", kube::index::by_namespace<kube::AzurePodIdentityException>);
  watch(exceptions_);
}

template <typename T>
void KubeNodeState::watch(kube::Cache<T>& cache) {
  auto& lw = cache.list_watch();
  lw.on_change = [&cache, this] {
    cache.changed().notify();
    changed_.notify();
  };
}

template <typename T>
boost::asio::awaitable<void> KubeNodeState::run_one(kube::Cache<T>& cache) {
  co_await cache.run();
}

boost::asio::awaitable<void> KubeNodeState::run() {
  if (assigned_) {
    co_await (run_one(pods_) && run_one(*assigned_) && run_one(bindings_) && run_one(identities_) &&
              run_one(exceptions_));
  } else {
    co_await (run_one(pods_) && run_one(bindings_) && run_one(identities_) && run_one(exceptions_));
  }
}

void KubeNodeState::stop() {
  pods_.stop();
  if (assigned_) assigned_->stop();
  bindings_.stop();
  identities_.stop();
  exceptions_.stop();
}

bool KubeNodeState::synced() const {
  return pods_.synced() && (!assigned_ || assigned_->synced()) && bindings_.synced() && identities_.synced() &&
         exceptions_.synced();
}

boost::asio::awaitable<bool> KubeNodeState::wait_synced(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!synced()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) co_return false;
    bool changed = co_await changed_.wait(left);
    (void)changed;
  }
  co_return true;
}

std::vector<Shared<kube::Pod>> KubeNodeState::pods_with_ip(const std::string& ip) const {
  return pods_.by_index("ip", ip);
}

Shared<kube::Pod> KubeNodeState::pod(const std::string& ns, const std::string& name) const {
  return pods_.get(ns, name);
}

std::vector<Shared<kube::AzureAssignedIdentity>> KubeNodeState::assigned_to(const std::string& ns,
                                                                            const std::string& name) const {
  if (!assigned_) return {};
  return assigned_->by_index("pod", ns + "/" + name);
}

std::vector<Shared<kube::AzureIdentityBinding>> KubeNodeState::bindings(const std::string& ns) const {
  return of_namespace(bindings_, ns);
}

std::vector<Shared<kube::AzureIdentity>> KubeNodeState::identities(const std::string& ns) const {
  return of_namespace(identities_, ns);
}

std::vector<Shared<kube::AzurePodIdentityException>> KubeNodeState::exceptions(const std::string& ns) const {
  return of_namespace(exceptions_, ns);
}

}  // namespace aad::identity::nmi
