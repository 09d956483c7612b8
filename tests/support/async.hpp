#pragma once
// Runs a coroutine to completion on an io_context that may also host servers (which never
// run out of work on their own).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>

namespace aad::test {

template <typename T>
T run_async(boost::asio::io_context& io, boost::asio::awaitable<T> aw,
            std::chrono::seconds limit = std::chrono::seconds(30)) {
  std::optional<T> result;
  std::exception_ptr error;
  bool done = false;
  boost::asio::co_spawn(io, std::move(aw), [&](std::exception_ptr e, T value) {
    error = e;
    if (!e) result.emplace(std::move(value));
    done = true;
  });
  auto deadline = std::chrono::steady_clock::now() + limit;
  io.restart();
  while (!done && std::chrono::steady_clock::now() < deadline) io.run_one_for(std::chrono::milliseconds(50));
  if (!done) throw std::runtime_error("coroutine did not finish in time");
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

inline void run_async(boost::asio::io_context& io, boost::asio::awaitable<void> aw,
                      std::chrono::seconds limit = std::chrono::seconds(30)) {
  run_async(io, [](boost::asio::awaitable<void> inner) -> boost::asio::awaitable<int> {
    co_await std::move(inner);
    co_return 0;
  }(std::move(aw)), limit);
}

}  // namespace aad::test
