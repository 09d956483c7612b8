#include "nmi/integration_env.hpp"

#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/url/parse.hpp>
#include <future>
#include <stdexcept>

#include "azure/azure_certs.hpp"
#include "kube/config.hpp"
#include "kube/typed.hpp"

namespace aad::test {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using asio::ip::tcp;

namespace {

Reply exchange(tcp::socket& s, const std::string& target, const std::vector<std::pair<std::string, std::string>>& headers,
               bhttp::verb method, const std::string& body, const std::string& host) {
  timeval tv{20, 0};  // a request NMI wrongly holds fails the test instead of hanging it
  setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  bhttp::request<bhttp::string_body> req{method, target, 11};
  req.set(bhttp::field::host, host);
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  bhttp::write(s, req);
  boost::beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.skip(method == bhttp::verb::head);  // its Content-Length is the GET body's; no body follows
  bhttp::read(s, buffer, parser);
  auto res = parser.release();
  Reply r;
  r.status = res.result_int();
  r.body = res.body();
  r.headers = res.base();
  return r;
}

}  // namespace

Reply http_from(const std::string& source, unsigned short port, const std::string& target,
                const std::vector<std::pair<std::string, std::string>>& headers, bhttp::verb method,
                const std::string& body) {
  asio::io_context io;
  tcp::socket s(io);
  s.open(tcp::v4());
  s.bind({asio::ip::make_address(source), 0});
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  return exchange(s, target, headers, method, body, "169.254.169.254");
}

Reply http_to(const std::string& base_url, const std::string& target,
              const std::vector<std::pair<std::string, std::string>>& headers, bhttp::verb method) {
  auto url = boost::urls::parse_uri(base_url).value();
  asio::io_context io;
  tcp::socket s(io);
  s.connect({asio::ip::make_address(std::string(url.host())), static_cast<unsigned short>(url.port_number())});
  return exchange(s, target, headers, method, {}, "169.254.169.254");
}

NmiProcess::NmiProcess(identity::NmiOptions options) : work_(io_.get_executor()), node_(options.node) {
  identity::nmi::EngineOverrides ov;
  ov.manage_iptables = false;
  engine_ = std::make_unique<identity::nmi::Engine>(io_, std::move(options), registry_, health_, ov);
  if (!engine_->start()) throw std::runtime_error("NMI engine did not start");
  port_ = engine_->port();
  thread_ = std::thread([this] { io_.run(); });
  // Wait for the caches (the engine logs and keeps trying otherwise).
  for (int i = 0; i < 600; ++i) {
    std::promise<bool> synced;
    asio::post(io_, [&] { synced.set_value(engine_->synced()); });
    if (synced.get_future().get()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("NMI caches did not sync");
}

namespace {
template <typename F>
auto on_thread(asio::io_context& io, F f) {
  std::promise<decltype(f())> p;
  asio::post(io, [&] { p.set_value(f()); });
  return p.get_future().get();
}
}  // namespace

std::string NmiProcess::metrics_text() { return on_thread(io_, [this] { return registry_.render(); }); }
bool NmiProcess::active() { return on_thread(io_, [this] { return health_.active(); }); }
bool NmiProcess::ready() { return on_thread(io_, [this] { return health_.ready(); }); }

NmiProcess::~NmiProcess() {
  std::promise<void> stopped;
  asio::co_spawn(io_, engine_->stop(), [&](std::exception_ptr) { stopped.set_value(); });
  stopped.get_future().wait();
  work_.reset();
  io_.stop();
  thread_.join();
  engine_.reset();
}

IntegrationEnv::IntegrationEnv() {
  ensure_test_crds(kube);
  kube::ClientOptions co;
  co.qps = 100;
  co.burst = 200;
  client = std::make_unique<kube::Client>(io.get_executor(), kube::load_kubeconfig(kube.kubeconfig()), co);

  emu.reset();
  auto a = emu.post("/admin/identities", {{"resourceGroup", "ids"}, {"name", "mi-one"}}).as_object();
  auto b = emu.post("/admin/identities", {{"resourceGroup", "ids"}, {"name", "mi-two"}}).as_object();
  mi1_id = json::value_to<std::string>(a.at("resourceId"));
  mi1_client = json::value_to<std::string>(a.at("clientId"));
  mi2_id = json::value_to<std::string>(b.at("resourceId"));
  mi2_client = json::value_to<std::string>(b.at("clientId"));
  emu.post("/admin/vms", {{"resourceGroup", "MC_rg"},
                          {"name", "node1"},
                          {"systemAssigned", true},
                          {"userAssignedIdentities", json::array{mi1_id, mi2_id}}});
  emu.admin(bhttp::verb::put, "/admin/imds", {{"vm", "vm/node1"}});
  emu.post("/admin/service-principals", {{"clientId", sp_secret_client}, {"secret", sp_secret}});
  auto cert = make_sp_certificate(KeyKind::rsa, "nmi-sp");
  cert_p12 = cert.pkcs12;
  cert_password = cert.password;
  emu.post("/admin/service-principals", {{"clientId", sp_cert_client}, {"certificate", cert.cert_pem}});
}

identity::NmiOptions IntegrationEnv::options(const std::string& node) const {
  identity::NmiOptions o;
  o.node = node;
  o.nmi_listen_address = "127.0.0.1";
  o.nmi_port = 0;
  o.kubeconfig = kube.kubeconfig();
  o.allow_network_plugin_kubenet = true;
  o.imds_endpoint = emu.url();
  o.client_qps = 50;
  // A wrongly waiting request would be held for minutes and fail by the client's timeout.
  o.find_identity_retry_interval = 60;
  return o;
}

std::string IntegrationEnv::next_ip() {
  static std::atomic<int> n{10};
  int v = n++;
  return "127.0." + std::to_string(v / 250) + "." + std::to_string(2 + v % 250);
}

void IntegrationEnv::create_pod(const std::string& ns, const std::string& name, const std::string& node,
                                const std::string& ip, const kube::StringMap& labels,
                                const std::string& owner_replicaset) {
  kube::Pod p;
  p.meta.ns = ns;
  p.meta.name = name;
  p.meta.labels = labels;
  if (!owner_replicaset.empty())
    p.meta.owner_references.push_back({"apps/v1", "ReplicaSet", owner_replicaset, "0000-uid", true, true});
  p.node_name = node;
  p.raw = json::parse(R"({"spec":{"containers":[{"name":"c","image":"busybox"}]}})").as_object();
  auto made = run(kube::create(*client, p));
  if (!made) throw std::runtime_error("create pod: " + made.error().describe());
  auto patch = json::serialize(json::object{
      {"status", json::object{{"phase", "Running"}, {"podIP", ip}, {"podIPs", json::array{json::object{{"ip", ip}}}}}}});
  auto st = run(kube::patch<kube::Pod>(*client, ns, name, kube::PatchType::merge, patch, "status"));
  if (!st) throw std::runtime_error("pod status: " + st.error().describe());
}

kube::AzureIdentity IntegrationEnv::create_identity(kube::AzureIdentity id) {
  auto r = run(kube::create(*client, id));
  if (!r) throw std::runtime_error("create identity: " + r.error().describe());
  return *r;
}

void IntegrationEnv::create_binding(const std::string& ns, const std::string& name, const std::string& identity,
                                    const std::string& selector) {
  kube::AzureIdentityBinding b;
  b.meta.ns = ns;
  b.meta.name = name;
  b.azure_identity = identity;
  b.selector = selector;
  auto r = run(kube::create(*client, b));
  if (!r) throw std::runtime_error("create binding: " + r.error().describe());
}

kube::AzureAssignedIdentity IntegrationEnv::create_assigned(const std::string& ns, const std::string& pod,
                                                            const std::string& node, const kube::AzureIdentity& id,
                                                            const std::string& status) {
  kube::AzureAssignedIdentity a;
  a.meta.ns = ns;
  a.meta.name = pod + "-" + ns + "-" + id.meta.name;
  a.meta.labels["nodename"] = node;
  a.azure_identity_ref = id;
  a.pod = pod;
  a.pod_namespace = ns;
  a.node_name = node;
  a.status = status;
  auto r = run(kube::create(*client, a));
  if (!r) throw std::runtime_error("create assigned identity: " + r.error().describe());
  return *r;
}

void IntegrationEnv::set_assigned_status(kube::AzureAssignedIdentity& aai, const std::string& status) {
  aai.status = status;
  auto r = run(kube::update(*client, aai));
  if (!r) throw std::runtime_error("update assigned identity: " + r.error().describe());
  aai = *r;
}

void IntegrationEnv::create_secret(const std::string& ns, const std::string& name, const kube::StringMap& data) {
  kube::Secret s;
  s.meta.ns = ns;
  s.meta.name = name;
  s.type = "Opaque";
  s.data = data;
  auto r = run(kube::create(*client, s));
  if (!r) throw std::runtime_error("create secret: " + r.error().describe());
}

void IntegrationEnv::create_exception(const std::string& ns, const std::string& name, const kube::StringMap& labels) {
  kube::AzurePodIdentityException e;
  e.meta.ns = ns;
  e.meta.name = name;
  e.pod_labels = labels;
  auto r = run(kube::create(*client, e));
  if (!r) throw std::runtime_error("create exception: " + r.error().describe());
}

}  // namespace aad::test
