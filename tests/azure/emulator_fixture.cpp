#include "emulator_fixture.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/async.hpp"

namespace aad::test {

namespace {

std::string source_root() {
  if (const char* r = std::getenv("AAD_SOURCE_ROOT")) return r;
  return ".";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

AzureEmulator& AzureEmulator::shared() {
  static AzureEmulator instance;
  return instance;
}

AzureEmulator::AzureEmulator(std::vector<std::string> extra_args)
    : client_(io_.get_executor(), http::ClientOptions{}) {
  const char* py = std::getenv("AAD_PYTHON");
  std::string python = py && *py ? py : "python3";
  std::string script = source_root() + "/tools/azure-emulator/emulator.py";
  char tmpl[] = "/tmp/aad-azure-emulator-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  ::close(fd);
  log_path_ = tmpl;
  std::string out_path = log_path_ + ".out";

  std::vector<std::string> args = {python, "-u", script, "--listen", "127.0.0.1:0"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  owner_ = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    // The emulator goes away with the test process, even when a sanitizer aborts it.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != owner_) ::_exit(1);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out >= 0) ::dup2(out, 1);
    if (err >= 0) ::dup2(err, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::string ready;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string text = read_file(out_path);
    auto pos = text.find("READY ");
    if (pos != std::string::npos) {
      auto end = text.find('\n', pos);
      if (end != std::string::npos) {
        ready = text.substr(pos + 6, end - pos - 6);
        break;
      }
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("azure emulator exited before READY: " + read_file(log_path_));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (ready.empty()) throw std::runtime_error("azure emulator not READY in time: " + read_file(log_path_));
  auto doc = boost::json::parse(ready).as_object();
  url_ = std::string(doc.at("admin").as_string());
  while (!url_.empty() && url_.back() == '/') url_.pop_back();
  auto state = admin(boost::beast::http::verb::get, "/admin/settings").as_object();
  tenant_ = std::string(state.at("tenantId").as_string());
  subscription_ = std::string(state.at("subscriptionId").as_string());
}

AzureEmulator::~AzureEmulator() {
  if (pid_ > 0 && ::getpid() == owner_) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    ::unlink(log_path_.c_str());
    ::unlink((log_path_ + ".out").c_str());
  }
}

void AzureEmulator::reset() {
  post("/admin/reset", boost::json::object{});
  // Tests run fast: no LRO pause unless a test asks for one.
  admin(boost::beast::http::verb::patch, "/admin/settings",
        boost::json::parse(R"({"arm": {"lro": {"retryAfter": 0}}})"));
}

boost::json::value AzureEmulator::admin(boost::beast::http::verb method, const std::string& path,
                                        const boost::json::value& body) {
  http::ClientRequest req;
  req.method = method;
  req.url = url_ + path;
  req.timeout = std::chrono::seconds(20);
  if (!body.is_null()) {
    req.body = boost::json::serialize(body);
    req.headers = {{"Content-Type", "application/json"}};
  }
  auto res = run_async(io_, client_.send(req));
  if (!res) throw std::runtime_error("admin " + path + ": " + res.error().message());
  if (res->status >= 300)
    throw std::runtime_error("admin " + path + ": HTTP " + std::to_string(res->status) + " " + res->body);
  if (res->body.empty()) return nullptr;
  return boost::json::parse(res->body);
}

long AzureEmulator::count(const std::string& endpoint_class, const std::string& status) {
  auto all = admin(boost::beast::http::verb::get, "/admin/counters").as_object();
  auto it = all.find(endpoint_class);
  if (it == all.end()) return 0;
  long total = 0;
  for (const auto& [method, counts] : it->value().as_object()) {
    const auto& c = counts.as_object();
    if (auto s = c.find(status); s != c.end()) total += static_cast<long>(s->value().to_number<double>());
  }
  return total;
}

}  // namespace aad::test
