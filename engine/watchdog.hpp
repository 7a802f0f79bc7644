// A deadline on waiting for other ranks: a rank blocked longer than `comm_timeout` in one communication (a
// peer stopped by SIGSTOP, hung, or cut off without its process ending) says so and aborts every rank
// (exit 69), instead of waiting forever.
#pragma once

#include <atomic>
#include <cstdint>

namespace skein::engine {

namespace detail {
// Odd while the main thread is inside a blocking region; bumped on the outermost entry and exit, so a
// watchdog that sees the same odd value twice knows no region ended in between.
extern std::atomic<std::uint64_t> g_blocking_epoch;
extern std::atomic<const char*> g_blocking_operation;
extern int g_blocking_depth;  // main thread only (MPI is initialised FUNNELED)
}  // namespace detail

// Marks the calling (main) thread as blocked on the other ranks for its lifetime: every blocking call in
// comm/ (collectives, waits) and the runner's collective checkpoint writes and finalize. Nested scopes count
// as the outermost one, so the deadline covers a whole checkpoint write, HDF5's own collectives included.
// Costs two relaxed atomic increments; `operation` must be a string literal (it is read by another thread).
class BlockingScope {
 public:
  explicit BlockingScope(const char* operation) noexcept {
    if (detail::g_blocking_depth++ == 0) {
      detail::g_blocking_operation.store(operation, std::memory_order_relaxed);
      detail::g_blocking_epoch.fetch_add(1, std::memory_order_release);
    }
  }
  ~BlockingScope() {
    if (--detail::g_blocking_depth == 0) detail::g_blocking_epoch.fetch_add(1, std::memory_order_release);
  }
  BlockingScope(const BlockingScope&) = delete;
  BlockingScope& operator=(const BlockingScope&) = delete;
};

// Starts the watchdog thread (or changes its timeout): from now on, a BlockingScope that lasts longer than
// `timeout_seconds` makes this rank print "rank R: no response from the other ranks within T s in OPERATION"
// and end every rank through MPI_Abort with ExitCode::unresponsive. timeout_seconds <= 0 stops it. Not
// collective; `rank` only names this rank in the message.
void start_watchdog(double timeout_seconds, int rank);
// Stops and joins the thread (idempotent). Called before MPI_Finalize returns control to exit.
void stop_watchdog();

}  // namespace skein::engine
