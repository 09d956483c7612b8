#pragma once
#include "identity/options.hpp"

namespace aad::app {

// Each runs its role until SIGTERM/SIGINT and returns the process exit status.
int run_mic(const identity::MicOptions& options);
int run_nmi(const identity::NmiOptions& options);

}  // namespace aad::app
