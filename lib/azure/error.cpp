#include "azure/error.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace aad::azure {

std::string Error::describe() const {
  std::string out;
  if (status) out = fmt::format("HTTP {}", status);
  else {
    switch (kind) {
      case Kind::transport: out = "transport error"; break;
      case Kind::parse: out = "invalid response"; break;
      case Kind::config: out = "configuration error"; break;
      case Kind::cancelled: out = "cancelled"; break;
      case Kind::throttled: out = "throttled"; break;
      case Kind::deleting: out = "resource deleting"; break;
      case Kind::http: out = "error"; break;
    }
  }
  if (!code.empty()) out += " " + code;
  if (!message.empty()) out += ": " + message;
  return out;
}

void throw_exception_from_error(const Error& e, const boost::source_location&) {
  throw std::runtime_error(e.describe());
}

Error local_error(Error::Kind kind, std::string code, std::string message, bool retryable) {
  Error e;
  e.kind = kind;
  e.code = std::move(code);
  e.message = std::move(message);
  e.retryable = retryable;
  return e;
}

}  // namespace aad::azure
