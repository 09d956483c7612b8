#pragma once
// How NMI reads a request before any lookup: which route it takes, what its token query asks
// for, and the IMDS-shaped JSON errors it answers with. Pure functions, no I/O.
#include <optional>
#include <string>
#include <string_view>

#include "core/http_message.hpp"

namespace aad::identity::nmi {

enum class Route {
  token,             // /metadata/identity/oauth2/token ("metadata" case-insensitive, optional trailing /)
  malformed_token,   // looks like a token path but is not one: 400, never proxied
  host_token,        // /host/token (node processes, loopback only)
  blocked_instance,  // /metadata/instance* with --block-instance-metadata
  proxy,             // everything else goes to IMDS
  invalid_path,      // not canonical (path_problem): 400, never routed or proxied
};

// An absolute-form target ("http://169.254.169.254/metadata/...?q", RFC 9112 3.2.2) in origin
// form ("/metadata/...?q"), the authority dropped as Go's server did. nullopt when the target
// is not in absolute form (the usual case; nothing to rewrite).
std::optional<std::string> origin_form(std::string_view target);

// Why NMI refuses to route this raw (still percent-encoded) path, or "" when it is canonical:
// it must start with '/', have no empty segment ("//", except a trailing '/'), no "." or ".."
// segment, no backslash, no control character and no percent-encoded '/', '.' or '\'. Routing
// and the block on /metadata/instance look at the path as it is; a path IMDS would normalise
// to something else must not get past them. A malformed escape is left to classify().
std::string_view path_problem(std::string_view raw_path);

// True when a percent-escape in the raw query decodes to a control character (0x00-0x1f, 0x7f).
bool query_has_control_characters(std::string_view raw_query);

// Classifies the percent-decoded path (a malformed escape is a malformed request).
Route classify(std::string_view path, bool block_instance_metadata);

// Percent-decodes a URL path ('+' stays '+'). nullopt on a bad escape.
std::optional<std::string> decode_path(std::string_view path);

// The token query. Values are percent-decoded once, exactly as IMDS and the original read them;
// `resource` is then passed on byte for byte.
struct TokenQuery {
  std::string resource;
  std::string client_id;
  std::string resource_id;  // msi_res_id, or mi_res_id when msi_res_id is absent
  std::string object_id;
  std::string api_version;
};

struct QueryError {
  std::string description;
};

// Parses the query part of a target ("a=1&b=2"). The first of repeated keys wins (Go's
// Query().Get). A malformed percent escape is an error rather than a silently dropped pair.
std::optional<TokenQuery> parse_token_query(std::string_view query, QueryError& error);

// Splits a request target into path and query.
std::pair<std::string_view, std::string_view> split_target(std::string_view target);

// Percent-decodes a query component ('+' is a space). Returns nullopt on a bad escape.
std::optional<std::string> decode_query_component(std::string_view text);

// An error in IMDS's shape: {"error":"<code>","error_description":"<description>"}.
struct Error {
  http::Status status;
  std::string code;  // e.g. invalid_request, identity_not_found
  std::string description;
  std::optional<int> retry_after_seconds;
};

http::Response error_response(const http::Request& req, const Error& error);

}  // namespace aad::identity::nmi
