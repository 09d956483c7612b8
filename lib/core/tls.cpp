#include "core/tls.hpp"

#include <fmt/format.h>

#include <boost/asio/ssl/context.hpp>
#include <stdexcept>

namespace aad::tls {
namespace ssl = boost::asio::ssl;
namespace {

template <typename F>
void step(std::string_view what, F&& f) {
  boost::system::error_code ec;
  f(ec);
  if (ec) throw std::runtime_error(fmt::format("tls: {}: {}", what, ec.message()));
}

void load_identity(ssl::context& ctx, const std::string& cert_file, const std::string& cert_pem,
                   const std::string& key_file, const std::string& key_pem, std::string_view role) {
  bool has_cert = !cert_file.empty() || !cert_pem.empty();
  bool has_key = !key_file.empty() || !key_pem.empty();
  if (has_cert != has_key)
    throw std::runtime_error(fmt::format("tls: {} certificate and key must be given together", role));
  if (!has_cert) return;
  if (!cert_pem.empty())
    step(fmt::format("{} certificate data", role),
         [&](auto& ec) { ctx.use_certificate_chain(boost::asio::buffer(cert_pem), ec); });
  else
    step(fmt::format("{} certificate file {}", role, cert_file),
         [&](auto& ec) { ctx.use_certificate_chain_file(cert_file, ec); });
  if (!key_pem.empty())
    step(fmt::format("{} key data", role),
         [&](auto& ec) { ctx.use_private_key(boost::asio::buffer(key_pem), ssl::context::pem, ec); });
  else
    step(fmt::format("{} key file {}", role, key_file),
         [&](auto& ec) { ctx.use_private_key_file(key_file, ssl::context::pem, ec); });
}

void load_ca(ssl::context& ctx, const std::string& file, const std::string& pem, std::string_view what) {
  if (!pem.empty())
    step(fmt::format("{} data", what),
         [&](auto& ec) { ctx.add_certificate_authority(boost::asio::buffer(pem), ec); });
  else if (!file.empty())
    step(fmt::format("{} file {}", what, file), [&](auto& ec) { ctx.load_verify_file(file, ec); });
}

constexpr auto kModernOnly = ssl::context::default_workarounds | ssl::context::no_sslv2 |
                             ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1;

}  // namespace

std::shared_ptr<ssl::context> make_client_context(const ClientConfig& c) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(kModernOnly);
  if (c.insecure_skip_verify) {
    ctx->set_verify_mode(ssl::verify_none);
  } else {
    ctx->set_verify_mode(ssl::verify_peer);
    if (c.ca_file.empty() && c.ca_pem.empty())
      step("system trust store", [&](auto& ec) { ctx->set_default_verify_paths(ec); });
    else
      load_ca(*ctx, c.ca_file, c.ca_pem, "certificate authority");
  }
  load_identity(*ctx, c.cert_file, c.cert_pem, c.key_file, c.key_pem, "client");
  return ctx;
}

std::shared_ptr<ssl::context> make_server_context(const ServerConfig& c) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(kModernOnly | ssl::context::single_dh_use);
  if (c.cert_file.empty() && c.cert_pem.empty())
    throw std::runtime_error("tls: server certificate is required");
  load_identity(*ctx, c.cert_file, c.cert_pem, c.key_file, c.key_pem, "server");
  if (!c.client_ca_file.empty() || !c.client_ca_pem.empty()) {
    load_ca(*ctx, c.client_ca_file, c.client_ca_pem, "client certificate authority");
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return ctx;
}

}  // namespace aad::tls
