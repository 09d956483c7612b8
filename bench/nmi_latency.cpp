// NMI hot-path latency: token requests answered from the token cache, (a) through the handler
// alone and (b) over HTTP/1.1 keep-alive on loopback through the real server. Prints figures;
// not a test. The node state is in memory (tests/nmi/nmi_fakes.hpp) with `--pods` pods and one
// identity each, so the caller and identity lookups work on realistic sizes.
//   ninja -C build bench/nmi-latency && build/bench/nmi-latency [requests=10000] [pods=500]
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <chrono>
#include <cstdio>
#include <fmt/format.h>
#include <vector>

#include "core/http_client.hpp"
#include "core/http_server.hpp"
#include "core/log.hpp"
#include "nmi/nmi_harness.hpp"

using namespace aad;
using namespace aad::test;
using namespace std::chrono;

namespace {

void report(const char* what, std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[std::min(us.size() - 1, static_cast<std::size_t>(q * us.size()))]; };
  double sum = 0;
  for (double v : us) sum += v;
  fmt::print("{:<34} n={} p50={:.1f}us p90={:.1f}us p99={:.1f}us max={:.1f}us mean={:.1f}us\n", what, us.size(),
             at(0.50), at(0.90), at(0.99), us.back(), sum / us.size());
}

const std::string kTarget = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net";

boost::asio::awaitable<void> over_http(http::Client& client, unsigned short port, int n, std::vector<double>& out) {
  http::ClientRequest req;
  req.url = fmt::format("http://127.0.0.1:{}{}", port, kTarget);
  req.headers = {{"Metadata", "true"}};
  for (int i = 0; i < n; ++i) {
    auto start = steady_clock::now();
    auto r = co_await client.send(req);
    out.push_back(duration<double, std::micro>(steady_clock::now() - start).count());
    if (!r || r->status != 200) throw std::runtime_error("request failed");
  }
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 10000;
  int pods = argc > 2 ? std::atoi(argv[2]) : 500;
  aad::log::configure({.format = aad::log::Format::text, .verbosity = 0, .sink = [](std::string_view) {}});
  NmiHarness t;
  for (int i = 0; i < pods; ++i) {
    auto ip = fmt::format("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256 + 1);
    auto pod = make_pod("ns" + std::to_string(i % 20), "pod-" + std::to_string(i), ip, "sel-" + std::to_string(i));
    t.state.add(pod);
    t.bind(pod, "id-" + std::to_string(i), fmt::format("client-{}", i));
  }
  auto caller = make_pod("bench", "caller", "127.0.0.1", "sel-caller");
  t.state.add(caller);
  t.bind(caller, "id-caller", "client-caller");

  // (a) handler only.
  std::vector<double> handler_us;
  handler_us.reserve(n);
  auto ip = fmt::format("10.0.{}.{}", (pods / 2) / 256, (pods / 2) % 256 + 1);
  t.call(kTarget, ip);  // fills the token cache
  for (int i = 0; i < n; ++i) {
    auto c = NmiHarness::make_call(kTarget, ip, {{"Metadata", "true"}});
    auto start = steady_clock::now();
    t.start(*c);
    t.io.restart();
    while (!c->done) t.io.run_one();
    handler_us.push_back(duration<double, std::micro>(steady_clock::now() - start).count());
    if (!c->res || c->res->result_int() != 200) throw std::runtime_error("handler request failed");
  }

  // (b) the real HTTP server and a keep-alive client on loopback.
  http::ServerOptions so;
  so.name = "nmi-bench";
  so.port = 0;
  http::Server server(t.io.get_executor(), so, t.h().as_http_handler());
  server.start();
  http::ClientOptions client_options;
  http::Client client(t.io.get_executor(), client_options);
  std::vector<double> http_us;
  http_us.reserve(n + 100);
  std::vector<double> warm;
  run_async(t.io, over_http(client, server.local_endpoint().port(), 100, warm), seconds(60));
  run_async(t.io, over_http(client, server.local_endpoint().port(), n, http_us), seconds(600));
  run_async(t.io, server.shutdown(milliseconds(100)));

  fmt::print("NMI token requests from cache ({} pods, {} identities, 1 fetch upstream per identity)\n", pods + 1, pods + 1);
  report("handler (no sockets)", handler_us);
  report("HTTP/1.1 keep-alive, loopback", http_us);
  fmt::print("token cache: hits={} misses={} upstream fetches={}\n", t.token_service().stats().hits,
             t.token_service().stats().misses, t.fetcher.calls.size());
  return 0;
}
