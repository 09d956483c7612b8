#include "core/http_message.hpp"

namespace aad::http {

Response make_response(const Request& req, Status status, std::string body,
                       std::string_view content_type) {
  Response res{status, req.version()};
  res.set(bhttp::field::content_type, content_type);
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

}  // namespace aad::http
