#pragma once
// Go-style durations ("1h2m3.5s", "300ms", "15s"), as the original's flags accept.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace aad {

using Duration = std::chrono::nanoseconds;

std::optional<Duration> parse_go_duration(std::string_view text);
std::string format_go_duration(Duration d);

}  // namespace aad
