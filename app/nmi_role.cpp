// --role=nmi: the node agent (issue 6).
#include "app/role_process.hpp"
#include "app/run_role.hpp"
#include "core/log.hpp"

namespace aad::app {

int run_nmi(const identity::NmiOptions& o) {
  configure_logging(o);
  RoleHooks hooks;
  hooks.start = [](RoleRuntime& rt) {
    rt.health.add_readiness_check("nmi-engine", [] { return false; });
    log::error("role engine unavailable in this build; serving probes only (readiness stays failed)",
               "the NMI token service is not implemented yet (issue 6)", {{"role", "nmi"}});
    return true;
  };
  return serve_role("nmi", o, std::move(hooks));
}

}  // namespace aad::app
