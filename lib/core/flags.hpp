#pragma once
// Command-line flags with Go `flag`/pflag conventions, as the original's users write them:
// `-name` or `--name`, `--name=value` or `--name value`, bool flags as `--name` or
// `--name=true|false`. Flags may fall back to an environment variable.
// Every problem is a FlagError naming the flag; nothing is silently ignored.
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/duration.hpp"

namespace aad {

class FlagError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown by parse() when -h/--help/-help is given.
struct HelpRequested {};

class FlagSet {
 public:
  explicit FlagSet(std::string name) : name_(std::move(name)) {}

  void add_string(std::string name, std::string* dst, std::string def, std::string help,
                  std::string env = {});
  void add_bool(std::string name, bool* dst, bool def, std::string help, std::string env = {});
  void add_int(std::string name, std::int64_t* dst, std::int64_t def, std::string help,
               std::int64_t min = INT64_MIN, std::int64_t max = INT64_MAX, std::string env = {});
  void add_duration(std::string name, Duration* dst, Duration def, std::string help,
                    Duration min = Duration::min(), std::string env = {});
  void add_double(std::string name, double* dst, double def, std::string help, double min,
                  double max);
  // An IP address (IPv4 or IPv6).
  void add_ip(std::string name, std::string* dst, std::string def, std::string help, std::string env = {});
  // An http:// or https:// URL with a host; empty allowed when `allow_empty`.
  void add_url(std::string name, std::string* dst, std::string def, std::string help, std::string env = {},
               bool allow_empty = true);
  // One of a fixed set of values (compared after lower-casing when `lower` is set).
  void add_choice(std::string name, std::string* dst, std::string def,
                  std::vector<std::string> choices, std::string help, bool lower = false);
  // Accepted for compatibility with the original; setting it has no effect (reported by noops_set()).
  void add_noop(std::string name, bool is_bool, std::string help);

  // Applies defaults and environment fallbacks, then the arguments. Throws FlagError or
  // HelpRequested. Positional arguments are an error.
  void parse(std::span<const std::string> args);

  bool was_set(std::string_view name) const;
  std::vector<std::string> noops_set() const;
  std::string usage() const;

 private:
  struct Flag {
    std::string name, help, env, default_text;
    bool is_bool = false, noop = false, set = false;
    std::function<void(std::string_view)> apply;  // throws FlagError-less std::invalid_argument
    std::function<void()> reset;
  };
  Flag& add(std::string name, std::string help, std::string env, bool is_bool);
  void assign(Flag& f, std::string_view value, std::string_view source);

  std::string name_;
  std::map<std::string, Flag, std::less<>> flags_;
};

// Go's strconv.Quote, enough for error messages: quotes, escapes control bytes (one line, no
// terminal escapes), keeps UTF-8 as is.
std::string quote(std::string_view s, bool with_quotes = true);

// Go's strconv.ParseBool.
bool parse_go_bool(std::string_view s, bool& out);

}  // namespace aad
