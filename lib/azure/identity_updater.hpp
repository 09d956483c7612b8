#pragma once
// UpdateUserMSI done right: GET the VM / VMSS, compute the delta, PATCH it in chunks of at most
// 150 entries (none when nothing changes, none for a Deleting resource), and on
// LinkedAuthorizationFailed / FailedIdentityOperation drop the identities the error names and
// retry the rest. The result says exactly which identities succeeded and which failed, and why.
#include <boost/asio/awaitable.hpp>
#include <string>
#include <utility>
#include <vector>

#include "azure/arm_client.hpp"

namespace aad::azure {

struct UpdateOptions {
  std::size_t max_entries_per_patch = 150;
  int max_retries = 5;          // PATCH retries after dropping identities named in an error
  Millis retry_interval{1000};  // pause before such a retry (on the injected clock)
};

struct UpdateResult {
  // Lower-cased resource ids now in the requested state (already there or changed by a PATCH).
  std::vector<std::string> added, removed;
  // Lower-cased resource id -> why it was not changed.
  std::vector<std::pair<std::string, Error>> failed;
  unsigned patches = 0;  // PATCH calls sent (including failed ones)
  bool ok() const { return failed.empty(); }
  const Error* error_for(std::string_view id) const;
};

// Resource ids quoted in an ARM error message (single-quoted, comma-separated lists containing
// /subscriptions/.../providers/Microsoft.ManagedIdentity/userAssignedIdentities/...), lower-cased.
std::vector<std::string> identities_in_error(std::string_view message);

boost::asio::awaitable<UpdateResult> update_user_identities(ComputeClient& arm, Clock& clock,
                                                            const ComputeRef& ref,
                                                            const std::vector<std::string>& add,
                                                            const std::vector<std::string>& remove,
                                                            const UpdateOptions& options,
                                                            const Cancellation& cancel = Cancellation::none());

}  // namespace aad::azure
