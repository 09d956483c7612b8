#pragma once
// A streaming HTTP/1.1 GET (or any method) whose response body is delivered incrementally:
// for Kubernetes watches (chunked, newline-delimited JSON). One Stream = one connection, never
// pooled. cancel() aborts whatever is pending (the awaiting call returns operation_aborted).
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "core/http_client.hpp"
#include "core/tls.hpp"

namespace aad::http {

class Stream {
 public:
  // Throws std::runtime_error when the TLS configuration is unusable.
  Stream(boost::asio::any_io_executor executor, const tls::ClientConfig& tls, std::string user_agent);
  // Shares an existing OpenSSL context (from tls::make_client_context).
  Stream(boost::asio::any_io_executor executor, std::shared_ptr<boost::asio::ssl::context> ctx,
         bool insecure_skip_verify, std::string user_agent);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Connects, sends the request and reads the response header (request.timeout bounds this part).
  // Returns the HTTP status; headers() holds the header afterwards.
  boost::asio::awaitable<boost::system::result<unsigned>> open(ClientRequest request);
  const boost::beast::http::fields& headers() const;

  // Every read waits at most `idle` for data (default: no limit).
  void set_idle_timeout(std::chrono::milliseconds idle);

  // The next piece of body data (possibly partial lines). At the end of the body: error
  // boost::beast::http::error::end_of_stream.
  boost::asio::awaitable<boost::system::result<std::string>> read_some();
  // The next '\n'-terminated line without the terminator (a final unterminated line too);
  // end_of_stream at the end. Lines longer than max_line fail with message_size.
  boost::asio::awaitable<boost::system::result<std::string>> read_line(std::size_t max_line = 16 << 20);
  // The rest of the body (for error responses), at most `limit` bytes.
  boost::asio::awaitable<boost::system::result<std::string>> read_all(std::size_t limit = 1 << 20);

  // Closes the connection; pending and later operations fail with operation_aborted.
  void cancel();
  bool is_open() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace aad::http
