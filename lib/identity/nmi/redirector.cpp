#include "identity/nmi/redirector.hpp"

#include "core/log.hpp"

namespace aad::identity::nmi {

Redirector::Redirector(RedirectorOptions options, CommandRunner runner, std::function<void()> on_installed)
    : options_(std::move(options)), run_(std::move(runner)), on_installed_(std::move(on_installed)) {}

Redirector::~Redirector() {
  if (thread_.joinable()) {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
}

bool Redirector::ensure(std::string& error) {
  const std::vector<std::string> list_chain{"iptables", "-w", "-t", "nat", "-S", std::string(kChain)};
  const std::vector<std::string> list_prerouting{"iptables", "-w", "-t", "nat", "-S", "PREROUTING"};
  auto chain = run_(list_chain);
  auto prerouting = run_(list_prerouting);
  if (!prerouting.ok()) {
    error = join_command(list_prerouting) + ": " + prerouting.err;
    return false;
  }
  auto drift = detect_drift(options_.spec, chain.ok(), chain.ok() ? chain.out : "", prerouting.out);
  if (!drift.any()) return true;
  if (installed_)
    log::warning("iptables redirect drifted; repairing",
                 {{"chain_missing", drift.chain_missing}, {"chain_wrong", drift.chain_wrong},
                  {"jump_missing", drift.jump_missing}});
  for (const auto& cmd : repair_commands(options_.spec, drift)) {
    auto r = run_(cmd);
    if (!r.ok()) {
      error = join_command(cmd) + ": " + (r.err.empty() ? "exit status " + std::to_string(r.exit_code) : r.err);
      return false;
    }
  }
  if (installed_) ++repairs_;
  return true;
}

void Redirector::remove() {
  for (const auto& cmd : removal_commands()) {
    auto r = run_(cmd);
    if (!r.ok()) log::debug(1, "iptables removal step failed (ignored)", {{"command", join_command(cmd)}, {"error", r.err}});
  }
  log::info("iptables redirect removed", {{"chain", std::string(kChain)}});
}

bool Redirector::delete_conntrack(std::string& error) {
  std::vector<std::string> cmd{"conntrack", "-D", "-p", "tcp", "--orig-dst", options_.spec.metadata_ip,
                               "--orig-port-dst", std::to_string(options_.spec.metadata_port)};
  auto r = run_(cmd);
  // conntrack exits 1 with "0 flow entries have been deleted" when there was nothing to drop.
  if (r.ok() || r.err.find("0 flow entries") != std::string::npos) {
    log::info("conntrack entries towards IMDS deleted", {{"output", r.err}});
    return true;
  }
  error = join_command(cmd) + ": " + (r.err.empty() ? "exit status " + std::to_string(r.exit_code) : r.err);
  return false;
}

void Redirector::start() { thread_ = std::thread([this] { loop(); }); }

void Redirector::stop() {
  if (thread_.joinable()) {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  remove();
}

void Redirector::loop() {
  // In the image `iptables` is tools/image/iptables-wrapper: this first call picks the node's
  // backend, and says which one ("iptables v1.8.9 (legacy)" or "(nf_tables)").
  auto version = run_(std::vector<std::string>{"iptables", "--version"});
  auto line = version.out.substr(0, version.out.find('\n'));
  if (version.ok()) log::info("iptables backend", {{"version", line}});
  else log::warning("iptables --version failed", {{"error", version.err}});
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    std::string error;
    bool ok = ensure(error);
    if (!ok) {
      log::error("cannot install the iptables redirect; retrying", error,
                 {{"interval_ms", static_cast<long>(options_.interval.count())}});
    } else if (!installed_) {
      installed_ = true;
      log::info("iptables redirect installed",
                {{"metadata", options_.spec.metadata_ip + ":" + std::to_string(options_.spec.metadata_port)},
                 {"target", options_.spec.target_ip + ":" + std::to_string(options_.spec.target_port)}});
      if (options_.conntrack_deletion) {
        std::string cerr;
        if (!delete_conntrack(cerr)) log::error("conntrack deletion failed", cerr);
      }
      if (on_installed_) on_installed_();
    }
    lock.lock();
    // Until the first installation succeeds, retry every second at most.
    auto wait = installed_ ? options_.interval : std::min(options_.interval, std::chrono::milliseconds(1000));
    cv_.wait_for(lock, wait, [this] { return stopping_; });
  }
}

}  // namespace aad::identity::nmi
