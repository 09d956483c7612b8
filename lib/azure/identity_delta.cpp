#include "azure/identity_delta.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <algorithm>
#include <set>

#include "azure/transport.hpp"

namespace aad::azure {

namespace {

std::string squash(std::string_view type) {
  std::string out;
  for (char c : type)
    if (c != ' ') out += c;
  return to_lower(out);
}

}  // namespace

bool has_system_assigned(std::string_view type) {
  auto t = squash(type);
  return t == "systemassigned" || t == "systemassigned,userassigned";
}

IdentityDelta compute_identity_delta(const CurrentIdentity& current, const std::vector<std::string>& add,
                                     const std::vector<std::string>& remove) {
  std::set<std::string> existing;
  for (const auto& id : current.user_assigned) existing.insert(to_lower(id));
  std::set<std::string> adds, removes;
  for (const auto& id : add) adds.insert(to_lower(id));
  for (const auto& id : remove) {
    auto l = to_lower(id);
    if (!adds.count(l)) removes.insert(l);
  }
  IdentityDelta d;
  for (const auto& id : adds)
    if (!existing.count(id)) d.add.push_back(id);
  for (const auto& id : removes)
    if (existing.count(id)) d.remove.push_back(id);
  std::size_t remaining = existing.size() - d.remove.size() + d.add.size();
  bool system = has_system_assigned(current.type);
  d.none_left = remaining == 0;
  if (d.none_left) d.type = system ? "SystemAssigned" : "None";
  else d.type = system ? "SystemAssigned, UserAssigned" : "UserAssigned";
  return d;
}

std::vector<IdentityPatch> make_patches(const IdentityDelta& delta, std::size_t max_entries) {
  std::vector<IdentityPatch> out;
  if (delta.empty()) return out;
  if (max_entries == 0) max_entries = 150;
  if (delta.none_left) {
    IdentityPatch p;
    p.type = delta.type;
    p.omit_map = true;
    for (const auto& id : delta.remove) p.entries.emplace_back(id, false);
    out.push_back(std::move(p));
    return out;
  }
  std::vector<std::pair<std::string, bool>> all;
  for (const auto& id : delta.add) all.emplace_back(id, true);
  for (const auto& id : delta.remove) all.emplace_back(id, false);
  for (std::size_t i = 0; i < all.size(); i += max_entries) {
    IdentityPatch p;
    p.type = delta.type;
    p.entries.assign(all.begin() + static_cast<std::ptrdiff_t>(i),
                     all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), i + max_entries)));
    out.push_back(std::move(p));
  }
  return out;
}

std::string IdentityPatch::to_json() const {
  boost::json::object identity;
  identity["type"] = type;
  if (!omit_map) {
    boost::json::object map;
    for (const auto& [id, add] : entries) {
      if (add) map[id] = boost::json::object();
      else map[id] = nullptr;
    }
    identity["userAssignedIdentities"] = std::move(map);
  }
  boost::json::object body;
  body["identity"] = std::move(identity);
  return boost::json::serialize(body);
}

std::vector<std::string> IdentityPatch::ids() const {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.first);
  return out;
}

}  // namespace aad::azure
