#pragma once
// Lets Catch print boost::system::result<T, E> for our error types (anything with describe()):
// "ok" or "error: <describe()>".
#include <catch2/catch.hpp>

#include <boost/system/result.hpp>
#include <string>

namespace Catch {
template <typename T, typename E>
  requires requires(const E& e) { { e.describe() } -> std::convertible_to<std::string>; }
struct StringMaker<boost::system::result<T, E>> {
  static std::string convert(const boost::system::result<T, E>& r) {
    return r ? std::string("ok") : "error: " + r.error().describe();
  }
};
}  // namespace Catch
