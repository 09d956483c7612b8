#include "core/duration.hpp"

#include <cmath>
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <fmt/format.h>

namespace aad {
namespace {

struct Unit {
  std::string_view name;
  double nanos;
};
// Longest names first so "ms" wins over "m".
constexpr Unit kUnits[] = {{"ns", 1},       {"us", 1e3},      {"\xC2\xB5s", 1e3}, {"ms", 1e6},
                           {"s", 1e9},      {"m", 60e9},      {"h", 3600e9}};

}  // namespace

std::optional<Duration> parse_go_duration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  bool negative = false;
  if (s[0] == '-' || s[0] == '+') {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return Duration::zero();
  if (s.empty()) return std::nullopt;
  double total = 0;
  while (!s.empty()) {
    std::size_t i = 0;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == 0) return std::nullopt;
    std::string number(s.substr(0, i));
    if (number == "." || std::count(number.begin(), number.end(), '.') > 1) return std::nullopt;
    double value = std::stod(number);
    s.remove_prefix(i);
    const Unit* unit = nullptr;
    for (const auto& u : kUnits) {
      if (s.starts_with(u.name) && (!unit || u.name.size() > unit->name.size())) unit = &u;
    }
    if (!unit) return std::nullopt;  // Go requires a unit on every number except a lone 0
    s.remove_prefix(unit->name.size());
    total += value * unit->nanos;
  }
  if (total > 9.2e18) return std::nullopt;
  auto ns = static_cast<std::int64_t>(std::llround(total));
  return Duration(negative ? -ns : ns);
}

std::string format_go_duration(Duration d) {
  auto ns = d.count();
  if (ns == 0) return "0s";
  std::string sign = ns < 0 ? "-" : "";
  auto u = static_cast<std::uint64_t>(ns < 0 ? -ns : ns);
  if (u < 1000000000ULL) {
    if (u % 1000000 == 0) return fmt::format("{}{}ms", sign, u / 1000000);
    if (u % 1000 == 0) return fmt::format("{}{}us", sign, u / 1000);
    return fmt::format("{}{}ns", sign, u);
  }
  std::uint64_t h = u / 3600000000000ULL;
  u %= 3600000000000ULL;
  std::uint64_t m = u / 60000000000ULL;
  u %= 60000000000ULL;
  std::string secs = fmt::format("{}", static_cast<double>(u) / 1e9);
  std::string out = sign;
  if (h) out += fmt::format("{}h", h);
  if (h || m) out += fmt::format("{}m", m);
  out += secs + "s";
  return out;
}

}  // namespace aad
