#include "azure/transport.hpp"

#include <algorithm>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <ctime>

namespace aad::azure {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

asio::awaitable<Result<http::ClientResponse>> send_request(http::Client& client,
                                                           http::ClientRequest request,
                                                           const Cancellation& cancel) {
  // A transport error names where it failed to get to ("login.example:443: Host not found").
  std::string where = http::host_port(request.url);
  auto failure = [&where](const boost::system::error_code& ec) {
    return local_error(Error::Kind::transport, "TransportError", where.empty() ? ec.message() : where + ": " + ec.message(), true);
  };
  if (!cancel.cancellable()) {
    auto plain = co_await client.send(std::move(request));
    if (!plain) co_return failure(plain.error());
    co_return std::move(*plain);
  }
  if (cancel.cancelled()) co_return local_error(Error::Kind::cancelled, "Cancelled", "request cancelled");
  auto raced = co_await (client.send(std::move(request)) || cancel.wait());
  if (raced.index() == 1)
    co_return local_error(Error::Kind::cancelled, "Cancelled", "request cancelled");
  auto& res = std::get<0>(raced);
  if (!res) {
    Error e = failure(res.error());
    co_return e;
  }
  co_return std::move(*res);
}

std::string url_encode(std::string_view value) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size() * 3);
  for (unsigned char c : value) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [k, v] : fields) {
    if (!out.empty()) out += '&';
    out += url_encode(k);
    out += '=';
    out += url_encode(v);
  }
  return out;
}

// One header must not lock a direction out for longer than this (a hostile or broken reply
// could otherwise stop all ARM calls for years).
constexpr std::chrono::seconds kMaxRetryAfter{3600};

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value, SystemTime now) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  bool digits = value.size() <= 9;
  for (char c : value) digits = digits && c >= '0' && c <= '9';
  if (digits) return std::min(std::chrono::seconds(std::stol(std::string(value))), kMaxRetryAfter);
  // HTTP date, e.g. "Wed, 21 Oct 2015 07:28:00 GMT".
  std::tm tm{};
  std::string text(value);
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end) return std::nullopt;
  if (tm.tm_year > 2200 - 1900) return kMaxRetryAfter;  // far future: the cap (and no overflow)
  auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
  auto secs = static_cast<long long>(timegm(&tm));
  if (secs < 0 || secs > 9'000'000'000LL) return kMaxRetryAfter;  // far future: the cap
  auto d = std::chrono::duration_cast<std::chrono::seconds>(at - now);
  return d.count() < 0 ? std::chrono::seconds(0) : std::min(d, kMaxRetryAfter);
}

std::string join_url(std::string_view base, std::string_view path) {
  std::string out(base);
  while (!out.empty() && out.back() == '/') out.pop_back();
  if (!path.empty() && path.front() != '/') out += '/';
  out += path;
  return out;
}

}  // namespace aad::azure
