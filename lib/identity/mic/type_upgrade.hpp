#pragma once
// The v1.6 type upgrade (original-behaviour.md section 1.9). MIC runs it once when it becomes
// leader, before its caches start: objects written before v1.6 may carry capitalised or
// lower-case keys (`ClientID`, `resourceid`, `Selector`, top-level `Status`, ...) that a
// case-sensitive reader does not see. Every AzureIdentity, AzureIdentityBinding,
// AzurePodIdentityException and AzureAssignedIdentity is read through the raw API and written
// back with the camelCase keys; completion is recorded in a ConfigMap so it runs only once.
//
// Compared with the original: only objects that need a change are written; an object that
// cannot be upgraded (wrong value types, refused by the apiserver) is logged and left as it
// is instead of failing the whole upgrade; unknown fields are kept. An AAI's embedded
// identity/binding copy is replaced by the freshly written object only when both describe the
// same identity/binding (same uid and fields), so a pending change is never hidden from MIC.
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <string>
#include <vector>

#include "kube/client.hpp"
#include "kube/error.hpp"

namespace aad::identity::mic {

struct TypeUpgradeOptions {
  bool enabled = true;                                   // --enable-type-upgrade
  std::string ns;                                        // MIC_POD_NAMESPACE (ConfigMap's namespace)
  std::string config_map_name = "aad-pod-identity-config";  // --config-map-name
  std::string status_key = "type-upgrade-status";        // --type-upgrade-status-key
  std::string version;                                   // value recorded; empty: our version
  int max_conflict_retries = 5;                          // per object, each with a fresh GET
};

struct TypeUpgradeCounts {
  int listed = 0;
  int rewritten = 0;  // PUT with camelCase keys
  int unchanged = 0;  // already camelCase
  int skipped = 0;    // malformed: logged, left untouched
  int gone = 0;       // deleted while we worked on it
};

struct TypeUpgradeReport {
  enum class Outcome { disabled, already_done, upgraded };
  Outcome outcome = Outcome::disabled;
  std::string recorded_version;  // already_done: the value found; upgraded: the value written
  TypeUpgradeCounts identities, bindings, exceptions, assigned;
  std::vector<std::string> skipped;  // "<Kind> <ns>/<name>: <reason>"
};

// An error (apiserver unreachable, forbidden, ConfigMap not writable, endless conflicts) means
// the upgrade is not recorded and must run again; the original exits MIC in that case.
using TypeUpgradeResult = kube::Result<TypeUpgradeReport>;

boost::asio::awaitable<TypeUpgradeResult> run_type_upgrade(kube::Client& client, TypeUpgradeOptions options);

// Pure key renaming, exposed for tests. Each returns true when it changed `o`.
namespace legacy_keys {
bool upgrade_identity(boost::json::object& o);
bool upgrade_binding(boost::json::object& o);
bool upgrade_exception(boost::json::object& o);
// The AAI itself and its embedded copies; refs_changed tells which copy was renamed.
struct AssignedChanges {
  bool any = false, identity_ref = false, binding_ref = false;
};
AssignedChanges upgrade_assigned(boost::json::object& o);
}  // namespace legacy_keys

}  // namespace aad::identity::mic
