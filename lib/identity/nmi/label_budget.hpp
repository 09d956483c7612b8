#pragma once
// Bounds a metric label whose values come from requests (the token `resource`): each distinct
// value is a new series in every scrape for the life of the process, so a caller inventing
// values could grow NMI's memory and /metrics without limit.
#include <cstddef>
#include <set>
#include <string>
#include <string_view>

namespace aad::identity::nmi {

class LabelBudget {
 public:
  static constexpr std::string_view kOther = "other";

  explicit LabelBudget(std::size_t limit = 50, std::size_t max_length = 256)
      : limit_(limit), max_length_(max_length) {}

  // The value itself while it is one of the first `limit` distinct ones; "other" after that, or
  // when it is longer than `max_length` or holds a byte outside printable ASCII. "" stays "".
  std::string admit(std::string_view value);

  std::size_t size() const { return seen_.size(); }

 private:
  std::size_t limit_, max_length_;
  std::set<std::string, std::less<>> seen_;
};

}  // namespace aad::identity::nmi
