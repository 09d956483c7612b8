#include "azure/provider_id.hpp"

#include <vector>

#include "azure/transport.hpp"

namespace aad::azure {

namespace {

std::vector<std::string_view> split_path(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i <= s.size()) {
    auto j = s.find('/', i);
    if (j == std::string_view::npos) j = s.size();
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

}  // namespace

std::string ComputeRef::arm_path() const {
  return "/subscriptions/" + url_encode(subscription_id) + "/resourceGroups/" + url_encode(resource_group) +
         "/providers/Microsoft.Compute/" + (kind == Kind::vm ? "virtualMachines/" : "virtualMachineScaleSets/") +
         url_encode(name);
}

std::string ComputeRef::key() const { return to_lower(arm_path()); }

std::optional<ComputeRef> parse_provider_id(std::string_view id) {
  constexpr std::string_view scheme = "azure://";
  if (id.size() < scheme.size() || !iequals(id.substr(0, scheme.size()), scheme)) return std::nullopt;
  auto seg = split_path(id.substr(scheme.size()));
  // subscriptions S resourceGroups RG providers Microsoft.Compute <type> NAME [virtualMachines INDEX]
  if (seg.size() != 8 && seg.size() != 10) return std::nullopt;
  if (!iequals(seg[0], "subscriptions") || !iequals(seg[2], "resourceGroups") || !iequals(seg[4], "providers") ||
      !iequals(seg[5], "Microsoft.Compute"))
    return std::nullopt;
  ComputeRef ref;
  ref.subscription_id = std::string(seg[1]);
  ref.resource_group = std::string(seg[3]);
  ref.name = std::string(seg[7]);
  if (seg.size() == 8 && iequals(seg[6], "virtualMachines")) {
    ref.kind = ComputeRef::Kind::vm;
  } else if (seg.size() == 10 && iequals(seg[6], "virtualMachineScaleSets") && iequals(seg[8], "virtualMachines")) {
    ref.kind = ComputeRef::Kind::vmss;
    ref.instance_id = std::string(seg[9]);
  } else {
    return std::nullopt;
  }
  return ref;
}

ComputeRef resolve_node(std::string_view provider_id, std::string_view node_name,
                        std::string_view default_subscription, std::string_view default_resource_group) {
  if (auto ref = parse_provider_id(provider_id)) return *ref;
  ComputeRef ref;
  ref.kind = ComputeRef::Kind::vm;
  ref.subscription_id = std::string(default_subscription);
  ref.resource_group = std::string(default_resource_group);
  ref.name = std::string(node_name);
  return ref;
}

}  // namespace aad::azure
