#pragma once
// Redaction: tokens, secrets and client assertions must never reach a log line.
#include <string>
#include <string_view>

namespace aad::redact {

// True for names like "client_secret", "access_token", "Authorization", "password".
bool is_sensitive_key(std::string_view key);

// A short stand-in for a secret: keeps only its length, e.g. "[redacted 1234 bytes]".
std::string secret(std::string_view value);

// Scrubs free text: JWT-looking strings, "Bearer ..." credentials, and key=value / "key":"value"
// pairs whose key is sensitive. Safe to call on anything about to be logged.
std::string text(std::string_view input);

}  // namespace aad::redact
