#include "identity/mic/instrumented_compute.hpp"

#include <chrono>
#include <optional>

#include "core/ascii.hpp"

namespace aad::identity::mic {
namespace {

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// "ok", "throttled" (refused locally or 429), "client_error", "server_error", "transport", ...
std::string result_label(const azure::Error* e) {
  if (!e) return "ok";
  using K = azure::Error::Kind;
  if (e->kind == K::throttled || e->status == 429) return "throttled";
  if (e->kind == K::transport) return "transport_error";
  if (e->kind == K::cancelled) return "cancelled";
  if (e->kind == K::deleting) return "deleting";
  if (e->status >= 500) return "server_error";
  if (e->status >= 400) return "client_error";
  return "error";
}

}  // namespace

void InstrumentedCompute::record(const azure::ComputeRef& ref, const char* op, bool ok, double seconds,
                                 const azure::Error* e) {
  std::string type = std::string(ref.kind == azure::ComputeRef::Kind::vmss ? "vmss_" : "vm_") + op;
  if (ok) metrics_.cloud_duration.with({type}).observe(seconds);
  else metrics_.cloud_errors.with({type}).inc();
  metrics_.arm_calls.with({type, result_label(e)}).inc();
}

boost::asio::awaitable<azure::Result<azure::ComputeResource>> InstrumentedCompute::get(
    const azure::ComputeRef& ref, const azure::Cancellation& cancel) {
  auto start = std::chrono::steady_clock::now();
  auto r = co_await inner_.get(ref, cancel);
  std::optional<azure::Error> err;
  if (!r) err = r.error();
  record(ref, "get", r.has_value(), since(start), err ? &*err : nullptr);
  if (r) {
    std::set<std::string> ids;
    for (const auto& id : r->current_identity().user_assigned) ids.insert(to_lower(id));
    seen_[ref.key()] = std::move(ids);
  }
  co_return r;
}

boost::asio::awaitable<azure::Result<void>> InstrumentedCompute::patch_identity(const azure::ComputeRef& ref,
                                                                                const azure::IdentityPatch& patch,
                                                                                const azure::Cancellation& cancel) {
  auto start = std::chrono::steady_clock::now();
  auto r = co_await inner_.patch_identity(ref, patch, cancel);
  std::optional<azure::Error> err;
  if (!r) err = r.error();
  record(ref, "update", r.has_value(), since(start), err ? &*err : nullptr);
  co_return r;
}

std::set<std::string> InstrumentedCompute::last_seen(const azure::ComputeRef& ref) const {
  auto it = seen_.find(ref.key());
  return it == seen_.end() ? std::set<std::string>{} : it->second;
}

}  // namespace aad::identity::mic
