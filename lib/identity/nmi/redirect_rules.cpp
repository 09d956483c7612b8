#include "identity/nmi/redirect_rules.hpp"

#include <fmt/format.h>

#include <sstream>

namespace aad::identity::nmi {
namespace {

// `-w`: wait for the xtables lock instead of failing while kube-proxy holds it.
Command iptables(std::initializer_list<std::string> args) {
  Command c{"iptables", "-w", "-t", "nat"};
  c.insert(c.end(), args);
  return c;
}

std::vector<std::string> lines_of(std::string_view text) {
  std::vector<std::string> out;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

}  // namespace

RedirectSpec make_redirect_spec(std::string_view metadata_ip, int metadata_port, std::string_view listen_address,
                                int nmi_port) {
  RedirectSpec s;
  s.metadata_ip = std::string(metadata_ip);
  s.metadata_port = metadata_port;
  s.target_ip = listen_address.empty() || listen_address == "0.0.0.0" ? "127.0.0.1" : std::string(listen_address);
  s.target_port = nmi_port;
  return s;
}

std::vector<std::string> expected_chain(const RedirectSpec& s) {
  return {
      fmt::format("-N {}", kChain),
      fmt::format("-A {} ! -s 127.0.0.1/32 -d {}/32 -p tcp -m tcp --dport {} -j DNAT --to-destination {}:{}", kChain,
                  s.metadata_ip, s.metadata_port, s.target_ip, s.target_port),
      fmt::format("-A {} -j RETURN", kChain),
  };
}

std::string expected_jump() { return fmt::format("-A PREROUTING -j {}", kChain); }

Drift detect_drift(const RedirectSpec& spec, bool chain_exists, std::string_view chain_listing,
                   std::string_view prerouting_listing) {
  Drift d;
  d.chain_missing = !chain_exists;
  if (chain_exists) d.chain_wrong = lines_of(chain_listing) != expected_chain(spec);
  d.jump_missing = true;
  for (const auto& line : lines_of(prerouting_listing))
    if (line == expected_jump()) d.jump_missing = false;
  return d;
}

std::vector<Command> repair_commands(const RedirectSpec& s, const Drift& d) {
  std::vector<Command> out;
  if (d.chain_missing) out.push_back(iptables({"-N", std::string(kChain)}));
  if (d.chain_missing || d.chain_wrong) {
    if (!d.chain_missing) out.push_back(iptables({"-F", std::string(kChain)}));
    out.push_back(iptables({"-A", std::string(kChain), "!", "-s", "127.0.0.1/32", "-d", s.metadata_ip + "/32", "-p",
                            "tcp", "-m", "tcp", "--dport", std::to_string(s.metadata_port), "-j", "DNAT",
                            "--to-destination", fmt::format("{}:{}", s.target_ip, s.target_port)}));
    out.push_back(iptables({"-A", std::string(kChain), "-j", "RETURN"}));
  }
  if (d.jump_missing) out.push_back(iptables({"-I", "PREROUTING", "1", "-j", std::string(kChain)}));
  return out;
}

std::vector<Command> removal_commands() {
  return {iptables({"-D", "PREROUTING", "-j", std::string(kChain)}), iptables({"-F", std::string(kChain)}),
          iptables({"-X", std::string(kChain)})};
}

bool needs_route_localnet(std::string_view target_ip) { return target_ip.starts_with("127."); }

}  // namespace aad::identity::nmi
