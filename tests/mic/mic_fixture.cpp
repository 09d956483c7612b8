#include "mic_fixture.hpp"

#include <boost/json/serialize.hpp>
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include "azure/clock.hpp"
#include "core/ascii.hpp"
#include "kube/config.hpp"
#include "kube/typed.hpp"
#include "support/async.hpp"

namespace aad::test::mic {
namespace {

namespace json = boost::json;
using verb = boost::beast::http::verb;
using namespace std::chrono_literals;

}  // namespace

template <typename T>
T MicFixture::run(boost::asio::awaitable<T> aw) {
  return run_async(io, std::move(aw), std::chrono::seconds(60));
}

MicFixture::MicFixture(MicTestOptions options)
    : kube(KubeTestenv::shared()), emu(AzureEmulator::shared()), options_(std::move(options)) {
  ensure_test_crds(kube);
  kube::ClientOptions co;
  co.qps = 200;
  co.burst = 400;
  client = std::make_unique<kube::Client>(io.get_executor(), kube::load_kubeconfig(kube.kubeconfig()), co);
  wipe();
  emu.reset();
  emu.post("/admin/service-principals", {{"clientId", sp_client_id}, {"secret", "mic-secret"}});
  // Quick long-running operations.
  emu.admin(verb::patch, "/admin/settings", json::object{{"arm", {{"lro", {{"retryAfter", 0}}}}}});
  ns = kube.new_namespace("mic");
  if (options_.start) start_controller();
}

MicFixture::~MicFixture() {
  try {
    stop_controller();
    wipe();
  } catch (const std::exception&) {
  }
}

void MicFixture::start_controller() {
  arm_http = std::make_unique<http::Client>(io.get_executor(), http::ClientOptions{});
  azure::AadOptions ao;
  ao.authority_host = emu.url() + "/";
  tokens = azure::AadTokenSource::with_secret(*arm_http, azure::system_clock(), emu.tenant_id(), sp_client_id,
                                              "mic-secret", ao);
  azure::ArmOptions armo;
  armo.base_url = emu.url() + "/";
  arm = std::make_unique<azure::ArmComputeClient>(*arm_http, *tokens, azure::system_clock(), armo);
  identity::mic::ControllerOptions o;
  o.election.ns = ns;
  o.election.name = options_.lease_name;
  o.election.identity = kube::LeaderElector::default_identity();
  o.election.lease_duration = 3s;
  o.election.renew_deadline = 2s;
  o.election.retry_period = 500ms;
  o.engine.default_subscription = emu.subscription_id();
  o.engine.default_resource_group = rg;
  o.engine.immutable_client_ids = options_.immutable_client_ids;
  o.engine.force_namespaced = options_.force_namespaced;
  o.engine.batch_delay = 200ms;
  o.engine.drift_interval = options_.drift_interval;
  o.engine.resync_period = options_.resync_period;
  o.engine.update.retry_interval = std::chrono::milliseconds(100);
  o.engine.queue.base_delay = 500ms;
  o.engine.queue.max_delay = 5s;
  mic = std::make_unique<identity::mic::Controller>(*client, *arm, azure::system_clock(), registry, o);
  mic_done = false;
  mic_end.reset();
  boost::asio::co_spawn(io, mic->run(), [this](std::exception_ptr, kube::LeadershipEnd end) {
    mic_done = true;
    mic_end = end;
  });
}

void MicFixture::stop_controller() {
  if (!mic) return;
  mic->stop();
  wait_for([this] { return mic_done; }, 10s);
  settle(100ms);
  mic.reset();
  arm.reset();
  tokens.reset();
  arm_http.reset();
}

void MicFixture::wipe() {
  // Every object of the kinds MIC reads, so a test never sees a previous test's state.
  auto r = kube.kubectl({"delete", "pods", "-A", "-l", "aadpodidbinding", "--grace-period=0", "--force",
                         "--wait=false"});
  for (const auto& a : aais()) {
    kube.kubectl({"patch", "azureassignedidentity", a.meta.name, "-n", a.meta.ns, "--type=merge", "-p",
                  R"({"metadata":{"finalizers":null}})"});
  }
  kube.kubectl({"delete", "azureassignedidentities,azureidentitybindings,azureidentities", "-A", "--all",
                "--wait=false"});
  kube.kubectl({"delete", "nodes", "--all", "--wait=false"});
  (void)r;
}

// ---------------- Azure ----------------

AzureIdentityInfo MicFixture::azure_identity(const std::string& name, const std::string& client_id) {
  json::object spec{{"resourceGroup", "ids"}, {"name", name}};
  if (!client_id.empty()) spec["clientId"] = client_id;
  auto v = emu.post("/admin/identities", spec).as_object();
  return {json::value_to<std::string>(v.at("resourceId")), json::value_to<std::string>(v.at("clientId"))};
}

std::string MicFixture::make_vmss(const std::string& name, const std::vector<std::string>& ids, bool system) {
  json::array a;
  for (const auto& id : ids) a.push_back(json::value(id));
  emu.post("/admin/vmss", {{"resourceGroup", rg}, {"name", name}, {"capacity", 2}, {"systemAssigned", system},
                           {"userAssignedIdentities", a}});
  return "/subscriptions/" + emu.subscription_id() + "/resourceGroups/" + rg +
         "/providers/Microsoft.Compute/virtualMachineScaleSets/" + name;
}

std::string MicFixture::make_vm(const std::string& name, const std::vector<std::string>& ids, bool system) {
  json::array a;
  for (const auto& id : ids) a.push_back(json::value(id));
  emu.post("/admin/vms", {{"resourceGroup", rg}, {"name", name}, {"systemAssigned", system},
                          {"userAssignedIdentities", a}});
  return "/subscriptions/" + emu.subscription_id() + "/resourceGroups/" + rg +
         "/providers/Microsoft.Compute/virtualMachines/" + name;
}

json::object MicFixture::resource_view(const std::string& arm_path) {
  return emu.admin(verb::get, "/admin/resource?id=" + arm_path).as_object();
}

std::set<std::string> MicFixture::assigned(const std::string& arm_path) {
  std::set<std::string> out;
  auto view = resource_view(arm_path);
  for (const auto& u : view.at("userAssignedIdentities").as_array())
    out.insert(to_lower(json::value_to<std::string>(u.as_object().at("resourceId"))));
  return out;
}

// ---------------- Kubernetes ----------------

std::string MicFixture::vmss_provider_id(const std::string& vmss, int instance) const {
  return "azure:///subscriptions/" + emu.subscription_id() + "/resourceGroups/" + rg +
         "/providers/Microsoft.Compute/virtualMachineScaleSets/" + vmss + "/virtualMachines/" +
         std::to_string(instance);
}

std::string MicFixture::vm_provider_id(const std::string& vm) const {
  return "azure:///subscriptions/" + emu.subscription_id() + "/resourceGroups/" + rg +
         "/providers/Microsoft.Compute/virtualMachines/" + vm;
}

void MicFixture::create_node(const std::string& name, const std::string& provider_id) {
  kube::Node n;
  n.meta.name = name;
  n.provider_id = provider_id;
  auto r = run(kube::create(*client, n));
  if (!r) throw std::runtime_error("create node: " + r.error().describe());
}

void MicFixture::delete_node(const std::string& name) {
  kube::Node n;
  n.meta.name = name;
  auto r = run(kube::remove(*client, n));
  if (!r) throw std::runtime_error("delete node: " + r.error().describe());
}

void MicFixture::create_identity(const std::string& name, const AzureIdentityInfo& id, int type,
                                 const std::string& in_ns) {
  kube::AzureIdentity i;
  i.meta.ns = in_ns.empty() ? ns : in_ns;
  i.meta.name = name;
  i.type = type;
  i.resource_id = id.resource_id;
  i.client_id = id.client_id;
  auto r = run(kube::create(*client, i));
  if (!r) throw std::runtime_error("create identity: " + r.error().describe());
}

void MicFixture::update_identity(const std::string& name, const AzureIdentityInfo& id, const std::string& in_ns) {
  std::string n = in_ns.empty() ? ns : in_ns;
  auto cur = run(kube::get<kube::AzureIdentity>(*client, n, name));
  if (!cur) throw std::runtime_error("get identity: " + cur.error().describe());
  cur->resource_id = id.resource_id;
  cur->client_id = id.client_id;
  auto r = run(kube::update(*client, *cur));
  if (!r) throw std::runtime_error("update identity: " + r.error().describe());
}

void MicFixture::delete_identity(const std::string& name, const std::string& in_ns) {
  kube::AzureIdentity i;
  i.meta.ns = in_ns.empty() ? ns : in_ns;
  i.meta.name = name;
  auto r = run(kube::remove(*client, i));
  if (!r) throw std::runtime_error("delete identity: " + r.error().describe());
}

void MicFixture::create_binding(const std::string& name, const std::string& identity, const std::string& selector,
                                const std::string& in_ns) {
  kube::AzureIdentityBinding b;
  b.meta.ns = in_ns.empty() ? ns : in_ns;
  b.meta.name = name;
  b.azure_identity = identity;
  b.selector = selector;
  auto r = run(kube::create(*client, b));
  if (!r) throw std::runtime_error("create binding: " + r.error().describe());
}

void MicFixture::delete_binding(const std::string& name, const std::string& in_ns) {
  kube::AzureIdentityBinding b;
  b.meta.ns = in_ns.empty() ? ns : in_ns;
  b.meta.name = name;
  auto r = run(kube::remove(*client, b));
  if (!r) throw std::runtime_error("delete binding: " + r.error().describe());
}

void MicFixture::create_pod(const std::string& name, const std::string& node, const std::string& selector,
                            const std::string& in_ns) {
  json::object pod{
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", {{"name", name}, {"namespace", in_ns.empty() ? ns : in_ns}, {"labels", {{"aadpodidbinding", selector}}}}},
      {"spec", {{"nodeName", node}, {"containers", json::array{json::object{{"name", "app"}, {"image", "app:1"}}}}}}};
  std::string pns = in_ns.empty() ? ns : in_ns;
  auto r = run(client->create(kube::resources::pods, pns, pod));
  if (!r) throw std::runtime_error("create pod: " + r.error().describe());
}

void MicFixture::relabel_pod(const std::string& name, const std::string& selector, const std::string& in_ns) {
  std::string pns = in_ns.empty() ? ns : in_ns;
  std::string body = json::serialize(json::object{{"metadata", {{"labels", {{"aadpodidbinding", selector}}}}}});
  auto r = run(client->patch(kube::resources::pods, pns, name, kube::PatchType::merge, body));
  if (!r) throw std::runtime_error("relabel pod: " + r.error().describe());
}

void MicFixture::delete_pod(const std::string& name, const std::string& in_ns) {
  std::string pns = in_ns.empty() ? ns : in_ns;
  kube::DeleteOptions o;
  o.grace_period_seconds = 0;
  auto r = run(client->remove(kube::resources::pods, pns, name, o));
  if (!r) throw std::runtime_error("delete pod: " + r.error().describe());
}

std::optional<kube::AzureAssignedIdentity> MicFixture::aai(const std::string& name, const std::string& in_ns) {
  auto r = run(kube::get<kube::AzureAssignedIdentity>(*client, in_ns, name));
  if (!r) {
    if (r.error().not_found()) return std::nullopt;
    throw std::runtime_error("get aai: " + r.error().describe());
  }
  return *r;
}

std::vector<kube::AzureAssignedIdentity> MicFixture::aais() {
  auto r = run(kube::list<kube::AzureAssignedIdentity>(*client, ""));
  if (!r) throw std::runtime_error("list aais: " + r.error().describe());
  return r->items;
}

std::vector<kube::Event> MicFixture::events_for(const std::string& ev_ns, const std::string& name) {
  kube::ListOptions lo;
  lo.field_selector = "involvedObject.name=" + name;
  auto r = run(kube::list<kube::Event>(*client, ev_ns, lo));
  if (!r) throw std::runtime_error("list events: " + r.error().describe());
  return r->items;
}

void MicFixture::steal_lease(const std::string& lease, const std::string& holder) {
  auto now = kube::format_micro_time(std::chrono::system_clock::now());
  std::string body = json::serialize(json::object{
      {"spec", {{"holderIdentity", holder}, {"leaseDurationSeconds", 60}, {"acquireTime", now}, {"renewTime", now}}}});
  auto r = kube.kubectl({"patch", "lease", lease, "-n", ns, "--type=merge", "-p", body});
  if (r.exit_code != 0) throw std::runtime_error("patch lease: " + r.err);
}

void MicFixture::apply(const json::object& obj) {
  auto path = "/tmp/mic-apply-" + ns + ".json";
  {
    std::ofstream out(path);
    out << json::serialize(obj);
  }
  auto r = kube.kubectl({"apply", "-f", path});
  std::remove(path.c_str());
  if (r.exit_code != 0) throw std::runtime_error("kubectl apply: " + r.err);
}

void MicFixture::remove_object(const std::string& kind, const std::string& name) {
  auto r = kube.kubectl({"delete", kind, name, "--ignore-not-found"});
  if (r.exit_code != 0) throw std::runtime_error("kubectl delete: " + r.err);
}

bool MicFixture::wait_for(const std::function<bool()>& pred, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  io.restart();
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    auto step = std::chrono::steady_clock::now() + 100ms;
    while (std::chrono::steady_clock::now() < step) io.run_one_for(20ms);
  }
  return pred();
}

void MicFixture::settle(std::chrono::milliseconds d) {
  auto deadline = std::chrono::steady_clock::now() + d;
  io.restart();
  while (std::chrono::steady_clock::now() < deadline) io.run_one_for(20ms);
}

bool MicFixture::aai_status(const std::string& name, const std::string& status) {
  auto a = aai(name);
  return a && a->status == status;
}

bool MicFixture::aai_gone(const std::string& name) { return !aai(name).has_value(); }


}  // namespace aad::test::mic
