#pragma once
// The bodies NMI answers with, in IMDS's shape (behaviour reference 3.11): a token object whose
// values are all strings (access_token, refresh_token, expires_in, expires_on, not_before,
// resource, token_type); a JSON array of them for a multi-tenant service principal; and
// {"token": ..., "clientid": ...} on /host/token. expires_in is recomputed from expires_on at
// answer time, so a cached token never claims more life than it has.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <string>
#include <vector>

#include "azure/token.hpp"

namespace aad::identity::nmi {

boost::json::object token_object(const azure::Token& token, const std::string& requested_resource, azure::SystemTime now);

// One object, or an array when `as_array` (auxiliary tenants configured).
std::string token_body(const std::vector<azure::Token>& tokens, bool as_array, const std::string& requested_resource,
                       azure::SystemTime now);

std::string host_token_body(const azure::Token& token, const std::string& client_id,
                            const std::string& requested_resource, azure::SystemTime now);

}  // namespace aad::identity::nmi
