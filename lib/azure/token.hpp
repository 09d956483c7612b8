#pragma once
// Access tokens as IMDS and AAD return them, and the one interface every token source implements.
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "azure/cancel.hpp"
#include "azure/clock.hpp"
#include "azure/error.hpp"

namespace aad::azure {

struct Token {
  std::string access_token;  // secret: never log
  std::string token_type;    // "Bearer"
  std::string resource;      // as echoed upstream (may be empty for v2 answers)
  std::string client_id;     // IMDS: the identity actually used
  SystemTime expires_on;     // computed robustly (see parse_expires_on)
  boost::json::object raw;   // every field exactly as upstream sent it (string numbers stay strings)
};

// Parses a 200 body from IMDS or AAD (v1 or v2). `now` serves the expires_in fallback.
Result<Token> parse_token_response(std::string_view body, SystemTime now);

// expires_on as JSON number, numeric string, or date string ("1/2/2006 15:04:05 [PM] +00:00",
// RFC 3339); nullopt when unusable.
std::optional<SystemTime> parse_expires_on(const boost::json::value& v);

// Turns a non-2xx IMDS/AAD answer into an Error: keeps status, `error`, `error_description`,
// AADSTS codes (error_codes or the description), Retry-After, and classifies retryable
// (404/408/410/429/5xx for IMDS; 408/429/5xx and temporarily_unavailable for AAD).
enum class Upstream { imds, aad };
Error token_http_error(Upstream who, unsigned status, std::string_view body,
                       std::string_view retry_after, SystemTime now);

// "https://x/.default" -> "https://x" (the SDKs' scope-to-resource rule); resources unchanged.
std::string resource_from_scope(std::string_view resource_or_scope);

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // A token for `resource` (or a ".default" scope). Cancellable; never holds longer than the
  // source's own bounded retry budget.
  virtual boost::asio::awaitable<Result<Token>> get_token(
      const std::string& resource, const Cancellation& cancel = Cancellation::none()) = 0;
  // Primary token first, then one per auxiliary tenant (service principals); others: just one.
  virtual boost::asio::awaitable<Result<std::vector<Token>>> get_tokens(
      const std::string& resource, const Cancellation& cancel = Cancellation::none());
  // For logs and metrics, e.g. "imds:user-assigned".
  virtual std::string describe() const = 0;
};

}  // namespace aad::azure
