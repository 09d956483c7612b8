#include "kube_testenv.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace aad::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string getenv_str(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("KubeTestenv: " + what); }

std::string errno_str(const std::string& what) { return what + ": " + std::strerror(errno); }

struct Fds {
  int fds[2] = {-1, -1};
  ~Fds() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
};

struct FileActions {
  posix_spawn_file_actions_t fa;
  FileActions() { posix_spawn_file_actions_init(&fa); }
  ~FileActions() { posix_spawn_file_actions_destroy(&fa); }
};

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  out.reserve(argv.size() + 1);
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string base64_decode(const std::string& in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  int buf = 0, bits = 0;
  for (char c : in) {
    int v = val(c);
    if (v < 0) continue;  // '=' padding, whitespace
    buf = (buf << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xff));
    }
  }
  return out;
}

std::string trim(std::string s) {
  auto notspace = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), notspace));
  s.erase(std::find_if(s.rbegin(), s.rend(), notspace).base(), s.end());
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front())
    s = s.substr(1, s.size() - 2);
  return s;
}

std::string random_hex(size_t n) {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}() ^
                             static_cast<uint64_t>(Clock::now().time_since_epoch().count()) ^
                             static_cast<uint64_t>(::getpid())};
  std::lock_guard lock(mu);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(hex[rng() % 16]);
  return s;
}

std::string tail_file(const std::string& path, size_t max_bytes = 4000) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return {};
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  return s.size() > max_bytes ? s.substr(s.size() - max_bytes) : s;
}

std::chrono::seconds default_ready_timeout() {
  std::string v = getenv_str("KUBE_TESTENV_READY_TIMEOUT");
  if (!v.empty()) {
    try {
      return std::chrono::seconds(std::stol(v));
    } catch (...) {
    }
  }
  return std::chrono::seconds(180);
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv) {
  if (argv.empty()) fail("run_command: empty argv");
  Fds out, err;
  if (::pipe2(out.fds, O_CLOEXEC) != 0 || ::pipe2(err.fds, O_CLOEXEC) != 0) fail(errno_str("pipe2"));
  FileActions fa;
  posix_spawn_file_actions_addopen(&fa.fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa.fa, out.fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa.fa, err.fds[1], 2);
  auto args = c_argv(argv);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &fa.fa, nullptr, args.data(), environ);
  if (rc != 0) {
    CommandResult r;
    r.exit_code = 127;
    r.err = "cannot run " + argv[0] + ": " + std::strerror(rc);
    return r;
  }
  ::close(out.fds[1]);
  out.fds[1] = -1;
  ::close(err.fds[1]);
  err.fds[1] = -1;
  CommandResult r;
  pollfd p[2] = {{out.fds[0], POLLIN, 0}, {err.fds[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open = 2;
  char buf[8192];
  while (open > 0) {
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(p[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        p[i].fd = -1;
        --open;
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exit_code = decode_status(status);
  return r;
}

std::string KubeTestenv::source_root() {
  std::string env = getenv_str("AAD_SOURCE_ROOT");
  if (!env.empty()) return fs::absolute(env).lexically_normal().string();
  std::error_code ec;
  for (fs::path p = fs::current_path(ec); !p.empty(); p = p.parent_path()) {
    if (fs::exists(p / "tools" / "kube-testenv" / "start", ec)) return p.string();
    if (p == p.root_path()) break;
  }
  fail("cannot find the repository root: set AAD_SOURCE_ROOT");
}

std::string KubeTestenv::kubectl_path() {
  static std::once_flag once;
  static std::string path;
  std::call_once(once, [] {
    std::string build = source_root() + "/tools/kube-testenv/build";
    CommandResult r = run_command({build, "--kubectl"});
    std::string p = trim(r.out);
    if (r.exit_code != 0 || p.empty()) fail("no kubectl (" + build + " --kubectl failed): " + r.err);
    path = p;
  });
  return path;
}

KubeTestenv& KubeTestenv::shared() {
  // Function-local static: started on first use, destroyed (SIGTERM) at exit.
  static KubeTestenv* instance = [] {
    std::string reuse = getenv_str("KUBECONFIG_TESTENV");
    if (!reuse.empty()) return new KubeTestenv(ReuseTag{}, reuse);
    return new KubeTestenv(Options{});
  }();
  static struct Stopper {
    ~Stopper() { delete instance; }
  } stopper;
  return *instance;
}

KubeTestenv::KubeTestenv(ReuseTag, const std::string& kubeconfig) : owned_(false), kubeconfig_(kubeconfig) {
  load_kubeconfig();
  ::setenv("KUBECONFIG", kubeconfig_.c_str(), 1);
}

KubeTestenv::KubeTestenv(Options options) : options_(std::move(options)) {
  if (options_.ready_timeout.count() == 0) options_.ready_timeout = default_ready_timeout();
  if (options_.dir.empty()) {
    std::string tmpl = (getenv_str("TMPDIR").empty() ? std::string("/tmp") : getenv_str("TMPDIR")) +
                       "/kube-testenv-cxx-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) fail(errno_str("mkdtemp " + tmpl));
    dir_ = buf.data();
    remove_dir_ = true;
  } else {
    dir_ = fs::absolute(options_.dir).lexically_normal().string();
    fs::create_directories(dir_);
  }
  kubeconfig_ = dir_ + "/kubeconfig";
  try {
    start();
  } catch (...) {
    if (remove_dir_) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
    throw;
  }
}

KubeTestenv::~KubeTestenv() {
  if (!owned_ || (owner_pid_ > 0 && owner_pid_ != ::getpid())) return;  // e.g. exit() in a forked child
  try {
    stop();
  } catch (...) {
  }
  if (remove_dir_) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

bool KubeTestenv::running() const {
  std::lock_guard lock(mu_);
  if (!owned_) return true;
  return pid_ > 0 && ::kill(pid_, 0) == 0;
}

void KubeTestenv::start() {
  std::lock_guard lock(mu_);
  if (!owned_) fail("start(): this instance belongs to a parent process ($KUBECONFIG_TESTENV)");
  if (pid_ > 0) return;

  const std::string root = source_root();
  // Build first: a cold build takes many minutes and must not count against
  // the READY timeout.
  CommandResult b = run_command({root + "/tools/kube-testenv/build"});
  if (b.exit_code != 0) fail("tools/kube-testenv/build failed:\n" + b.err);

  const std::string log = dir_ + "/kube-testenv.log";
  std::vector<std::string> argv = {root + "/tools/kube-testenv/start", "--watch-parent", "--dir", dir_,
                                   "--kubeconfig", kubeconfig_};
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());

  Fds out;
  if (::pipe2(out.fds, O_CLOEXEC) != 0) fail(errno_str("pipe2"));
  FileActions fa;
  posix_spawn_file_actions_addopen(&fa.fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa.fa, out.fds[1], 1);
  posix_spawn_file_actions_addopen(&fa.fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  auto args = c_argv(argv);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, args[0], &fa.fa, nullptr, args.data(), environ);
  if (rc != 0) fail("cannot run " + argv[0] + ": " + std::strerror(rc));
  ::close(out.fds[1]);
  out.fds[1] = -1;

  auto kill_child = [&] {
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      if (::waitpid(pid, nullptr, WNOHANG) == pid) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  };

  const auto deadline = Clock::now() + options_.ready_timeout;
  std::string buf, ready_path;
  while (ready_path.empty()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      kill_child();
      fail("no READY line after " + std::to_string(options_.ready_timeout.count()) + "s; log " + log + ":\n" +
           tail_file(log));
    }
    pollfd p{out.fds[0], POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (n < 0 && errno != EINTR) {
      kill_child();
      fail(errno_str("poll"));
    }
    if (n <= 0) continue;
    char tmp[4096];
    ssize_t r = ::read(out.fds[0], tmp, sizeof tmp);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      int status = 0;
      ::waitpid(pid, &status, 0);
      fail("kube-testenv exited (" + std::to_string(decode_status(status)) + ") before READY; log " + log + ":\n" +
           tail_file(log));
    }
    buf.append(tmp, static_cast<size_t>(r));
    size_t pos;
    while ((pos = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, pos);
      buf.erase(0, pos + 1);
      if (line.rfind("READY ", 0) == 0) {
        ready_path = trim(line.substr(6));
        break;
      }
    }
  }
  pid_ = pid;
  owner_pid_ = ::getpid();
  stdout_fd_ = out.fds[0];  // kept open so the child never gets SIGPIPE
  out.fds[0] = -1;
  kubeconfig_ = ready_path;
  try {
    load_kubeconfig();
  } catch (...) {
    kill_child();
    pid_ = -1;
    throw;
  }
  ::setenv("KUBECONFIG", kubeconfig_.c_str(), 1);
  ::setenv("KUBECONFIG_TESTENV", kubeconfig_.c_str(), 1);
}

void KubeTestenv::stop() {
  std::lock_guard lock(mu_);
  if (!owned_) fail("stop(): this instance belongs to a parent process ($KUBECONFIG_TESTENV)");
  if (pid_ <= 0 || owner_pid_ != ::getpid()) return;
  ::kill(pid_, SIGTERM);
  bool exited = false;
  for (int i = 0; i < 600 && !exited; ++i) {  // 60 s
    pid_t w = ::waitpid(pid_, nullptr, WNOHANG);
    if (w == pid_ || (w < 0 && errno == ECHILD)) exited = true;
    else std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!exited) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_ = -1;
  if (stdout_fd_ >= 0) {
    ::close(stdout_fd_);
    stdout_fd_ = -1;
  }
}

void KubeTestenv::load_kubeconfig() {
  std::ifstream f(kubeconfig_);
  if (!f) fail("cannot read kubeconfig " + kubeconfig_);
  std::string line, ca_b64;
  server_url_.clear();
  admin_token_.clear();
  while (std::getline(f, line)) {
    std::string t = trim(line);
    if (t.rfind("- ", 0) == 0) t = trim(t.substr(2));
    auto value = [&](const char* key) -> std::optional<std::string> {
      std::string k = std::string(key) + ":";
      if (t.rfind(k, 0) == 0) return trim(t.substr(k.size()));
      return std::nullopt;
    };
    // The first cluster and the first user of a kube-testenv kubeconfig are the
    // admin ones (token user first).
    if (auto v = value("server"); v && server_url_.empty()) server_url_ = *v;
    if (auto v = value("token"); v && admin_token_.empty()) admin_token_ = *v;
    if (auto v = value("certificate-authority-data"); v && ca_b64.empty()) ca_b64 = *v;
  }
  if (server_url_.empty()) fail("no server in kubeconfig " + kubeconfig_);
  ca_pem_ = base64_decode(ca_b64);
}

CommandResult KubeTestenv::kubectl(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {kubectl_path(), "--kubeconfig", kubeconfig_};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

std::string KubeTestenv::new_namespace(const std::string& prefix) {
  std::string p;
  for (char c : prefix) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) p.push_back(c);
    else if (c == '-' || c == '_' || c == '.' || c == ' ') p.push_back('-');
  }
  while (!p.empty() && p.front() == '-') p.erase(p.begin());
  if (p.size() > 40) p.resize(40);
  if (p.empty()) p = "test";
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::string name = p + "-" + random_hex(8);
    CommandResult r = kubectl({"create", "namespace", name});
    if (r.exit_code == 0) return name;
    if (r.err.find("AlreadyExists") == std::string::npos && r.err.find("already exists") == std::string::npos)
      fail("kubectl create namespace " + name + " failed: " + r.err);
  }
  fail("could not create a unique namespace");
}

std::string KubeTestenv::token(const std::string& service_account, const std::string& ns,
                               const std::vector<std::string>& extra_args) const {
  std::vector<std::string> args = {"-n", ns, "create", "token", service_account};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  CommandResult r = kubectl(args);
  if (r.exit_code != 0) fail("kubectl create token " + service_account + " -n " + ns + " failed: " + r.err);
  return trim(r.out);
}

void ensure_test_crds(KubeTestenv& kube) {
  static bool done = false;
  if (done) return;
  auto path = KubeTestenv::source_root() + "/tests/kube/testdata/crds.yaml";
  auto r = kube.kubectl({"apply", "-f", path});
  if (r.exit_code != 0) throw std::runtime_error("kubectl apply crds: " + r.err);
  r = kube.kubectl({"wait", "--for", "condition=established", "--timeout=60s", "-f", path});
  if (r.exit_code != 0) throw std::runtime_error("kubectl wait crds: " + r.err);
  done = true;
}

}  // namespace aad::test
