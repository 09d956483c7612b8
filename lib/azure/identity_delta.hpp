#pragma once
// The identity delta of the original's UpdateUserMSI (section 2.7), as a pure function: which
// user-assigned identities a PATCH must add ({}) or remove (null), the resulting identity type,
// and the split into PATCHes of at most 150 entries. Resource ids compare case-insensitively and
// are sent lower-cased; identities nobody asked about are never mentioned.
#include <cstddef>
#include <string>
#include <vector>

namespace aad::azure {

// The identity block of a VM / VMSS as read by GET.
struct CurrentIdentity {
  std::string type;                           // "", None, SystemAssigned, UserAssigned, "SystemAssigned, UserAssigned"
  std::vector<std::string> user_assigned;     // resource ids as ARM returned them
};

struct IdentityDelta {
  std::string type;                 // identity type after the change
  std::vector<std::string> add;     // lower-cased ids to add, sorted
  std::vector<std::string> remove;  // lower-cased ids to remove, sorted
  bool none_left = false;           // no user-assigned identity remains: map omitted, type None/SystemAssigned
  bool empty() const { return add.empty() && remove.empty(); }
};

// `add` wins over `remove` for an id in both. Adds of present ids and removes of absent ids drop out.
IdentityDelta compute_identity_delta(const CurrentIdentity& current, const std::vector<std::string>& add,
                                     const std::vector<std::string>& remove);

// One PATCH body's identity block.
struct IdentityPatch {
  std::string type;
  std::vector<std::pair<std::string, bool>> entries;  // id -> true: {} (add), false: null (remove)
  bool omit_map = false;                              // {"identity":{"type":...}} only
  std::string to_json() const;                        // {"identity":{...}}
  std::vector<std::string> ids() const;
};

// Adds first, then removes, at most `max_entries` per PATCH (so no intermediate state is left
// without the identities that must remain). Empty delta -> no PATCH at all. When nothing remains
// one PATCH without a map (type None / SystemAssigned) removes everything.
std::vector<IdentityPatch> make_patches(const IdentityDelta& delta, std::size_t max_entries = 150);

// Normalised identity type helpers ("SystemAssigned,UserAssigned" with or without the space).
bool has_system_assigned(std::string_view type);

}  // namespace aad::azure
