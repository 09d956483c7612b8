#pragma once
// Getting fresh tokens for one AzureIdentity from upstream (IMDS for type 0, AAD for the
// service-principal types 1 and 2). The token service above it caches and de-duplicates.
#include <boost/asio/awaitable.hpp>
#include <string>
#include <vector>

#include "azure/cancel.hpp"
#include "azure/token.hpp"
#include "kube/models.hpp"

namespace aad::identity::nmi {

class TokenFetcher {
 public:
  virtual ~TokenFetcher() = default;
  // The primary token first, then one per auxiliary tenant (type 1 only).
  virtual boost::asio::awaitable<azure::Result<std::vector<azure::Token>>> fetch(
      const kube::AzureIdentity& identity, const std::string& resource, const azure::Cancellation& cancel) = 0;
};

}  // namespace aad::identity::nmi
