#include "identity/mic/assignment_writer.hpp"

#include <boost/json/serialize.hpp>
#include <chrono>

#include "identity/mic/desired_state.hpp"
#include "kube/typed.hpp"

namespace aad::identity::mic {
namespace {

using AAI = kube::AzureAssignedIdentity;
namespace json = boost::json;

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

boost::asio::awaitable<kube::Result<AAI>> AssignmentWriter::create(const AAI& aai) {
  auto start = std::chrono::steady_clock::now();
  AAI obj = aai;
  obj.status = kube::kAssignedIDCreated;
  obj.available_replicas = 1;
  auto r = co_await kube::create(client_, obj);
  if (r) {
    metrics_.addition_duration.get().observe(since(start));
    metrics_.addition_count.get().inc();
  } else {
    metrics_.kube_error("assigned_identity_addition");
  }
  co_return r;
}

boost::asio::awaitable<kube::Result<AAI>> AssignmentWriter::update(const AAI& aai) {
  auto start = std::chrono::steady_clock::now();
  AAI obj = aai;
  obj.status = kube::kAssignedIDCreated;
  obj.available_replicas = 1;
  auto r = co_await kube::update(client_, obj);
  if (r) {
    metrics_.update_duration.get().observe(since(start));
    metrics_.update_count.get().inc();
  } else {
    metrics_.kube_error("assigned_identity_update");
  }
  co_return r;
}

boost::asio::awaitable<kube::Result<AAI>> AssignmentWriter::set_status(const AAI& aai, const std::string& status,
                                                                       std::optional<bool> found_on_vm) {
  json::object body{{"status", json::object{{"status", status}, {"availableReplicas", 1}}}};
  const std::string key(kFoundOnVmAnnotation);
  if (found_on_vm && *found_on_vm)
    body["metadata"] = json::object{{"annotations", json::object{{key, "true"}}}};
  else if (found_on_vm && aai.meta.annotations.count(key))
    body["metadata"] = json::object{{"annotations", json::object{{key, nullptr}}}};  // merge patch: null deletes
  std::string text = json::serialize(body);
  std::string ns = aai.meta.ns, name = aai.meta.name;
  auto r = co_await kube::patch<AAI>(client_, ns, name, kube::PatchType::merge, text);
  if (!r) metrics_.kube_error("update_azure_assigned_identity_status");
  co_return r;
}

boost::asio::awaitable<kube::Result<AAI>> AssignmentWriter::clear_found_on_vm(const AAI& aai) {
  json::object body{{"metadata", json::object{{"annotations", json::object{{std::string(kFoundOnVmAnnotation), nullptr}}}}}};
  std::string text = json::serialize(body);
  std::string ns = aai.meta.ns, name = aai.meta.name;
  auto r = co_await kube::patch<AAI>(client_, ns, name, kube::PatchType::merge, text);
  if (!r) metrics_.kube_error("assigned_identity_update");
  co_return r;
}

boost::asio::awaitable<kube::Result<void>> AssignmentWriter::remove(const AAI& aai) {
  auto start = std::chrono::steady_clock::now();
  auto r = co_await kube::remove(client_, aai);
  if (!r && !r.error().not_found()) {
    metrics_.kube_error("assigned_identity_deletion");
    co_return r;
  }
  std::string ns = aai.meta.ns, name = aai.meta.name;
  std::string body = R"({"metadata":{"finalizers":null}})";
  auto f = co_await kube::patch<AAI>(client_, ns, name, kube::PatchType::merge, body);
  if (!f && !f.error().not_found()) {
    metrics_.kube_error("assigned_identity_deletion");
    co_return f.error();
  }
  metrics_.deletion_duration.get().observe(since(start));
  metrics_.deletion_count.get().inc();
  co_return kube::Result<void>{};
}

}  // namespace aad::identity::mic
