#pragma once
// Shared helpers for the kube suite: a client on the shared test apiserver, the test CRDs,
// running background coroutines and pumping the io_context until a condition holds.
#include "catch_kube.hpp"
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "kube/client.hpp"
#include "kube/config.hpp"
#include "support/async.hpp"
#include "support/kube_testenv.hpp"

namespace aad::test {


// Pumps `io` until pred() is true or the limit passes; returns pred().
inline bool pump_until(boost::asio::io_context& io, const std::function<bool()>& pred,
                       std::chrono::seconds limit = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  io.restart();
  while (!pred() && std::chrono::steady_clock::now() < deadline) io.run_one_for(std::chrono::milliseconds(20));
  return pred();
}

// A coroutine running in the background; finished() once it returned (or threw).
struct Background {
  bool done = false;
  std::exception_ptr error;
  Background(boost::asio::io_context& io, boost::asio::awaitable<void> aw) {
    boost::asio::co_spawn(io, std::move(aw), [this](std::exception_ptr e) {
      error = e;
      done = true;
    });
  }
  bool finished() const { return done; }
};

struct KubeEnv {
  boost::asio::io_context io;
  KubeTestenv& kube = KubeTestenv::shared();
  kube::Config config;
  std::unique_ptr<kube::Client> client;

  explicit KubeEnv(const std::string& context = {}, kube::ClientOptions options = {}) {
    config = kube::load_kubeconfig(kube.kubeconfig(), context);
    options.qps = options.qps == 5 ? 100 : options.qps;  // tests are chatty
    options.burst = options.burst == 10 ? 200 : options.burst;
    client = std::make_unique<kube::Client>(io.get_executor(), config, options);
  }
  template <typename T>
  T run(boost::asio::awaitable<T> aw, std::chrono::seconds limit = std::chrono::seconds(60)) {
    return run_async(io, std::move(aw), limit);
  }
};

}  // namespace aad::test
