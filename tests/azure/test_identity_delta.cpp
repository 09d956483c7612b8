#include "catch_azure.hpp"

#include <boost/json/parse.hpp>

#include "azure/identity_delta.hpp"
#include "azure/identity_updater.hpp"
#include "azure/provider_id.hpp"

using namespace aad::azure;

namespace {

std::string uami(const std::string& name, const std::string& rg = "ids") {
  return "/subscriptions/sub/resourceGroups/" + rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" +
         name;
}
std::string low(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
using V = std::vector<std::string>;

}  // namespace

TEST_CASE("delta table") {
  struct Row {
    const char* name;
    CurrentIdentity current;
    V add, remove;
    V want_add, want_remove;
    std::string want_type;
    bool none_left;
  };
  std::vector<Row> rows = {
      {"empty request", {"UserAssigned", {uami("a")}}, {}, {}, {}, {}, "UserAssigned", false},
      {"add to a VM without identity", {"", {}}, {uami("a")}, {}, {low(uami("a"))}, {}, "UserAssigned", false},
      {"add to None", {"None", {}}, {uami("a")}, {}, {low(uami("a"))}, {}, "UserAssigned", false},
      {"add keeps system-assigned", {"SystemAssigned", {}}, {uami("a")}, {}, {low(uami("a"))}, {},
       "SystemAssigned, UserAssigned", false},
      {"add already present (other case)", {"UserAssigned", {uami("A")}}, {low(uami("a"))}, {}, {}, {},
       "UserAssigned", false},
      {"remove one of two", {"UserAssigned", {uami("a"), uami("b")}}, {}, {uami("b")}, {}, {low(uami("b"))},
       "UserAssigned", false},
      {"remove absent is a no-op", {"UserAssigned", {uami("a")}}, {}, {uami("z")}, {}, {}, "UserAssigned", false},
      {"remove last -> None", {"UserAssigned", {uami("a")}}, {}, {uami("A")}, {}, {low(uami("a"))}, "None", true},
      {"remove last keeps system-assigned", {"SystemAssigned, UserAssigned", {uami("a")}}, {}, {uami("a")}, {},
       {low(uami("a"))}, "SystemAssigned", true},
      {"type without the space", {"SystemAssigned,UserAssigned", {uami("a")}}, {uami("b")}, {}, {low(uami("b"))}, {},
       "SystemAssigned, UserAssigned", false},
      {"add and remove in one", {"UserAssigned", {uami("a")}}, {uami("b")}, {uami("a")}, {low(uami("b"))},
       {low(uami("a"))}, "UserAssigned", false},
      {"same id in both: add wins", {"UserAssigned", {uami("a")}}, {uami("a")}, {uami("A")}, {}, {}, "UserAssigned",
       false},
      {"untouched identities never mentioned", {"UserAssigned", {uami("manual"), uami("a")}}, {}, {uami("a")}, {},
       {low(uami("a"))}, "UserAssigned", false},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    auto d = compute_identity_delta(row.current, row.add, row.remove);
    CHECK(d.add == row.want_add);
    CHECK(d.remove == row.want_remove);
    CHECK(d.type == row.want_type);
    CHECK(d.none_left == row.none_left);
    auto patches = make_patches(d);
    CHECK(patches.empty() == (row.want_add.empty() && row.want_remove.empty()));
  }
}

TEST_CASE("patch bodies: {} adds, null removes, lower-cased ids, no map when nothing remains") {
  auto d = compute_identity_delta({"SystemAssigned, UserAssigned", {uami("Keep"), uami("Old")}}, {uami("New")},
                                  {uami("Old")});
  auto patches = make_patches(d);
  REQUIRE(patches.size() == 1);
  auto body = boost::json::parse(patches[0].to_json()).as_object();
  const auto& identity = body.at("identity").as_object();
  CHECK(identity.at("type").as_string() == "SystemAssigned, UserAssigned");
  const auto& map = identity.at("userAssignedIdentities").as_object();
  CHECK(map.size() == 2);
  CHECK(map.at(low(uami("new"))).is_object());
  CHECK(map.at(low(uami("new"))).as_object().empty());
  CHECK(map.at(low(uami("old"))).is_null());
  CHECK(map.find(low(uami("keep"))) == map.end());

  auto all_gone = make_patches(compute_identity_delta({"UserAssigned", {uami("a"), uami("b")}}, {}, {uami("a"), uami("b")}));
  REQUIRE(all_gone.size() == 1);
  CHECK(all_gone[0].to_json() == R"({"identity":{"type":"None"}})");
  CHECK(all_gone[0].ids().size() == 2);
}

TEST_CASE("over 150 entries: chunks of at most 150, adds first") {
  CurrentIdentity current{"UserAssigned", {}};
  for (int i = 0; i < 100; ++i) current.user_assigned.push_back(uami("old" + std::to_string(i)));
  V add, remove;
  for (int i = 0; i < 250; ++i) add.push_back(uami("new" + std::to_string(i)));
  for (int i = 0; i < 100; ++i) remove.push_back(uami("OLD" + std::to_string(i)));
  auto d = compute_identity_delta(current, add, remove);
  CHECK(d.add.size() == 250);
  CHECK(d.remove.size() == 100);
  auto patches = make_patches(d);
  REQUIRE(patches.size() == 3);
  CHECK(patches[0].entries.size() == 150);
  CHECK(patches[1].entries.size() == 150);
  CHECK(patches[2].entries.size() == 50);
  std::size_t adds_seen = 0;
  bool removes_started = false;
  for (const auto& p : patches) {
    CHECK(p.type == "UserAssigned");
    CHECK_FALSE(p.omit_map);
    for (const auto& [id, is_add] : p.entries) {
      if (is_add) {
        CHECK_FALSE(removes_started);
        ++adds_seen;
      } else {
        removes_started = true;
      }
    }
  }
  CHECK(adds_seen == 250);
  CHECK(make_patches(d, 1000).size() == 1);
}

TEST_CASE("identities named in ARM errors") {
  std::string linked =
      "The client 'c' with object id 'o' has permission to perform action 'Microsoft.Compute/virtualMachineScaleSets/"
      "write' on scope '/subscriptions/sub/resourceGroups/MC_rg/providers/Microsoft.Compute/virtualMachineScaleSets/"
      "vmss'; however, it does not have permission to perform action 'Microsoft.ManagedIdentity/"
      "userAssignedIdentities/assign/action' on the linked scope(s) '" +
      uami("Id-1") + "," + uami("id2", "Other_RG") + "' or the linked scope(s) are invalid.";
  CHECK(identities_in_error(linked) == V{low(uami("id-1")), low(uami("id2", "other_rg"))});
  std::string failed = "Identity operation for resource '/subscriptions/sub/resourceGroups/rg/providers/"
                       "Microsoft.Compute/virtualMachines/vm' failed with error 'Failed to perform resource identity "
                       "operation. Status: 'BadRequest'. Response: '{\"error\":{\"code\":\"BadRequest\",\"message\":"
                       "\"Resource '" + uami("missing") + "' was not found.\"}}'.'.";
  CHECK(identities_in_error(failed) == V{low(uami("missing"))});
  CHECK(identities_in_error("no ids here").empty());
}

TEST_CASE("providerID parsing") {
  auto vm = parse_provider_id(
      "azure:///subscriptions/S1/resourceGroups/RG1/providers/Microsoft.Compute/virtualMachines/node-0");
  REQUIRE(vm);
  CHECK(vm->kind == ComputeRef::Kind::vm);
  CHECK(vm->subscription_id == "S1");
  CHECK(vm->resource_group == "RG1");
  CHECK(vm->name == "node-0");
  CHECK(vm->arm_path() == "/subscriptions/S1/resourceGroups/RG1/providers/Microsoft.Compute/virtualMachines/node-0");

  auto ss = parse_provider_id(
      "AZURE:///subscriptions/S1/resourcegroups/mc_rg/providers/microsoft.compute/virtualmachinescalesets/"
      "aks-pool-vmss/virtualmachines/3");
  REQUIRE(ss);
  CHECK(ss->kind == ComputeRef::Kind::vmss);
  CHECK(ss->resource_group == "mc_rg");
  CHECK(ss->name == "aks-pool-vmss");
  CHECK(ss->instance_id == "3");
  CHECK(ss->arm_path() ==
        "/subscriptions/S1/resourceGroups/mc_rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-pool-vmss");
  auto other = *parse_provider_id(
      "azure:///subscriptions/S1/resourceGroups/MC_RG/providers/Microsoft.Compute/virtualMachineScaleSets/"
      "AKS-POOL-VMSS/virtualMachines/7");
  CHECK(other.key() == ss->key());  // nodes of one scale set share the work item

  for (const char* bad : {"", "aws:///i-123", "azure:///subscriptions/S1/resourceGroups/RG1",
                          "azure:///subscriptions/S1/resourceGroups/RG1/providers/Microsoft.Network/virtualMachines/x",
                          "azure:///subscriptions/S1/resourceGroups/RG1/providers/Microsoft.Compute/"
                          "virtualMachineScaleSets/x",
                          "azure:///subscriptions/S1/resourceGroups/RG1/providers/Microsoft.Compute/"
                          "virtualMachines/x/virtualMachines/1"}) {
    INFO(bad);
    CHECK_FALSE(parse_provider_id(bad));
  }
  auto fallback = resolve_node("", "aks-node-1", "conf-sub", "conf-rg");
  CHECK(fallback.kind == ComputeRef::Kind::vm);
  CHECK(fallback.name == "aks-node-1");
  CHECK(fallback.subscription_id == "conf-sub");
  CHECK(fallback.resource_group == "conf-rg");
  auto from_id = resolve_node(
      "azure:///subscriptions/S2/resourceGroups/RG2/providers/Microsoft.Compute/virtualMachines/vm-x", "node",
      "conf-sub", "conf-rg");
  CHECK(from_id.subscription_id == "S2");
  CHECK(from_id.resource_group == "RG2");
  CHECK(from_id.name == "vm-x");
}
