#pragma once
// Kubernetes node -> ARM compute resource. providerID forms (case-insensitive):
//   azure:///subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/NAME
//   azure:///subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachineScaleSets/NAME/virtualMachines/INDEX
// Subscription and resource group come from the providerID when present; without a usable
// providerID the original's rule applies: configured subscription and group, node name = VM name.
#include <optional>
#include <string>
#include <string_view>

namespace aad::azure {

struct ComputeRef {
  enum class Kind { vm, vmss };
  Kind kind = Kind::vm;
  std::string subscription_id;
  std::string resource_group;
  std::string name;         // VM name, or scale-set name
  std::string instance_id;  // VMSS instance (informational; the scale-set model is patched)

  // /subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/NAME (or
  // virtualMachineScaleSets/NAME), path segments URL-encoded.
  std::string arm_path() const;
  // Lower-cased arm_path(): equal for every node of one scale set (work-item key).
  std::string key() const;
  bool operator==(const ComputeRef&) const = default;
};

std::optional<ComputeRef> parse_provider_id(std::string_view provider_id);

ComputeRef resolve_node(std::string_view provider_id, std::string_view node_name,
                        std::string_view default_subscription, std::string_view default_resource_group);

}  // namespace aad::azure
