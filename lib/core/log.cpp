#include "core/log.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <chrono>
#include <cmath>
#include <ctime>
#include <cstdio>
#include <stdexcept>

#include "core/redact.hpp"

namespace aad::log {
namespace {

Config& config() {
  static Config c;
  return c;
}

std::string json_quote(std::string_view s) {
  return boost::json::serialize(boost::json::string(s));
}

// klog quotes strings with Go's strconv.Quote; JSON escaping is close enough and unambiguous.
std::string text_quote(std::string_view s) { return json_quote(s); }

std::string_view basename(std::string_view path) {
  auto pos = path.rfind('/');
  return pos == std::string_view::npos ? path : path.substr(pos + 1);
}

char severity_letter(Severity s) {
  switch (s) {
    case Severity::warning: return 'W';
    case Severity::error: return 'E';
    default: return 'I';
  }
}

}  // namespace

void configure(Config c) { config() = std::move(c); }

Format parse_format(std::string_view name) {
  if (name == "text") return Format::text;
  if (name == "json") return Format::json;
  throw std::invalid_argument(fmt::format("unknown log format \"{}\" (want text or json)", name));
}

bool enabled(int v) { return v <= config().verbosity; }

// Only strings can carry a secret: numbers and bools under a "sensitive" key (e.g. a flag
// named token-cache) are printed as they are, which also keeps the JSON output valid.
std::string field_value(const KV& kv) {
  if (!kv.quoted) return kv.value;
  return redact::is_sensitive_key(kv.key) ? redact::secret(kv.value) : redact::text(kv.value);
}

std::string format_line(Format format, Severity sev, int v, std::string_view msg,
                        std::string_view err, Fields fields, const std::source_location& loc,
                        double unix_seconds, long pid) {
  std::string line;
  if (format == Format::json) {
    line = fmt::format("{{\"ts\":{:.3f},\"caller\":{},\"v\":{}", unix_seconds * 1000.0,
                       json_quote(fmt::format("{}:{}", basename(loc.file_name()), loc.line())), v);
    if (sev != Severity::info)
      line += fmt::format(",\"level\":\"{}\"", sev == Severity::error ? "error" : "warning");
    line += fmt::format(",\"msg\":{}", json_quote(redact::text(msg)));
    if (!err.empty()) line += fmt::format(",\"err\":{}", json_quote(redact::text(err)));
    for (const auto& kv : fields) {
      std::string value = field_value(kv);
      line += fmt::format(",{}:{}", json_quote(kv.key), kv.quoted ? json_quote(value) : value);
    }
    line += "}";
    return line;
  }
  // klog header: Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg
  auto secs = static_cast<std::time_t>(unix_seconds);
  auto micros = static_cast<long>(std::llround((unix_seconds - static_cast<double>(secs)) * 1e6)) % 1000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  line = fmt::format("{}{:02}{:02} {:02}:{:02}:{:02}.{:06} {:>7} {}:{}] {}", severity_letter(sev),
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros, pid,
                     basename(loc.file_name()), loc.line(), text_quote(redact::text(msg)));
  if (!err.empty()) line += fmt::format(" err={}", text_quote(redact::text(err)));
  for (const auto& kv : fields) {
    std::string value = field_value(kv);
    line += fmt::format(" {}={}", kv.key, kv.quoted ? text_quote(value) : value);
  }
  return line;
}

void write(Severity sev, int v, std::string_view msg, std::string_view err, Fields fields,
           const std::source_location& loc) {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  double secs = std::chrono::duration<double>(now).count();
  auto line = format_line(config().format, sev, v, msg, err, fields, loc, secs, ::getpid());
  if (config().sink) {
    config().sink(line);
    return;
  }
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace aad::log
