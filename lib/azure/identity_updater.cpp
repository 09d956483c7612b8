#include "azure/identity_updater.hpp"

#include <algorithm>
#include <regex>
#include <set>

#include "azure/transport.hpp"

namespace aad::azure {

const Error* UpdateResult::error_for(std::string_view id) const {
  auto l = to_lower(id);
  for (const auto& [k, e] : failed)
    if (k == l) return &e;
  return nullptr;
}

std::vector<std::string> identities_in_error(std::string_view message) {
  static const std::regex re(
      "/subscriptions/[A-Za-z0-9_.()-]+/resourcegroups/[A-Za-z0-9_.()-]+/providers/"
      "microsoft\\.managedidentity/userassignedidentities/[A-Za-z0-9_.-]+",
      std::regex::icase);
  std::vector<std::string> out;
  std::string text(message);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
    auto id = to_lower(it->str());
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  }
  return out;
}

namespace {

bool names_identities(const Error& e) {
  auto has = [&](std::string_view marker) {
    return e.code.find(marker) != std::string::npos || e.message.find(marker) != std::string::npos;
  };
  return has("LinkedAuthorizationFailed") || has("FailedIdentityOperation");
}

}  // namespace

boost::asio::awaitable<UpdateResult> update_user_identities(ComputeClient& arm, Clock& clock, const ComputeRef& ref,
                                                            const std::vector<std::string>& add,
                                                            const std::vector<std::string>& remove,
                                                            const UpdateOptions& options, const Cancellation& cancel) {
  UpdateResult result;
  std::set<std::string> pending_add, pending_remove;
  for (const auto& id : add) pending_add.insert(to_lower(id));
  for (const auto& id : remove) {
    auto l = to_lower(id);
    if (!pending_add.count(l)) pending_remove.insert(l);  // add wins
  }
  auto fail_all = [&](const Error& e) {
    for (const auto& id : pending_add) result.failed.emplace_back(id, e);
    for (const auto& id : pending_remove) result.failed.emplace_back(id, e);
    pending_add.clear();
    pending_remove.clear();
  };
  if (pending_add.empty() && pending_remove.empty()) co_return result;  // no GET, no PATCH

  auto resource = co_await arm.get(ref, cancel);
  if (!resource) {
    fail_all(resource.error());
    co_return result;
  }
  if (iequals(resource->provisioning_state, "Deleting")) {
    fail_all(local_error(Error::Kind::deleting, "ResourceDeleting",
                         ref.name + " is being deleted (provisioningState Deleting): not patched"));
    co_return result;
  }
  CurrentIdentity current = resource->current_identity();
  int retries = 0;
  for (;;) {
    std::vector<std::string> adds(pending_add.begin(), pending_add.end());
    std::vector<std::string> removes(pending_remove.begin(), pending_remove.end());
    IdentityDelta delta = compute_identity_delta(current, adds, removes);
    // Whatever the delta leaves out is already in the requested state.
    for (const auto& id : adds)
      if (!std::binary_search(delta.add.begin(), delta.add.end(), id)) {
        result.added.push_back(id);
        pending_add.erase(id);
      }
    for (const auto& id : removes)
      if (!std::binary_search(delta.remove.begin(), delta.remove.end(), id)) {
        result.removed.push_back(id);
        pending_remove.erase(id);
      }
    auto patches = make_patches(delta, options.max_entries_per_patch);
    if (patches.empty()) break;
    const IdentityPatch& patch = patches.front();
    ++result.patches;
    auto r = co_await arm.patch_identity(ref, patch, cancel);
    if (r) {
      // Apply the chunk to our model of the resource; the next loop recomputes the rest.
      for (const auto& [id, is_add] : patch.entries) {
        if (is_add) current.user_assigned.push_back(id);
        else std::erase_if(current.user_assigned, [&](const std::string& x) { return iequals(x, id); });
      }
      if (patch.omit_map) current.user_assigned.clear();
      current.type = patch.type;
      continue;
    }
    const Error& err = r.error();
    if (names_identities(err) && retries < options.max_retries) {
      auto named = identities_in_error(err.message);
      std::vector<std::string> dropped;
      for (const auto& id : patch.ids())
        if (std::find(named.begin(), named.end(), id) != named.end()) dropped.push_back(id);
      if (!dropped.empty()) {
        for (const auto& id : dropped) {
          result.failed.emplace_back(id, err);
          pending_add.erase(id);
          pending_remove.erase(id);
        }
        if (pending_add.empty() && pending_remove.empty()) break;
        ++retries;
        if (!co_await clock.sleep(options.retry_interval, cancel)) {
          fail_all(local_error(Error::Kind::cancelled, "Cancelled", "request cancelled"));
          break;
        }
        continue;
      }
    }
    fail_all(err);
    break;
  }
  co_return result;
}

}  // namespace aad::azure
