#include "core/flags.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cstdint>

#include "core/ascii.hpp"

namespace aad {
namespace {

// Go's strconv.ParseInt(s, 0, 64): optional sign, then 0x/0o/0b or a leading 0 for octal.
std::int64_t parse_int(std::string_view s) {
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) base = 16, s.remove_prefix(2);
  else if (s.size() > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'O')) base = 8, s.remove_prefix(2);
  else if (s.size() > 2 && s[0] == '0' && (s[1] == 'b' || s[1] == 'B')) base = 2, s.remove_prefix(2);
  else if (s.size() > 1 && s[0] == '0') base = 8, s.remove_prefix(1);
  std::uint64_t magnitude = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), magnitude, base);
  if (ec == std::errc::result_out_of_range) throw std::invalid_argument("value out of range");
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) throw std::invalid_argument("not an integer");
  if (magnitude > static_cast<std::uint64_t>(INT64_MAX) + (negative ? 1 : 0))
    throw std::invalid_argument("value out of range");
  return negative ? static_cast<std::int64_t>(0 - magnitude) : static_cast<std::int64_t>(magnitude);
}

// Go's strconv.ParseFloat for plain decimal input (no surrounding spaces).
double parse_double(std::string_view s) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  double d = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) throw std::invalid_argument("not a number");
  return d;
}

}  // namespace

std::string quote(std::string_view s, bool with_quotes) {
  std::string out = with_quotes ? "\"" : "";
  for (unsigned char c : s) {
    if (c == '"' && with_quotes) out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  if (with_quotes) out += '"';
  return out;
}

bool parse_go_bool(std::string_view s, bool& out) {
  static constexpr std::string_view t[] = {"1", "t", "T", "true", "TRUE", "True"};
  static constexpr std::string_view f[] = {"0", "f", "F", "false", "FALSE", "False"};
  if (std::find(std::begin(t), std::end(t), s) != std::end(t)) return out = true, true;
  if (std::find(std::begin(f), std::end(f), s) != std::end(f)) return out = false, true;
  return false;
}

FlagSet::Flag& FlagSet::add(std::string name, std::string help, std::string env, bool is_bool) {
  Flag f;
  f.name = name;
  f.help = std::move(help);
  f.env = std::move(env);
  f.is_bool = is_bool;
  auto [it, inserted] = flags_.emplace(std::move(name), std::move(f));
  if (!inserted) throw std::logic_error("flag defined twice: " + it->first);
  return it->second;
}

void FlagSet::add_string(std::string name, std::string* dst, std::string def, std::string help,
                         std::string env) {
  auto& f = add(std::move(name), std::move(help), std::move(env), false);
  f.default_text = def.empty() ? "" : fmt::format("\"{}\"", def);
  f.apply = [dst](std::string_view v) { *dst = std::string(v); };
  f.reset = [dst, def] { *dst = def; };
}

void FlagSet::add_bool(std::string name, bool* dst, bool def, std::string help, std::string env) {
  auto& f = add(std::move(name), std::move(help), std::move(env), true);
  f.default_text = def ? "true" : "false";
  f.apply = [dst](std::string_view v) {
    if (!parse_go_bool(v, *dst)) throw std::invalid_argument("not a boolean (want true or false)");
  };
  f.reset = [dst, def] { *dst = def; };
}

void FlagSet::add_int(std::string name, std::int64_t* dst, std::int64_t def, std::string help,
                      std::int64_t min, std::int64_t max, std::string env) {
  auto& f = add(std::move(name), std::move(help), std::move(env), false);
  f.default_text = std::to_string(def);
  f.apply = [dst, min, max](std::string_view v) {
    auto n = parse_int(v);
    if (n < min) throw std::invalid_argument(fmt::format("must be at least {}", min));
    if (n > max) throw std::invalid_argument(fmt::format("must be at most {}", max));
    *dst = n;
  };
  f.reset = [dst, def] { *dst = def; };
}

void FlagSet::add_duration(std::string name, Duration* dst, Duration def, std::string help,
                           Duration min, std::string env) {
  auto& f = add(std::move(name), std::move(help), std::move(env), false);
  f.default_text = format_go_duration(def);
  f.apply = [dst, min](std::string_view v) {
    auto d = parse_go_duration(v);
    if (!d) throw std::invalid_argument("not a duration (e.g. 30s, 5m, 1h30m)");
    if (*d < min)
      throw std::invalid_argument(fmt::format("must be at least {}", format_go_duration(min)));
    *dst = *d;
  };
  f.reset = [dst, def] { *dst = def; };
}

void FlagSet::add_double(std::string name, double* dst, double def, std::string help, double min,
                         double max) {
  auto& f = add(std::move(name), std::move(help), {}, false);
  f.default_text = fmt::format("{}", def);
  f.apply = [dst, min, max](std::string_view v) {
    double d = parse_double(v);
    if (!(d >= min && d <= max))
      throw std::invalid_argument(fmt::format("must be between {} and {}", min, max));
    *dst = d;
  };
  f.reset = [dst, def] { *dst = def; };
}

void FlagSet::add_ip(std::string name, std::string* dst, std::string def, std::string help, std::string env) {
  auto& f = add(std::move(name), std::move(help), std::move(env), false);
  f.default_text = fmt::format("\"{}\"", def);
  f.apply = [dst](std::string_view v) {
    boost::system::error_code ec;
    boost::asio::ip::make_address(std::string(v), ec);
    if (ec) throw std::invalid_argument("not an IP address");
    *dst = std::string(v);
  };
  f.reset = [dst, def] { *dst = def; };
}

void FlagSet::add_url(std::string name, std::string* dst, std::string def, std::string help, std::string env,
                      bool allow_empty) {
  auto& f = add(std::move(name), std::move(help), std::move(env), false);
  f.default_text = def.empty() ? "" : fmt::format("\"{}\"", def);
  f.apply = [dst, allow_empty](std::string_view v) {
    if (v.empty() && allow_empty) {
      dst->clear();
      return;
    }
    auto url = boost::urls::parse_uri(v);
    if (!url || (url->scheme() != "http" && url->scheme() != "https") || url->host().empty())
      throw std::invalid_argument("not an http:// or https:// URL with a host");
    *dst = std::string(v);
  };
  f.reset = [dst, def] { *dst = def; };
}

void FlagSet::add_choice(std::string name, std::string* dst, std::string def,
                         std::vector<std::string> choices, std::string help, bool lower) {
  auto& f = add(std::move(name), std::move(help), {}, false);
  f.default_text = fmt::format("\"{}\"", def);
  f.apply = [dst, choices, lower](std::string_view v) {
    std::string s = lower ? to_lower(v) : std::string(v);
    if (std::find(choices.begin(), choices.end(), s) == choices.end())
      throw std::invalid_argument(fmt::format("must be one of: {}", fmt::join(choices, ", ")));
    *dst = s;
  };
  f.reset = [dst, def] { *dst = def; };
}

void FlagSet::add_noop(std::string name, bool is_bool, std::string help) {
  auto& f = add(std::move(name), std::move(help) + " (accepted for compatibility; no effect)", {},
                is_bool);
  f.noop = true;
  f.apply = [is_bool](std::string_view v) {
    bool b;
    if (is_bool && !parse_go_bool(v, b)) throw std::invalid_argument("not a boolean");
  };
  f.reset = [] {};
}

void FlagSet::assign(Flag& f, std::string_view value, std::string_view source) {
  try {
    f.apply(value);
  } catch (const std::invalid_argument& e) {
    throw FlagError(fmt::format("invalid value {} for {}: {}", quote(value), source, e.what()));
  }
}

void FlagSet::parse(std::span<const std::string> args) {
  for (auto& [name, f] : flags_) {
    f.reset();
    f.set = false;
    if (f.env.empty()) continue;
    if (const char* env = std::getenv(f.env.c_str()); env && *env)
      assign(f, env, fmt::format("environment variable {} (flag --{})", f.env, name));
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--") {
      if (i + 1 < args.size())
        throw FlagError(fmt::format("unexpected argument {}", quote(args[i + 1])));
      break;
    }
    if (arg.size() < 2 || arg[0] != '-')
      throw FlagError(fmt::format("unexpected argument {} (flags start with - or --)", quote(arg)));
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    if (arg.empty() || arg[0] == '-' || arg[0] == '=')
      throw FlagError(fmt::format("bad flag syntax: {}", quote(args[i])));
    std::string_view name = arg, value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    if (name == "h" || name == "help") throw HelpRequested{};
    auto it = flags_.find(name);
    if (it == flags_.end())
      throw FlagError(fmt::format("unknown flag --{} for {} (see --help)", quote(name, false), name_));
    Flag& f = it->second;
    if (!has_value) {
      if (f.is_bool) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        throw FlagError(fmt::format("flag --{} needs a value", name));
      }
    }
    assign(f, value, fmt::format("flag --{}", name));
    f.set = true;
  }
}

bool FlagSet::was_set(std::string_view name) const {
  auto it = flags_.find(name);
  return it != flags_.end() && it->second.set;
}

std::vector<std::string> FlagSet::noops_set() const {
  std::vector<std::string> out;
  for (const auto& [name, f] : flags_)
    if (f.noop && f.set) out.push_back(name);
  return out;
}

std::string FlagSet::usage() const {
  std::string out = fmt::format("Flags for {}:\n", name_);
  for (const auto& [name, f] : flags_) {
    out += fmt::format("  --{}{}\n        {}", name, f.is_bool ? "" : " value", f.help);
    if (!f.default_text.empty()) out += fmt::format(" (default {})", f.default_text);
    if (!f.env.empty()) out += fmt::format(" [env {}]", f.env);
    out += "\n";
  }
  return out;
}

}  // namespace aad
