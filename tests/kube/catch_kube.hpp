#pragma once
// Catch2 printing of kube::Result<T>: "ok" or the Error's description.
#include <catch2/catch.hpp>

#include "kube/error.hpp"

namespace Catch {
template <typename T>
struct StringMaker<boost::system::result<T, aad::kube::Error>> {
  static std::string convert(const boost::system::result<T, aad::kube::Error>& r) {
    return r ? std::string("ok") : "error: " + r.error().describe();
  }
};
}  // namespace Catch
