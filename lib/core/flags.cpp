#include "core/flags.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

namespace aad {
namespace {

std::int64_t parse_int(std::string_view s) {
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc::result_out_of_range) throw std::invalid_argument("value out of range");
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty())
    throw std::invalid_argument("not an integer");
  return v;
}

}  // namespace

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
    std::string s(v);
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size()) throw std::invalid_argument("not a number");
    if (!(d >= min && d <= max))
      throw std::invalid_argument(fmt::format("must be between {} and {}", min, max));
    *dst = d;
  };
  f.reset = [dst, def] { *dst = def; };
}

void FlagSet::add_choice(std::string name, std::string* dst, std::string def,
                         std::vector<std::string> choices, std::string help, bool lower) {
  auto& f = add(std::move(name), std::move(help), {}, false);
  f.default_text = fmt::format("\"{}\"", def);
  f.apply = [dst, choices, lower](std::string_view v) {
    std::string s(v);
    if (lower)
      std::transform(s.begin(), s.end(), s.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
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
    throw FlagError(fmt::format("invalid value \"{}\" for {}: {}", value, source, e.what()));
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
        throw FlagError(fmt::format("unexpected argument \"{}\"", args[i + 1]));
      break;
    }
    if (arg.size() < 2 || arg[0] != '-')
      throw FlagError(fmt::format("unexpected argument \"{}\" (flags start with - or --)", arg));
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    if (arg.empty() || arg[0] == '-' || arg[0] == '=')
      throw FlagError(fmt::format("bad flag syntax: {}", args[i]));
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
      throw FlagError(fmt::format("unknown flag --{} for {} (see --help)", name, name_));
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
