#pragma once
// Structured logging: klog-compatible text (default) or JSON lines, on stderr.
// Every value passes through redact::text, so a token that slips into a message is still masked.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <source_location>
#include <string>
#include <string_view>
#include <type_traits>

namespace aad::log {

enum class Format { text, json };
enum class Severity { info, warning, error };

// One key/value pair. Strings are quoted in text output; numbers and bools are not.
struct KV {
  std::string_view key;
  std::string value;
  bool quoted = true;

  KV(std::string_view k, std::string_view v) : key(k), value(v) {}
  KV(std::string_view k, const std::string& v) : key(k), value(v) {}
  KV(std::string_view k, const char* v) : key(k), value(v ? v : "") {}
  KV(std::string_view k, bool v) : key(k), value(v ? "true" : "false"), quoted(false) {}
  template <typename N>
    requires std::is_arithmetic_v<N>
  KV(std::string_view k, N v) : key(k), value(std::to_string(v)), quoted(false) {}
};

using Fields = std::initializer_list<KV>;

struct Config {
  Format format = Format::text;
  int verbosity = 0;
  // Where finished lines go (default: stderr). Tests capture output here.
  std::function<void(std::string_view line)> sink;
};

void configure(Config config);
Format parse_format(std::string_view name);  // throws std::invalid_argument
bool enabled(int v);

void write(Severity sev, int v, std::string_view msg, std::string_view err, Fields fields,
           const std::source_location& loc);

inline void info(std::string_view msg, Fields fields = {},
                 std::source_location loc = std::source_location::current()) {
  write(Severity::info, 0, msg, {}, fields, loc);
}
// Verbose info, emitted only when -v >= v.
inline void debug(int v, std::string_view msg, Fields fields = {},
                  std::source_location loc = std::source_location::current()) {
  if (enabled(v)) write(Severity::info, v, msg, {}, fields, loc);
}
inline void warning(std::string_view msg, Fields fields = {},
                    std::source_location loc = std::source_location::current()) {
  write(Severity::warning, 0, msg, {}, fields, loc);
}
inline void error(std::string_view msg, std::string_view err, Fields fields = {},
                  std::source_location loc = std::source_location::current()) {
  write(Severity::error, 0, msg, err, fields, loc);
}

// Formats one line without writing it (used by write and by tests).
std::string format_line(Format format, Severity sev, int v, std::string_view msg,
                        std::string_view err, Fields fields, const std::source_location& loc,
                        double unix_seconds, long pid);

}  // namespace aad::log
