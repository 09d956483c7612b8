// --role=mic: the controller (issue 7).
#include <cstdio>

#include "app/role_process.hpp"
#include "app/run_role.hpp"
#include "core/log.hpp"

namespace aad::app {

int run_mic(const identity::MicOptions& o) {
  configure_logging(o);
  if (o.mic_pod_namespace.empty()) {
    std::fprintf(stderr, "aad-pod-identity: environment variable MIC_POD_NAMESPACE must be set for --role=mic\n");
    return 2;
  }
  RoleHooks hooks;
  hooks.start = [](RoleRuntime& rt) {
    rt.health.add_readiness_check("mic-engine", [] { return false; });
    log::error("role engine unavailable in this build; serving probes only (readiness stays failed)",
               "the MIC controller is not implemented yet (issue 7)", {{"role", "mic"}});
    return true;
  };
  return serve_role("mic", o, std::move(hooks));
}

}  // namespace aad::app
