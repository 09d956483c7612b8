#include "identity/nmi/request.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <cctype>

#include "core/ascii.hpp"

namespace aad::identity::nmi {
namespace {

// "/metadata" (any case) at the start of the path, followed by rest.
bool metadata_prefix(std::string_view path, std::string_view rest) {
  constexpr std::string_view kMetadata = "/metadata";
  return path.size() >= kMetadata.size() + rest.size() && iequals(path.substr(0, kMetadata.size()), kMetadata) &&
         path.substr(kMetadata.size(), rest.size()) == rest;
}

// The original's v1.8.13 guard "/(?i:metadata)/identity(.*?)oauth2(.*?)token" anywhere in the path,
// but in any letter case: "/metadata/IDENTITY/oauth2/token" must not reach IMDS either.
bool looks_like_token_path(std::string_view raw) {
  const std::string lowered = to_lower(raw);
  std::string_view path = lowered;
  for (std::size_t i = 0; i + 9 <= path.size(); ++i) {
    if (path.substr(i, 9) != "/metadata") continue;
    auto rest = path.substr(i + 9);
    if (!rest.starts_with("/identity")) continue;
    auto oauth = rest.find("oauth2", 9);
    if (oauth != std::string_view::npos && rest.find("token", oauth + 6) != std::string_view::npos) return true;
  }
  return false;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The byte the escape "%XY" at text[i] stands for; -1 when text[i..i+2] is not a valid escape.
int escaped_byte(std::string_view text, std::size_t i) {
  if (i + 2 >= text.size() || text[i] != '%') return -1;
  int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// The one percent-decoder for paths and query components; nullopt on a bad escape.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      int b = escaped_byte(text, i);
      if (b < 0) return std::nullopt;
      out.push_back(static_cast<char>(b));
      i += 2;
    } else {
      out.push_back(plus_is_space && c == '+' ? ' ' : c);
    }
  }
  return out;
}

bool has_control_character(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  return false;
}

}  // namespace

Route classify(std::string_view raw_path, bool block_instance_metadata) {
  // Match on the decoded path, as Go's router did, so "%69nstance" cannot slip past a block.
  auto decoded = decode_path(raw_path);
  if (!decoded) return Route::malformed_token;  // a broken escape is never proxied
  std::string_view path = *decoded;
  if (metadata_prefix(path, "/identity/oauth2/token")) {
    auto tail = path.substr(std::string_view("/metadata/identity/oauth2/token").size());
    // msal-node appends a slash; anything else after "token" is not a token path.
    return tail.empty() || tail == "/" ? Route::token : Route::malformed_token;
  }
  if (looks_like_token_path(path)) return Route::malformed_token;
  if (path == "/host/token" || path == "/host/token/") return Route::host_token;
  // Blocking is a security control: "instance" in any case is blocked too.
  if (block_instance_metadata && path.size() >= 18 && iequals(path.substr(0, 18), "/metadata/instance"))
    return Route::blocked_instance;
  return Route::proxy;
}

std::optional<std::string> decode_path(std::string_view path) { return percent_decode(path, false); }

std::optional<std::string> origin_form(std::string_view target) {
  if (target.empty() || target.front() == '/') return std::nullopt;
  std::string_view rest;
  if (target.size() > 7 && iequals(target.substr(0, 7), "http://")) rest = target.substr(7);
  else if (target.size() > 8 && iequals(target.substr(0, 8), "https://")) rest = target.substr(8);
  else return std::nullopt;
  auto end = rest.find_first_of("/?#");
  if (end == std::string_view::npos) return std::string("/");
  if (rest[end] == '/') return std::string(rest.substr(end));
  std::string out = "/";  // built by append: `"/" + std::string(...)` trips GCC 12's -Wrestrict at -O2
  out.append(rest.substr(end));
  return out;
}

std::string_view path_problem(std::string_view raw) {
  if (raw.empty() || raw.front() != '/') return "the path must start with '/'";
  std::size_t segment = 1;  // start of the current segment in raw
  auto segment_problem = [&](std::size_t end, bool last) -> std::string_view {
    auto s = raw.substr(segment, end - segment);
    if (s.empty() && !last) return "empty path segment";
    if (s == "." || s == "..") return "'.' or '..' path segment";
    return {};
  };
  for (std::size_t i = 1; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '%') {
      int b = escaped_byte(raw, i);
      if (b < 0) return {};  // classify() answers a malformed escape
      c = static_cast<char>(b);
      if (c == '/' || c == '.' || c == '\\') return "percent-encoded '/', '.' or '\\' in the path";
      i += 2;
    } else if (c == '/') {
      if (auto p = segment_problem(i, false); !p.empty()) return p;
      segment = i + 1;
      continue;
    }
    if (c == '\\') return "backslash in the path";
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "control character in the path";
  }
  return segment_problem(raw.size(), true);
}

bool query_has_control_characters(std::string_view q) {
  for (std::size_t i = 0; i < q.size(); ++i) {
    int b = escaped_byte(q, i);
    if (b < 0) continue;
    if (b < 0x20 || b == 0x7f) return true;
    i += 2;
  }
  return false;
}

std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

std::optional<std::string> decode_query_component(std::string_view text) { return percent_decode(text, true); }

std::optional<TokenQuery> parse_token_query(std::string_view query, QueryError& error) {
  TokenQuery q;
  bool seen_resource = false, seen_client = false, seen_msi = false, seen_mi = false, seen_object = false,
       seen_api = false;
  std::string mi_res_id;
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    auto key = decode_query_component(pair.substr(0, eq));
    auto value = decode_query_component(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
    if (!key || !value) {
      error.description = "malformed query string: invalid percent-encoding";
      return std::nullopt;
    }
    // Never forwarded, logged or used as a label: IMDS and AAD accept no control characters.
    if (has_control_character(*key) || has_control_character(*value)) {
      error.description = "malformed query string: control characters are not allowed in query parameters";
      return std::nullopt;
    }
    auto take = [&](bool& seen, std::string& into) {
      if (!seen) into = std::move(*value);
      seen = true;
    };
    if (*key == "resource") take(seen_resource, q.resource);
    else if (*key == "client_id") take(seen_client, q.client_id);
    else if (*key == "msi_res_id") take(seen_msi, q.resource_id);
    else if (*key == "mi_res_id") take(seen_mi, mi_res_id);
    else if (*key == "object_id") take(seen_object, q.object_id);
    else if (*key == "api-version") take(seen_api, q.api_version);
  }
  if (q.resource_id.empty()) q.resource_id = std::move(mi_res_id);
  return q;
}

http::Response error_response(const http::Request& req, const Error& error) {
  boost::json::object body;
  body["error"] = error.code;
  body["error_description"] = error.description;
  auto res = http::make_response(req, error.status, boost::json::serialize(body), "application/json; charset=utf-8");
  if (error.retry_after_seconds) res.set(http::bhttp::field::retry_after, std::to_string(*error.retry_after_seconds));
  return res;
}

}  // namespace aad::identity::nmi
