#include "kube/error.hpp"

#include <fmt/format.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <stdexcept>

namespace aad::kube {

std::string Error::describe() const {
  if (code == 0) return message.empty() ? transport.message() : message;
  return fmt::format("{} {}: {}", code, reason.empty() ? "Error" : reason, message);
}

Error Error::from_transport(boost::system::error_code ec, std::string context) {
  Error e;
  e.transport = ec;
  e.message = context.empty() ? ec.message() : context + ": " + ec.message();
  return e;
}

Error Error::decode(std::string message) {
  Error e;
  e.reason = "DecodeError";
  e.message = std::move(message);
  return e;
}

Error Error::from_response(unsigned status, const std::string& body) {
  Error e;
  e.code = static_cast<int>(status);
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (!ec && v.is_object()) {
    const auto& o = v.get_object();
    if (auto* k = o.if_contains("kind"); k && k->is_string() && k->get_string() == "Status") {
      if (auto* r = o.if_contains("reason"); r && r->is_string()) e.reason = std::string(r->get_string());
      if (auto* m = o.if_contains("message"); m && m->is_string()) e.message = std::string(m->get_string());
      if (auto* c = o.if_contains("code"); c && c->is_int64() && c->get_int64() != 0)
        e.code = static_cast<int>(c->get_int64());
      return e;
    }
  }
  e.message = body.size() > 512 ? body.substr(0, 512) + "..." : body;
  return e;
}

void throw_exception_from_error(const Error& e, const boost::source_location&) {
  throw std::runtime_error("kubernetes: " + e.describe());
}

}  // namespace aad::kube
