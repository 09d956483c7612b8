#pragma once
// Small helpers shared by the IMDS, AAD and ARM clients (internal to lib/azure).
#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "azure/cancel.hpp"
#include "azure/clock.hpp"
#include "azure/error.hpp"
#include "core/ascii.hpp"
#include "core/http_client.hpp"

namespace aad::azure {

// Sends the request, giving up when `cancel` fires. Transport failures become Error{transport}.
boost::asio::awaitable<Result<http::ClientResponse>> send_request(http::Client& client,
                                                                  http::ClientRequest request,
                                                                  const Cancellation& cancel);

// RFC 3986 percent-encoding of a query value / form value (unreserved characters kept).
std::string url_encode(std::string_view value);
std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields);

// Retry-After: integer seconds or an HTTP date (relative to now). Nullopt when absent/invalid.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value, SystemTime now);

// "https://host/" + "path" with exactly one slash between them.
std::string join_url(std::string_view base, std::string_view path);

}  // namespace aad::azure
