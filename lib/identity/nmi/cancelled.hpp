#pragma once
// Throws operation_aborted when the calling coroutine has been cancelled (the HTTP server
// cancels a handler whose client went away). Loops that wait and re-check call this, because a
// wait that was cancelled returns like a timeout.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>

namespace aad::identity::nmi {

// (Awaiting a nested awaitable after cancellation throws too; this makes it explicit and also
// covers the case where Asio would not.)
inline boost::asio::awaitable<void> throw_if_cancelled() {
  auto state = co_await boost::asio::this_coro::cancellation_state;
  if (state.cancelled() != boost::asio::cancellation_type::none)
    throw boost::system::system_error(boost::asio::error::operation_aborted);
}

}  // namespace aad::identity::nmi
