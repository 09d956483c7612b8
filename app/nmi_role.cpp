// --role=nmi: the node agent (issue 6). The engine lives in lib/identity/nmi.
#include <memory>

#include "app/role_process.hpp"
#include "app/run_role.hpp"
#include "identity/nmi/engine.hpp"

namespace aad::app {

int run_nmi(const identity::NmiOptions& o) {
  configure_logging(o);
  std::unique_ptr<identity::nmi::Engine> engine;
  RoleHooks hooks;
  hooks.start = [&](RoleRuntime& rt) {
    engine = std::make_unique<identity::nmi::Engine>(rt.io, o, rt.registry, rt.health);
    return engine->start();
  };
  hooks.stop = [&]() -> boost::asio::awaitable<void> {
    if (engine) co_await engine->stop();
  };
  hooks.release = [&] { engine.reset(); };
  return serve_role("nmi", o, std::move(hooks));
}

}  // namespace aad::app
