#pragma once
// Running a system command (iptables, conntrack) without a shell and capturing its output.
#include <functional>
#include <string>
#include <vector>

namespace aad::identity::nmi {

struct CommandResult {
  int exit_code = -1;  // exit status; 127 when it could not be started; 128 + signal
  std::string out, err;
  bool ok() const { return exit_code == 0; }
};

// argv[0] is looked up in PATH. Blocking: call it off the io_context thread.
CommandResult run_command(const std::vector<std::string>& argv);

using CommandRunner = std::function<CommandResult(const std::vector<std::string>&)>;

std::string join_command(const std::vector<std::string>& argv);

}  // namespace aad::identity::nmi
