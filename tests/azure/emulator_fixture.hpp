#pragma once
// The Azure emulator (tools/azure-emulator/emulator.py) for C++ tests: one process per test
// binary, started on 127.0.0.1:0, READY line read back, SIGTERM at exit. Tests reset its state
// with reset() and drive its admin API with our own http::Client.
#include <sys/types.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/value.hpp>
#include <string>
#include <vector>

#include "core/http_client.hpp"

namespace aad::test {

class AzureEmulator {
 public:
  // The per-process instance (started on first use).
  static AzureEmulator& shared();

  explicit AzureEmulator(std::vector<std::string> extra_args = {});
  ~AzureEmulator();
  AzureEmulator(const AzureEmulator&) = delete;
  AzureEmulator& operator=(const AzureEmulator&) = delete;

  const std::string& url() const { return url_; }  // every role on one listener, no trailing '/'
  const std::string& tenant_id() const { return tenant_; }
  const std::string& subscription_id() const { return subscription_; }

  // Back to the start-up state (identities, SPs, VMs, faults and counters cleared).
  void reset();
  // A JSON admin call; throws when the emulator answers with an error status.
  boost::json::value admin(boost::beast::http::verb method, const std::string& path,
                           const boost::json::value& body = nullptr);
  boost::json::value post(const std::string& path, const boost::json::value& body) {
    return admin(boost::beast::http::verb::post, path, body);
  }
  // Count of calls for an endpoint class ("imds-token", "aad-token", "arm-get", "arm-patch",
  // "arm-poll"), optionally for one status.
  long count(const std::string& endpoint_class, const std::string& status = "total");

  // Runs a coroutine to completion on this fixture's io_context.
  template <typename T>
  T run(boost::asio::awaitable<T> aw);
  boost::asio::io_context& io() { return io_; }
  http::Client& client() { return client_; }

 private:
  boost::asio::io_context io_;
  http::Client client_;
  pid_t pid_ = -1;
  pid_t owner_ = -1;
  std::string url_, tenant_, subscription_, log_path_;
};

}  // namespace aad::test

#include "support/async.hpp"

template <typename T>
T aad::test::AzureEmulator::run(boost::asio::awaitable<T> aw) {
  return aad::test::run_async(io_, std::move(aw), std::chrono::seconds(120));
}
