#include "identity/nmi/label_budget.hpp"

#include <algorithm>

namespace aad::identity::nmi {

std::string LabelBudget::admit(std::string_view value) {
  if (value.empty()) return {};
  if (auto it = seen_.find(value); it != seen_.end()) return *it;
  bool printable = std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
  if (!printable || value.size() > max_length_ || seen_.size() >= limit_) return std::string(kOther);
  return *seen_.emplace(value).first;
}

}  // namespace aad::identity::nmi
