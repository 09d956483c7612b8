#pragma once
// What one VM or VMSS needs (pure): compares the desired AAIs of the pods on its nodes with the
// AAIs that exist there, and derives the AAI writes and the ARM identity changes. Removal is
// conservative: only identities MIC assigned for pods (status Assigned), of type 0, that no
// desired AAI on this VM/VMSS still needs, that are not immutable and that were not found on the
// VM/VMSS before MIC assigned them.
#include <set>
#include <string>
#include <vector>

#include "kube/models.hpp"

namespace aad::identity::mic {

struct PlanInputs {
  std::vector<kube::AzureAssignedIdentity> desired;  // for the pods on this VM/VMSS
  std::vector<kube::AzureAssignedIdentity> current;  // existing AAIs whose node maps here
  std::set<std::string> immutable_client_ids;        // lower-cased (flag + cluster identity)
  bool verify_assigned = false;                      // drift check: ask ARM for Assigned ones too
};

struct AssignmentUpdate {
  kube::AzureAssignedIdentity before;  // as stored
  kube::AzureAssignedIdentity after;   // desired content on the stored object's metadata
};

struct Plan {
  std::vector<kube::AzureAssignedIdentity> create;  // new AAIs (POST, status Created)
  std::vector<kube::AzureAssignedIdentity> retry;   // existing AAIs not Assigned yet
  std::vector<AssignmentUpdate> update;             // PUT, status Created
  std::vector<kube::AzureAssignedIdentity> remove;  // to delete (after any ARM removal)
  std::vector<kube::AzureAssignedIdentity> verify;  // Assigned, kept, re-checked on ARM
  std::vector<std::string> add_ids, remove_ids;     // lower-cased resource ids, sorted, unique
  bool requeue = false;  // something waits for a terminating AAI to go away
  bool writes_nothing() const { return create.empty() && retry.empty() && update.empty() && remove.empty(); }
};

Plan plan_assignments(const PlanInputs& in);

// Whether an AAI being assigned now should carry kFoundOnVmAnnotation: its identity was on the
// VM/VMSS before MIC touched it (`before`, lower-cased ids) and no other AAI there (except
// `self_name` and the ones being removed) holds it as an identity MIC assigned.
bool identity_found_on_vm(const std::string& resource_id, const std::set<std::string>& before,
                          const std::vector<kube::AzureAssignedIdentity>& others, const std::string& self_key);

bool marked_found_on_vm(const kube::AzureAssignedIdentity& aai);

}  // namespace aad::identity::mic
