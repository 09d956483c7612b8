#pragma once
// Suite nmi, integration part: the real NMI engine (caches, resolver, token service, handler)
// in this process on loopback, against the real kube-apiserver (KubeTestenv) and the Azure
// emulator. iptables is never touched: the engine runs with manage_iptables=false (an
// in-process override that the binary does not expose). "Pods" are Pod objects whose
// status.podIP is a 127.0.0.x address; requests come from sockets bound to that address, so
// NMI sees exactly the peer address a DNAT-ed pod connection would have.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "azure/emulator_fixture.hpp"
#include "core/health.hpp"
#include "core/metrics.hpp"
#include "identity/nmi/engine.hpp"
#include "kube/client.hpp"
#include "kube/models.hpp"
#include "support/kube_testenv.hpp"

namespace aad::test {

struct Reply {
  unsigned status = 0;
  std::string body;
  boost::beast::http::fields headers;
  boost::json::value json() const { return boost::json::parse(body); }
};

// One HTTP/1.1 exchange from a socket bound to `source` (a 127.0.0.x address).
Reply http_from(const std::string& source, unsigned short port, const std::string& target,
                const std::vector<std::pair<std::string, std::string>>& headers = {{"Metadata", "true"}},
                boost::beast::http::verb method = boost::beast::http::verb::get, const std::string& body = {});
// The same request straight to a base URL (the emulator), for round-trip comparisons.
Reply http_to(const std::string& base_url, const std::string& target,
              const std::vector<std::pair<std::string, std::string>>& headers,
              boost::beast::http::verb method = boost::beast::http::verb::get);

// The engine on its own thread and io_context.
class NmiProcess {
 public:
  explicit NmiProcess(identity::NmiOptions options);
  ~NmiProcess();
  unsigned short port() const { return port_; }
  const std::string& node() const { return node_; }
  // Read on the engine's thread.
  std::string metrics_text();
  bool active();
  bool ready();

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  metrics::Registry registry_;
  http::Health health_;
  std::unique_ptr<identity::nmi::Engine> engine_;
  std::thread thread_;
  unsigned short port_ = 0;
  std::string node_;
};

// The apiserver (CRDs applied), the emulator (one VM with two user-assigned identities and a
// system identity; a secret SP and a certificate SP), and a kube client for the test's writes.
struct IntegrationEnv {
  KubeTestenv& kube = KubeTestenv::shared();
  AzureEmulator& emu = AzureEmulator::shared();
  boost::asio::io_context io;
  std::unique_ptr<kube::Client> client;
  std::string mi1_id, mi1_client, mi2_id, mi2_client;
  std::string sp_secret_client = "11111111-2222-3333-4444-000000000001";
  std::string sp_cert_client = "11111111-2222-3333-4444-000000000002";
  std::string sp_secret = "s3cr3t-value";
  std::string cert_p12, cert_password;

  IntegrationEnv();
  identity::NmiOptions options(const std::string& node) const;

  template <typename T>
  T run(boost::asio::awaitable<T> aw);

  std::string new_namespace(const std::string& prefix) { return kube.new_namespace(prefix); }
  // A Running pod on `node` with status.podIP = ip.
  void create_pod(const std::string& ns, const std::string& name, const std::string& node, const std::string& ip,
                  const kube::StringMap& labels, const std::string& owner_replicaset = {});
  kube::AzureIdentity create_identity(kube::AzureIdentity id);
  void create_binding(const std::string& ns, const std::string& name, const std::string& identity,
                      const std::string& selector);
  kube::AzureAssignedIdentity create_assigned(const std::string& ns, const std::string& pod, const std::string& node,
                                              const kube::AzureIdentity& id, const std::string& status);
  void set_assigned_status(kube::AzureAssignedIdentity& aai, const std::string& status);
  void create_secret(const std::string& ns, const std::string& name, const kube::StringMap& data);
  void create_exception(const std::string& ns, const std::string& name, const kube::StringMap& labels);
  static std::string next_ip();
};

}  // namespace aad::test

#include "support/async.hpp"

template <typename T>
T aad::test::IntegrationEnv::run(boost::asio::awaitable<T> aw) {
  return run_async(io, std::move(aw), std::chrono::seconds(60));
}
