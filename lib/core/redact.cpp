#include "core/redact.hpp"

#include <algorithm>
#include <array>
#include <cctype>

#include "core/ascii.hpp"

namespace aad::redact {
namespace {

constexpr std::array<std::string_view, 10> kSensitiveParts = {
    "secret", "token", "assertion", "password", "authorization",
    "credential", "private_key", "privatekey", "clientpassword", "cookie"};

bool is_b64url(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '=';
}

bool is_key_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

// A JWT starts with base64url("{\"") == "eyJ" and has two dots.
bool jwt_at(std::string_view s, std::size_t i, std::size_t& end) {
  if (s.compare(i, 3, "eyJ") != 0) return false;
  if (i > 0 && is_b64url(s[i - 1])) return false;
  std::size_t j = i, dots = 0;
  while (j < s.size() && (is_b64url(s[j]) || s[j] == '.')) {
    if (s[j] == '.') ++dots;
    ++j;
  }
  if (dots < 2 || j - i < 20) return false;
  end = j;
  return true;
}

// Value after a sensitive key: up to a delimiter of URL-encoded forms, JSON strings or headers.
std::size_t value_end(std::string_view s, std::size_t start, bool quoted) {
  std::size_t j = start;
  while (j < s.size()) {
    char c = s[j];
    if (quoted ? (c == '"' && s[j - 1] != '\\') : (c == '&' || c == ' ' || c == ',' || c == '"' ||
                                                    c == '\n' || c == ';' || c == '}'))
      break;
    ++j;
  }
  return j;
}

}  // namespace

bool is_sensitive_key(std::string_view key) {
  auto k = to_lower(key);
  for (auto part : kSensitiveParts)
    if (k.find(part) != std::string::npos) {
      // Expiry and type fields are not secret even though they contain "token".
      if (k.find("expires") != std::string::npos || k == "token_type" || k.ends_with("_type"))
        return false;
      return true;
    }
  return false;
}

std::string secret(std::string_view value) {
  std::string out = "[redacted ";
  out += std::to_string(value.size());
  out += " bytes]";
  return out;
}

std::string text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t end = 0;
    if (jwt_at(s, i, end)) {
      out += secret(s.substr(i, end - i));
      i = end;
      continue;
    }
    // "Bearer <credential>"
    if ((s[i] == 'B' || s[i] == 'b') && to_lower(s.substr(i, 7)) == "bearer " &&
        (i == 0 || !is_key_char(s[i - 1]))) {
      std::size_t j = i + 7;
      std::size_t e = value_end(s, j, false);
      out.append(s.substr(i, 7));
      out += secret(s.substr(j, e - j));
      i = e;
      continue;
    }
    // key=value, key: value, "key":"value"
    if (is_key_char(s[i]) && (i == 0 || !is_key_char(s[i - 1]))) {
      std::size_t k = i;
      while (k < s.size() && is_key_char(s[k])) ++k;
      std::string_view key = s.substr(i, k - i);
      std::size_t v = k;
      if (v < s.size() && s[v] == '"') ++v;  // closing quote of a JSON key
      bool sep = false;
      while (v < s.size() && (s[v] == '=' || s[v] == ':' || s[v] == ' ')) {
        sep = sep || s[v] == '=' || s[v] == ':';
        ++v;
      }
      if (sep && v < s.size() && is_sensitive_key(key)) {
        bool quoted = s[v] == '"';
        std::size_t vs = quoted ? v + 1 : v;
        if (to_lower(s.substr(vs, 7)) == "bearer ") vs += 7;  // "Authorization: Bearer <token>"
        else if (to_lower(s.substr(vs, 6)) == "basic ") vs += 6;
        // A cookie header holds several pairs: mask up to the end of the line.
        std::size_t ve = to_lower(key).find("cookie") != std::string::npos && !quoted
                             ? std::min(s.find('\n', vs), s.size())
                             : value_end(s, vs, quoted);
        if (ve > vs) {
          out.append(s.substr(i, vs - i));
          out += secret(s.substr(vs, ve - vs));
          i = ve;
          continue;
        }
      }
      out.append(key);
      i = k;
      continue;
    }
    out.push_back(s[i]);
    ++i;
  }
  return out;
}

}  // namespace aad::redact
