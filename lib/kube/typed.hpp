#pragma once
// Typed wrappers over Client for the models in models.hpp (T::resource(), T::decode, encode()).
// A list decodes every item it can: objects with a wrong type are reported in `errors` and the
// rest still decode.
#include <boost/asio/awaitable.hpp>
#include <string>
#include <vector>

#include "kube/client.hpp"
#include "kube/models.hpp"

namespace aad::kube {

template <typename T>
struct TypedList {
  std::vector<T> items;
  std::vector<Error> errors;  // one per item that did not decode
  std::string resource_version;
};

template <typename T>
boost::asio::awaitable<Result<T>> get(Client& c, std::string ns, std::string name) {
  auto r = co_await c.get(T::resource(), std::move(ns), std::move(name));
  if (!r) co_return r.error();
  co_return T::decode(*r);
}

template <typename T>
boost::asio::awaitable<Result<TypedList<T>>> list(Client& c, std::string ns, ListOptions o = {}) {
  auto r = co_await c.list(T::resource(), std::move(ns), std::move(o));
  if (!r) co_return r.error();
  TypedList<T> out;
  out.resource_version = r->resource_version;
  for (const auto& item : r->items) {
    auto d = T::decode(item);
    if (d) out.items.push_back(std::move(*d));
    else out.errors.push_back(d.error());
  }
  co_return out;
}

template <typename T>
boost::asio::awaitable<Result<T>> create(Client& c, const T& obj) {
  auto r = co_await c.create(T::resource(), obj.meta.ns, obj.encode());
  if (!r) co_return r.error();
  co_return T::decode(*r);
}

// PUT with the object's resourceVersion: Error::conflict() when someone else changed it.
template <typename T>
boost::asio::awaitable<Result<T>> update(Client& c, const T& obj) {
  auto r = co_await c.update(T::resource(), obj.encode());
  if (!r) co_return r.error();
  co_return T::decode(*r);
}

// PUT on the status subresource (Pods have one; Lease and the four CRDs have none: 404).
template <typename T>
boost::asio::awaitable<Result<T>> update_status(Client& c, const T& obj) {
  auto r = co_await c.update(T::resource(), obj.encode(), "status");
  if (!r) co_return r.error();
  co_return T::decode(*r);
}

template <typename T>
boost::asio::awaitable<Result<T>> patch(Client& c, std::string ns, std::string name, PatchType type,
                                        std::string body, std::string subresource = {}) {
  auto r = co_await c.patch(T::resource(), std::move(ns), std::move(name), type, std::move(body),
                            std::move(subresource));
  if (!r) co_return r.error();
  co_return T::decode(*r);
}

// DELETE; with_preconditions: only this exact object (uid and resourceVersion).
template <typename T>
boost::asio::awaitable<Result<void>> remove(Client& c, const T& obj, bool with_preconditions = false,
                                            std::optional<int> grace_period_seconds = std::nullopt) {
  DeleteOptions o;
  if (with_preconditions) {
    o.uid = obj.meta.uid;
    o.resource_version = obj.meta.resource_version;
  }
  o.grace_period_seconds = grace_period_seconds;
  auto result = co_await c.remove(T::resource(), obj.meta.ns, obj.meta.name, std::move(o));
  co_return result;  // two statements: GCC 12 mishandles `co_return co_await`
}

}  // namespace aad::kube
