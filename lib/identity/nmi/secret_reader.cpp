#include "identity/nmi/secret_reader.hpp"

#include "kube/typed.hpp"

namespace aad::identity::nmi {

boost::asio::awaitable<kube::Result<kube::Secret>> KubeSecretReader::read(const std::string& ns, const std::string& name) {
  // kube::get takes its strings by value: call it outside the co_await expression (GCC 12
  // destroys by-value arguments of a coroutine called inside one twice).
  auto pending = kube::get<kube::Secret>(client_, ns, name);
  auto r = co_await std::move(pending);
  co_return r;
}

azure::Result<std::string> client_secret_of(const kube::Secret& s) {
  if (s.data.empty())
    return azure::local_error(azure::Error::Kind::config, "invalid_secret",
                              "secret " + s.meta.ns + "/" + s.meta.name + " has no data");
  if (s.data.size() == 1) return s.data.begin()->second;
  if (auto it = s.data.find("clientSecret"); it != s.data.end()) return it->second;
  return s.data.begin()->second;
}

azure::Result<CertificateMaterial> certificate_of(const kube::Secret& s) {
  auto cert = s.data.find("certificate");
  if (cert == s.data.end() || cert->second.empty())
    return azure::local_error(azure::Error::Kind::config, "invalid_secret",
                              "secret " + s.meta.ns + "/" + s.meta.name + " has no key 'certificate'");
  CertificateMaterial m;
  m.certificate = cert->second;
  if (auto pw = s.data.find("password"); pw != s.data.end()) m.password = pw->second;
  return m;
}

}  // namespace aad::identity::nmi
