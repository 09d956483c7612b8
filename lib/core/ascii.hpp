#pragma once
// ASCII case folding for identifiers (client IDs, ARM resource IDs, header and flag names).
// Locale-independent on purpose: std::tolower follows the C locale, and these values are ASCII.

#include <string>
#include <string_view>

namespace aad {

constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string to_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);

}  // namespace aad
