#pragma once
// The one error type of lib/azure: what went wrong upstream (IMDS, AAD, ARM) or locally, kept
// precise enough for callers to relay it (status, codes, text) and to decide whether to retry.
// Never holds secrets or tokens: messages are taken from upstream error bodies only.
#include <boost/system/result.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <source_location>
#include <string>
#include <vector>

namespace aad::azure {

struct Error {
  enum class Kind {
    transport,  // no HTTP answer (connect, TLS, timeout)
    http,       // upstream answered with an error status
    parse,      // upstream answered 2xx with something we cannot use
    config,     // local configuration / credential material unusable
    cancelled,  // the caller cancelled
    throttled,  // refused locally: a Retry-After from an earlier 429 has not expired yet
    deleting,   // ARM resource in provisioningState Deleting (no PATCH sent)
  };
  Kind kind = Kind::http;
  unsigned status = 0;       // upstream HTTP status; 0 when there was no answer
  std::string code;          // IMDS/AAD `error`, ARM `error.code`, or a local code
  std::string message;       // IMDS/AAD `error_description`, ARM `error.message`, or local text
  std::vector<std::int64_t> aad_codes;  // AADSTS numbers (from error_codes or the description)
  bool retryable = false;
  std::optional<std::chrono::seconds> retry_after;  // from a Retry-After header
  std::string body;          // upstream body as received (error bodies carry no secrets)

  // One line for logs and events: "HTTP 400 invalid_request: Identity not found".
  std::string describe() const;
};

template <typename T>
using Result = boost::system::result<T, Error>;

// Needed by boost::system::result<T, Error>::value() (found by ADL).
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

Error local_error(Error::Kind kind, std::string code, std::string message, bool retryable = false);

}  // namespace aad::azure
