#include "identity/mic/plan.hpp"

#include <algorithm>
#include <map>

#include "core/ascii.hpp"
#include "identity/mic/desired_state.hpp"

namespace aad::identity::mic {
namespace {

bool assigned_state(const kube::AzureAssignedIdentity& a) {
  return a.status == kube::kAssignedIDAssigned || a.status.empty();  // "" = legacy, as the original
}

std::vector<std::string> sorted_unique(std::set<std::string> s) { return {s.begin(), s.end()}; }

}  // namespace

bool marked_found_on_vm(const kube::AzureAssignedIdentity& aai) {
  auto it = aai.meta.annotations.find(std::string(kFoundOnVmAnnotation));
  return it != aai.meta.annotations.end() && it->second == "true";
}

bool identity_found_on_vm(const std::string& resource_id, const std::set<std::string>& before,
                          const std::vector<kube::AzureAssignedIdentity>& others, const std::string& self_key) {
  if (resource_id.empty() || !before.count(resource_id)) return false;
  for (const auto& o : others) {
    if (o.key() == self_key || o.meta.deletion_timestamp) continue;
    if (o.status == kube::kAssignedIDAssigned && assigned_resource_id(o) == resource_id && !marked_found_on_vm(o))
      return false;  // MIC put it there for another pod
  }
  return true;
}

Plan plan_assignments(const PlanInputs& in) {
  Plan plan;
  std::map<std::string, const kube::AzureAssignedIdentity*> current, desired;
  for (const auto& c : in.current) current[c.key()] = &c;
  for (const auto& d : in.desired) desired[d.key()] = &d;

  std::set<std::string> add, needed;
  for (const auto& [key, d] : desired)
    if (auto id = assigned_resource_id(*d); !id.empty()) needed.insert(id);

  std::vector<const kube::AzureAssignedIdentity*> unassign;  // AAIs whose identity may go
  for (const auto& [key, d] : desired) {
    auto it = current.find(key);
    if (it == current.end()) {
      plan.create.push_back(*d);
      continue;
    }
    const auto& c = *it->second;
    if (c.meta.deletion_timestamp) {
      plan.requeue = true;  // recreated once the old one is gone
      continue;
    }
    if (!same_assignment(c, *d)) {
      AssignmentUpdate u{c, *d};
      u.after.meta = c.meta;
      u.after.meta.labels = d->meta.labels;
      u.after.meta.annotations.erase(std::string(kFoundOnVmAnnotation));
      if (std::find(u.after.meta.finalizers.begin(), u.after.meta.finalizers.end(), kAssignedFinalizer) ==
          u.after.meta.finalizers.end())
        u.after.meta.finalizers.push_back(std::string(kAssignedFinalizer));
      u.after.raw = c.raw;
      if (assigned_state(c)) unassign.push_back(it->second);
      plan.update.push_back(std::move(u));
    } else if (!assigned_state(c)) {
      plan.retry.push_back(c);  // Created (failed before) or Unassigned (interrupted removal)
    } else if (in.verify_assigned && !assigned_resource_id(c).empty()) {
      plan.verify.push_back(c);
    }
  }
  for (const auto& [key, c] : current) {
    if (desired.count(key) && !c->meta.deletion_timestamp) continue;
    plan.remove.push_back(*c);
    if (assigned_state(*c)) unassign.push_back(c);
  }

  for (const auto& a : plan.create) add.insert(assigned_resource_id(a));
  for (const auto& a : plan.retry) add.insert(assigned_resource_id(a));
  for (const auto& u : plan.update) add.insert(assigned_resource_id(u.after));
  for (const auto& a : plan.verify) add.insert(assigned_resource_id(a));
  add.erase(std::string());

  std::set<std::string> found_on_vm;
  for (const auto& c : in.current)
    if (marked_found_on_vm(c)) found_on_vm.insert(assigned_resource_id(c));
  std::set<std::string> remove;
  for (const auto* a : unassign) {
    auto id = assigned_resource_id(*a);
    if (id.empty() || needed.count(id) || found_on_vm.count(id)) continue;
    if (in.immutable_client_ids.count(to_lower(a->azure_identity_ref->client_id))) continue;
    remove.insert(id);
  }
  plan.add_ids = sorted_unique(std::move(add));
  plan.remove_ids = sorted_unique(std::move(remove));
  return plan;
}

}  // namespace aad::identity::mic
