#pragma once
// Lets Catch print azure::Result<T> (boost::system::result<T, azure::Error>) in failed assertions:
// "ok" or the error's describe() line.
#include <catch2/catch.hpp>

#include "azure/error.hpp"

namespace Catch {
template <typename T>
struct StringMaker<boost::system::result<T, aad::azure::Error>> {
  static std::string convert(const boost::system::result<T, aad::azure::Error>& r) {
    return r ? std::string("ok") : "error: " + r.error().describe();
  }
};
}  // namespace Catch
