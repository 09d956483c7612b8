// aad-pod-identity: one binary, two roles (--role=mic | --role=nmi).
// Exit status: 0 success, 1 runtime failure, 2 bad command line or configuration.
#include <fmt/format.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "app/run_role.hpp"
#include "core/flags.hpp"
#include "core/log.hpp"
#include "core/version.hpp"
#include "identity/options.hpp"

namespace {

std::string version_line() {
  return fmt::format("aad-pod-identity {} (commit {}, built {})", aad::version::semver,
                     aad::version::git_commit, aad::version::build_date);
}

std::string general_usage() {
  return "Usage: aad-pod-identity --role=mic|nmi [flags]\n\n"
         "Roles:\n"
         "  mic  Managed Identity Controller: assigns identities to VMs and scale sets (Deployment)\n"
         "  nmi  Node Managed Identity: answers pods' token requests on each node (DaemonSet)\n\n"
         "  --version  Print the version and exit\n\n";
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "aad-pod-identity: %s\n", message.c_str());
  return 2;
}

// Pulls --role=X / --role X / -role X out of the arguments; giving it twice is an error.
bool take_role(std::vector<std::string>& args, std::string& role, std::string& error) {
  bool found = false;
  for (std::size_t i = 0; i < args.size();) {
    std::string_view a = args[i];
    std::optional<std::string> value;
    std::size_t consumed = 1;
    for (std::string_view prefix : {"--role", "-role"}) {
      if (a == prefix) {
        if (i + 1 >= args.size()) return error = "flag --role needs a value (mic or nmi)", false;
        value = args[i + 1];
        consumed = 2;
      } else if (a.starts_with(prefix) && a.size() > prefix.size() && a[prefix.size()] == '=') {
        value = std::string(a.substr(prefix.size() + 1));
      }
    }
    if (!value) {
      ++i;
      continue;
    }
    if (found) return error = "flag --role given more than once", false;
    found = true;
    role = *value;
    args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i + consumed));
  }
  if (found && role.empty()) return error = "flag --role needs a value (mic or nmi)", false;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string role, error;
  if (!take_role(args, role, error)) return usage_error(error);

  if (role.empty()) {
    // Without a role only --version and --help make sense.
    bool version = false;
    aad::FlagSet fs("aad-pod-identity (without --role)");
    fs.add_bool("version", &version, false, "Print the version and exit");
    try {
      fs.parse(args);
    } catch (const aad::HelpRequested&) {
      std::printf("%s%s\n%s", general_usage().c_str(), aad::identity::mic_usage().c_str(),
                  aad::identity::nmi_usage().c_str());
      return 0;
    } catch (const aad::FlagError& e) {
      return usage_error(fmt::format("{} (flag --role is required: mic or nmi)", e.what()));
    }
    if (version) return std::printf("%s\n", version_line().c_str()), 0;
    return usage_error("missing flag --role (mic or nmi); see --help");
  }
  if (role != "mic" && role != "nmi")
    return usage_error(fmt::format("invalid value {} for flag --role: must be mic or nmi", aad::quote(role)));

  try {
    if (role == "mic") {
      auto options = aad::identity::parse_mic_options(args);
      if (options.version) return std::printf("%s\n", version_line().c_str()), 0;
      return aad::app::run_mic(options);
    }
    auto options = aad::identity::parse_nmi_options(args);
    if (options.version) return std::printf("%s\n", version_line().c_str()), 0;
    return aad::app::run_nmi(options);
  } catch (const aad::HelpRequested&) {
    std::printf("%s", (role == "mic" ? aad::identity::mic_usage() : aad::identity::nmi_usage()).c_str());
    return 0;
  } catch (const aad::FlagError& e) {
    return usage_error(e.what());
  }
}
