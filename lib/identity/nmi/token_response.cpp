#include "identity/nmi/token_response.hpp"

#include <boost/json/serialize.hpp>

namespace aad::identity::nmi {

namespace json = boost::json;
using namespace std::chrono;

namespace {

// Upstream values as strings (AAD v1 and IMDS send numbers as strings already; v2 as numbers).
std::string as_string(const json::object& raw, std::string_view key) {
  auto it = raw.find(key);
  if (it == raw.end()) return {};
  const auto& v = it->value();
  if (v.is_string()) return std::string(v.get_string());
  if (v.is_int64()) return std::to_string(v.get_int64());
  if (v.is_uint64()) return std::to_string(v.get_uint64());
  if (v.is_double()) return std::to_string(static_cast<std::int64_t>(v.get_double()));
  return {};
}

}  // namespace

json::object token_object(const azure::Token& t, const std::string& requested_resource, azure::SystemTime now) {
  auto expires_on = duration_cast<seconds>(t.expires_on.time_since_epoch()).count();
  auto expires_in = std::max<std::int64_t>(0, duration_cast<seconds>(t.expires_on - now).count());
  std::string resource = as_string(t.raw, "resource");
  if (resource.empty()) resource = t.resource.empty() ? requested_resource : t.resource;
  std::string token_type = t.token_type.empty() ? "Bearer" : t.token_type;
  json::object o;
  o["access_token"] = t.access_token;
  o["refresh_token"] = as_string(t.raw, "refresh_token");
  o["expires_in"] = std::to_string(expires_in);
  o["expires_on"] = std::to_string(expires_on);
  o["not_before"] = as_string(t.raw, "not_before");
  o["resource"] = resource;
  o["token_type"] = token_type;
  return o;
}

std::string token_body(const std::vector<azure::Token>& tokens, bool as_array, const std::string& requested_resource,
                       azure::SystemTime now) {
  if (!as_array) return json::serialize(token_object(tokens.front(), requested_resource, now));
  json::array a;
  for (const auto& t : tokens) a.push_back(token_object(t, requested_resource, now));
  return json::serialize(a);
}

std::string host_token_body(const azure::Token& token, const std::string& client_id,
                            const std::string& requested_resource, azure::SystemTime now) {
  json::object o;
  o["token"] = token_object(token, requested_resource, now);
  o["clientid"] = client_id;
  return json::serialize(o);
}

}  // namespace aad::identity::nmi
