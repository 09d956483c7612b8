#pragma once
// Expected failures of Kubernetes calls, as values: the apiserver's Status (HTTP code, reason,
// message) or a transport error. Result<T> = boost::system::result<T, kube::Error>.
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <source_location>
#include <string>

namespace aad::kube {

struct Error {
  int code = 0;            // HTTP status (0: transport/decoding error, see `transport`)
  std::string reason;      // Status.reason: NotFound, AlreadyExists, Conflict, Expired, Gone, Invalid...
  std::string message;     // Status.message, or a description of the transport/decoding failure
  boost::system::error_code transport;

  bool not_found() const { return code == 404; }
  bool conflict() const { return code == 409 && reason != "AlreadyExists"; }
  bool already_exists() const { return code == 409 && reason == "AlreadyExists"; }
  bool gone() const { return code == 410 || reason == "Expired" || reason == "Gone"; }
  bool forbidden() const { return code == 403; }
  bool unauthorized() const { return code == 401; }
  bool invalid() const { return code == 422; }
  std::string describe() const;  // "409 Conflict: message" / "transport: connection refused"

  static Error from_transport(boost::system::error_code ec, std::string context = {});
  static Error decode(std::string message);  // a response or object we could not decode
  // From an apiserver response body (a Status object when it is one, else the raw text).
  static Error from_response(unsigned status, const std::string& body);
};

// boost::system::result<T, Error>::value() throws through this (programming-error path only).
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

template <typename T>
using Result = boost::system::result<T, Error>;

}  // namespace aad::kube
