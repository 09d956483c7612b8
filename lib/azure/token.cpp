#include "azure/token.hpp"

#include <charconv>
#include <fmt/format.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <ctime>
#include <regex>

#include "azure/transport.hpp"

namespace aad::azure {

namespace json = boost::json;

namespace {

std::optional<std::int64_t> as_integer(const json::value& v) {
  if (v.is_int64()) return v.as_int64();
  if (v.is_uint64()) return static_cast<std::int64_t>(v.as_uint64());
  if (v.is_double()) return static_cast<std::int64_t>(v.as_double());
  if (v.is_string()) {
    std::string_view s = v.as_string();
    if (s.empty() || s.size() > 18) return std::nullopt;
    std::int64_t n = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      n = n * 10 + (c - '0');
    }
    return n;
  }
  return std::nullopt;
}

std::optional<SystemTime> parse_date(std::string s) {
  std::tm tm{};
  // adal's layout "1/2/2006 15:04:05 +00:00" and with " PM"/" AM" (12-hour clock).
  for (const char* layout : {"%m/%d/%Y %I:%M:%S %p %z", "%m/%d/%Y %H:%M:%S %z", "%Y-%m-%dT%H:%M:%S%z",
                             "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S%z"}) {
    tm = {};
    std::string text = s;
    // glibc's %z does not accept "+00:00" in every version: drop the colon of the offset.
    if (text.size() > 6 && (text[text.size() - 6] == '+' || text[text.size() - 6] == '-') &&
        text[text.size() - 3] == ':')
      text.erase(text.size() - 3, 1);
    const char* end = strptime(text.c_str(), layout, &tm);
    if (!end) continue;
    while (*end == ' ') ++end;
    if (*end) {
      // fractional seconds in RFC 3339: "…:05.123Z"
      continue;
    }
    long offset = tm.tm_gmtoff;
    auto secs = static_cast<long long>(timegm(&tm)) - offset;
    if (secs < 0 || secs > 9'000'000'000LL) return std::nullopt;  // outside what SystemTime holds
    return std::chrono::system_clock::from_time_t(static_cast<std::time_t>(secs));
  }
  return std::nullopt;
}

std::string string_field(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return {};
  if (it->value().is_string()) return std::string(it->value().as_string());
  return json::serialize(it->value());
}

}  // namespace

// Epoch seconds a SystemTime (nanoseconds) can hold without overflow: up to the year 2262.
constexpr long long kMaxEpochSeconds = 9'000'000'000LL;

std::optional<SystemTime> parse_expires_on(const json::value& v) {
  std::optional<SystemTime> t;
  if (auto n = as_integer(v)) {
    if (*n < 0 || *n > kMaxEpochSeconds) return std::nullopt;  // unusable: fall back to expires_in
    t = SystemTime(std::chrono::seconds(*n));
  } else if (v.is_string()) {
    t = parse_date(std::string(v.as_string()));
  }
  return t;
}

Result<Token> parse_token_response(std::string_view body, SystemTime now) {
  boost::system::error_code ec;
  auto doc = json::parse(body, ec);
  if (ec || !doc.is_object())
    return local_error(Error::Kind::parse, "InvalidTokenResponse",
                       "token response is not a JSON object");
  Token t;
  t.raw = std::move(doc.as_object());
  auto it = t.raw.find("access_token");
  if (it == t.raw.end() || !it->value().is_string() || it->value().as_string().empty())
    return local_error(Error::Kind::parse, "InvalidTokenResponse", "token response has no access_token");
  t.access_token = std::string(it->value().as_string());
  t.token_type = string_field(t.raw, "token_type");
  t.resource = string_field(t.raw, "resource");
  t.client_id = string_field(t.raw, "client_id");
  std::optional<SystemTime> expiry;
  if (auto e = t.raw.find("expires_on"); e != t.raw.end()) expiry = parse_expires_on(e->value());
  if (!expiry) {
    if (auto e = t.raw.find("expires_in"); e != t.raw.end()) {
      // At most ten years: a larger value is hostile or broken, not a token lifetime.
      if (auto n = as_integer(e->value()); n && *n >= 0 && *n <= 315'360'000)
        expiry = std::chrono::time_point_cast<SystemTime::duration>(now + std::chrono::seconds(*n));
    }
  }
  if (!expiry)
    return local_error(Error::Kind::parse, "InvalidTokenResponse",
                       "token response has neither a usable expires_on nor expires_in");
  t.expires_on = *expiry;
  return t;
}

Error token_http_error(Upstream who, unsigned status, std::string_view body, std::string_view retry_after,
                       SystemTime now) {
  Error e;
  e.kind = Error::Kind::http;
  e.status = status;
  e.body = std::string(body);
  e.retry_after = parse_retry_after(retry_after, now);
  boost::system::error_code ec;
  auto doc = json::parse(body, ec);
  if (!ec && doc.is_object()) {
    const auto& o = doc.as_object();
    if (auto it = o.find("error"); it != o.end()) {
      if (it->value().is_string()) e.code = std::string(it->value().as_string());
      else if (it->value().is_object()) {  // ARM-shaped {"error":{"code","message"}}
        e.code = string_field(it->value().as_object(), "code");
        e.message = string_field(it->value().as_object(), "message");
      }
    }
    if (auto it = o.find("error_description"); it != o.end() && it->value().is_string())
      e.message = std::string(it->value().as_string());
    if (auto it = o.find("error_codes"); it != o.end() && it->value().is_array())
      for (const auto& c : it->value().as_array())
        if (auto n = as_integer(c)) e.aad_codes.push_back(*n);
  } else {
    e.message = std::string(body.substr(0, 512));
  }
  if (e.aad_codes.empty()) {
    static const std::regex re("AADSTS([0-9]+)");
    std::smatch m;
    long long code = 0;
    if (std::regex_search(e.message, m, re)) {
      auto digits = m[1].str();
      auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), code);
      if (ec == std::errc() && ptr == digits.data() + digits.size()) e.aad_codes.push_back(code);
    }
  }
  // AAD descriptions carry "\r\nTrace ID: ..." lines: keep the first line in the message.
  if (auto cut = e.message.find("\r\n"); cut != std::string::npos) e.message.resize(cut);
  if (who == Upstream::imds) {
    e.retryable = status == 404 || status == 408 || status == 410 || status == 429 ||
                  (status >= 500 && status <= 599);
  } else {
    e.retryable = status == 408 || status == 429 || (status >= 500 && status <= 599) ||
                  e.code == "temporarily_unavailable";
  }
  return e;
}

std::string resource_from_scope(std::string_view s) {
  constexpr std::string_view suffix = "/.default";
  if (s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix)
    return std::string(s.substr(0, s.size() - suffix.size()));
  return std::string(s);
}

boost::asio::awaitable<Result<std::vector<Token>>> TokenSource::get_tokens(const std::string& resource,
                                                                           const Cancellation& cancel) {
  auto t = co_await get_token(resource, cancel);
  if (!t) co_return t.error();
  co_return std::vector<Token>{std::move(*t)};
}

}  // namespace aad::azure
