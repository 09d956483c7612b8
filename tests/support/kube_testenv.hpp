#pragma once
// A real kube-apiserver (+ embedded etcd) for C++ tests, started through
// tools/kube-testenv/start. No dependencies beyond the C++20 standard library
// and POSIX.
//
//   auto& kube = aad::test::KubeTestenv::shared();   // starts once per process
//   std::string ns = kube.new_namespace("mic");
//   http_get(kube.server_url() + "/api/v1/namespaces/" + ns + "/pods",
//            "Bearer " + kube.admin_token(), kube.ca_cert_pem());
//
// shared() reuses the control plane named by $KUBECONFIG_TESTENV when it is
// set (a parent test script started one); otherwise it builds (if needed) and
// starts one, waits for its READY line, exports KUBECONFIG and
// KUBECONFIG_TESTENV, and stops it with SIGTERM at process exit.
// The repository root is $AAD_SOURCE_ROOT, else found by walking up from the
// current directory. $KUBE_TESTENV_READY_TIMEOUT (seconds, default 180) bounds
// the wait for READY after the build.
#include <sys/types.h>

#include <chrono>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace aad::test {

struct CommandResult {
  int exit_code = -1;  // exit status, or 128 + signal number
  std::string out;     // stdout
  std::string err;     // stderr
};

// Runs argv (argv[0] looked up in PATH) without a shell and captures its output.
CommandResult run_command(const std::vector<std::string>& argv);

class KubeTestenv {
 public:
  struct Options {
    // Data directory kept across stop()/start(); empty: a fresh temporary
    // directory, removed by the destructor.
    std::string dir;
    // Extra flags for tools/kube-testenv/start, e.g. {"--etcd-compaction-interval=2s"}
    // or {"--", "--feature-gates=..."} for kube-apiserver flags.
    std::vector<std::string> extra_args;
    std::chrono::seconds ready_timeout{0};  // 0: $KUBE_TESTENV_READY_TIMEOUT or 180 s
  };

  // The per-process instance (or the parent's, via $KUBECONFIG_TESTENV).
  static KubeTestenv& shared();

  // A separate instance, started now. Throws std::runtime_error on failure.
  explicit KubeTestenv(Options options);
  ~KubeTestenv();
  KubeTestenv(const KubeTestenv&) = delete;
  KubeTestenv& operator=(const KubeTestenv&) = delete;

  const std::string& kubeconfig() const { return kubeconfig_; }
  const std::string& server_url() const { return server_url_; }    // https://127.0.0.1:PORT
  const std::string& admin_token() const { return admin_token_; }  // static token, system:masters
  const std::string& ca_cert_pem() const { return ca_pem_; }       // CA of the serving certificate
  const std::string& data_dir() const { return dir_; }             // empty for a reused instance
  bool owned() const { return owned_; }                            // false when reused from a parent
  bool running() const;

  // Creates a fresh namespace "<prefix>-<random>" and returns its name.
  std::string new_namespace(const std::string& prefix = "test");
  // Runs kubectl against this instance (adds --kubeconfig).
  CommandResult kubectl(const std::vector<std::string>& args) const;
  // A ServiceAccount token through the TokenRequest API (`kubectl create token`).
  std::string token(const std::string& service_account, const std::string& ns,
                    const std::vector<std::string>& extra_args = {}) const;

  // SIGTERM and wait; the data directory is kept, so start() restarts the
  // apiserver on the same etcd data (same credentials; same port when free).
  void stop();
  void start();

  static std::string source_root();
  static std::string kubectl_path();

 private:
  struct ReuseTag {};
  KubeTestenv(ReuseTag, const std::string& kubeconfig);
  void load_kubeconfig();

  Options options_;
  std::string dir_;
  bool remove_dir_ = false;
  bool owned_ = true;
  std::string kubeconfig_, server_url_, admin_token_, ca_pem_;
  pid_t pid_ = -1;
  pid_t owner_pid_ = -1;  // the process that started it: a forked child never stops it
  int stdout_fd_ = -1;
  mutable std::mutex mu_;
};

// Applies tests/kube/testdata/crds.yaml once per process and waits until the CRDs are Established.
void ensure_test_crds(KubeTestenv& kube);

}  // namespace aad::test
