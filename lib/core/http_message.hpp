#pragma once
// The HTTP message types shared by the server, the client and every handler.
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string_view>

namespace aad::http {

namespace bhttp = boost::beast::http;
using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;
using Status = bhttp::status;
using Verb = bhttp::verb;

// A response to `req` with a body, Content-Type and Content-Length set.
Response make_response(const Request& req, Status status, std::string body,
                       std::string_view content_type = "text/plain; charset=utf-8");

}  // namespace aad::http
