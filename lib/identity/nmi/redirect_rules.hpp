#pragma once
// The iptables redirect of IMDS traffic to NMI (table nat, chain aad-metadata), as v1.8.17
// writes it. Planning only: what the chain must contain, whether what is installed has drifted,
// and which iptables commands repair or remove it. Running them is the caller's job.
#include <string>
#include <string_view>
#include <vector>

namespace aad::identity::nmi {

inline constexpr std::string_view kChain = "aad-metadata";

struct RedirectSpec {
  std::string metadata_ip;  // 169.254.169.254
  int metadata_port = 80;
  std::string target_ip;    // NMI's listen address (127.0.0.1 when it listens on 0.0.0.0)
  int target_port = 2579;
};

RedirectSpec make_redirect_spec(std::string_view metadata_ip, int metadata_port, std::string_view listen_address,
                                int nmi_port);

// The chain exactly as `iptables -t nat -S aad-metadata` lists it.
std::vector<std::string> expected_chain(const RedirectSpec& spec);
// The PREROUTING jump as `iptables -t nat -S PREROUTING` lists it.
std::string expected_jump();

struct Drift {
  bool chain_missing = false;
  bool chain_wrong = false;   // exists but its rules differ from expected_chain
  bool jump_missing = false;
  bool any() const { return chain_missing || chain_wrong || jump_missing; }
};

// `chain_listing`: output of `iptables -t nat -S aad-metadata` (empty optional text and
// chain_exists=false when listing failed); `prerouting_listing`: of `iptables -t nat -S PREROUTING`.
Drift detect_drift(const RedirectSpec& spec, bool chain_exists, std::string_view chain_listing,
                   std::string_view prerouting_listing);

using Command = std::vector<std::string>;  // argv, starting with "iptables"

// Commands that bring the rules from `drift` to the expected state (none when nothing drifted).
std::vector<Command> repair_commands(const RedirectSpec& spec, const Drift& drift);
// Commands that remove the jump and the chain (run on SIGTERM; errors for absent parts are fine).
std::vector<Command> removal_commands();

// True when DNAT from PREROUTING to this target needs net.ipv4.conf.*.route_localnet=1.
bool needs_route_localnet(std::string_view target_ip);

}  // namespace aad::identity::nmi
