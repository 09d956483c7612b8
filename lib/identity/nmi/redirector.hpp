#pragma once
// Keeps the iptables redirect in place (behaviour reference 3.15, 3.16): installs the chain and
// the PREROUTING jump, optionally drops conntrack entries towards IMDS once the rules are in,
// re-verifies every interval and repairs drift, and removes everything on stop(). Runs on its
// own thread because iptables -w may block on the xtables lock.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "identity/nmi/command.hpp"
#include "identity/nmi/redirect_rules.hpp"

namespace aad::identity::nmi {

struct RedirectorOptions {
  RedirectSpec spec;
  std::chrono::milliseconds interval{60000};  // --ipt-update-interval-sec
  bool conntrack_deletion = false;            // --enable-conntrack-deletion
};

class Redirector {
 public:
  // `on_installed` is called (on the redirector's thread) once the rules are first in place.
  Redirector(RedirectorOptions options, CommandRunner runner = run_command, std::function<void()> on_installed = {});
  ~Redirector();

  // One verification pass: install or repair. False (and `error`) when a command failed.
  bool ensure(std::string& error);
  // Removes the jump and the chain; failures of absent parts are ignored.
  void remove();
  // conntrack -D for TCP flows to metadata-ip:port; "nothing to delete" is success.
  bool delete_conntrack(std::string& error);

  void start();  // the verification thread
  void stop();   // stops the thread and removes the rules
  std::size_t repairs() const { return repairs_; }

 private:
  void loop();
  RedirectorOptions options_;
  CommandRunner run_;
  std::function<void()> on_installed_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool installed_ = false;
  std::size_t repairs_ = 0;
};

}  // namespace aad::identity::nmi
