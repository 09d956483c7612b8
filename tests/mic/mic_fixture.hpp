#pragma once
// One MIC controller in-process against the real apiserver (KubeTestenv) and the Azure emulator,
// with short intervals, plus helpers to create pods/nodes/CRDs and to look at ARM state.
// Each fixture starts from a clean slate: the emulator is reset and every object MIC looks at
// (labelled pods, nodes, the four kinds) is removed from this process's apiserver.
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "azure/aad_token_source.hpp"
#include "azure/arm_client.hpp"
#include "core/metrics.hpp"
#include "identity/mic/controller.hpp"
#include "kube/client.hpp"
#include "kube/models.hpp"
#include "support/kube_testenv.hpp"
#include "azure/emulator_fixture.hpp"

namespace aad::test::mic {

struct AzureIdentityInfo {
  std::string resource_id, client_id;
};

struct MicTestOptions {
  std::chrono::milliseconds drift_interval{std::chrono::minutes(10)};
  std::chrono::milliseconds resync_period{std::chrono::minutes(10)};
  std::set<std::string> immutable_client_ids;
  std::string lease_name = "aad-pod-identity-mic";
  bool force_namespaced = false;
  bool start = true;  // start a controller at once
};

class MicFixture {
 public:
  explicit MicFixture(MicTestOptions options = {});
  ~MicFixture();

  boost::asio::io_context io;
  KubeTestenv& kube;
  AzureEmulator& emu;
  std::unique_ptr<kube::Client> client;
  std::string ns;          // this test's namespace
  std::string rg = "MC_rg";
  std::string sp_client_id = "5a2b6c1d-3e4f-4a5b-8c7d-9e0f1a2b3c4d";

  // The controller (replaced by start_controller()).
  metrics::Registry registry;
  std::unique_ptr<http::Client> arm_http;
  std::unique_ptr<azure::AadTokenSource> tokens;
  std::unique_ptr<azure::ArmComputeClient> arm;
  std::unique_ptr<identity::mic::Controller> mic;
  bool mic_done = false;
  std::optional<kube::LeadershipEnd> mic_end;  // what mic->run() returned
  void start_controller();
  void stop_controller();

  // Azure (emulator admin API).
  AzureIdentityInfo azure_identity(const std::string& name, const std::string& client_id = {});
  std::string make_vmss(const std::string& name, const std::vector<std::string>& ids = {}, bool system = false);
  std::string make_vm(const std::string& name, const std::vector<std::string>& ids = {}, bool system = false);
  std::set<std::string> assigned(const std::string& arm_path);  // lower-cased ids on the resource
  boost::json::object resource_view(const std::string& arm_path);
  long arm_calls(const std::string& cls, const std::string& status = "total") { return emu.count(cls, status); }

  // Kubernetes objects.
  std::string vmss_provider_id(const std::string& vmss, int instance) const;
  std::string vm_provider_id(const std::string& vm) const;
  void create_node(const std::string& name, const std::string& provider_id);
  void delete_node(const std::string& name);
  void create_identity(const std::string& name, const AzureIdentityInfo& id, int type = 0,
                       const std::string& in_ns = {});
  void update_identity(const std::string& name, const AzureIdentityInfo& id, const std::string& in_ns = {});
  void delete_identity(const std::string& name, const std::string& in_ns = {});
  void create_binding(const std::string& name, const std::string& identity, const std::string& selector,
                      const std::string& in_ns = {});
  void delete_binding(const std::string& name, const std::string& in_ns = {});
  void create_pod(const std::string& name, const std::string& node, const std::string& selector,
                  const std::string& in_ns = {});
  void relabel_pod(const std::string& name, const std::string& selector, const std::string& in_ns = {});
  void delete_pod(const std::string& name, const std::string& in_ns = {});
  std::optional<kube::AzureAssignedIdentity> aai(const std::string& name, const std::string& in_ns = "default");
  std::vector<kube::AzureAssignedIdentity> aais();  // all, every namespace
  std::string aai_name(const std::string& pod, const std::string& identity) const { return pod + "-" + ns + "-" + identity; }
  std::vector<kube::Event> events_for(const std::string& ns_, const std::string& name);
  // Another holder takes the Lease in this test's namespace (for a minute), as if it had won.
  void steal_lease(const std::string& lease, const std::string& holder);
  // kubectl apply / delete of one object given as JSON.
  void apply(const boost::json::object& obj);
  void remove_object(const std::string& kind, const std::string& name);

  // Pumps the io_context until pred() holds (false after the limit).
  bool wait_for(const std::function<bool()>& pred, std::chrono::seconds limit = std::chrono::seconds(60));
  // Lets the controller run for a while (for "nothing happens" checks).
  void settle(std::chrono::milliseconds d);
  bool aai_status(const std::string& name, const std::string& status);
  bool aai_gone(const std::string& name);

  template <typename T>
  T run(boost::asio::awaitable<T> aw);

 private:
  void wipe();
  MicTestOptions options_;
};

}  // namespace aad::test::mic
