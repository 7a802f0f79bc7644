// A deadline on waiting for other ranks: a rank blocked longer than `comm_timeout` in one communication (a
// peer stopped by SIGSTOP, hung, or cut off without its process ending) says so and aborts every rank
// (exit 69), instead of waiting forever.
#pragma once

#include <atomic>
#include <cstdint>

namespace skein::engine {

namespace detail {
// Written by the main thread only (MPI is initialised FUNNELED), read by the watchdog thread.
extern std::atomic<int> g_blocking_depth;               // > 0 while inside a blocking region
extern std::atomic<std::uint64_t> g_blocking_progress;  // bumped on every entry and exit, at any depth
extern std::atomic<const char*> g_blocking_operation;   // the innermost region's name
}  // namespace detail

// Marks the calling (main) thread as waiting on the other ranks for its lifetime: every blocking call in
// comm/ (collectives, waits), and around them the runner's checkpoint writes and finalize, whose HDF5
// collectives comm/ does not see. The deadline runs while some region is open and none opens or closes:
// inside a checkpoint write each collective restarts it, so it bounds the longest silent stretch (an HDF5
// write, a wait), not the whole write. Costs a few relaxed atomic operations; `operation` must be a string
// literal (another thread reads it).
class BlockingScope {
 public:
  explicit BlockingScope(const char* operation) noexcept
      : outer_(detail::g_blocking_operation.load(std::memory_order_relaxed)) {
    detail::g_blocking_operation.store(operation, std::memory_order_relaxed);
    detail::g_blocking_depth.fetch_add(1, std::memory_order_relaxed);
    detail::g_blocking_progress.fetch_add(1, std::memory_order_release);
  }
  ~BlockingScope() {
    detail::g_blocking_operation.store(outer_, std::memory_order_relaxed);
    detail::g_blocking_depth.fetch_sub(1, std::memory_order_relaxed);
    detail::g_blocking_progress.fetch_add(1, std::memory_order_release);
  }
  BlockingScope(const BlockingScope&) = delete;
  BlockingScope& operator=(const BlockingScope&) = delete;

 private:
  const char* outer_;
};

// Starts the watchdog thread (or changes its timeout): from now on, `timeout_seconds` inside a BlockingScope
// without any scope opening or closing makes this rank print "rank R: no response from the other ranks within
// T s in OPERATION" and end every rank through MPI_Abort with ExitCode::unresponsive. timeout_seconds <= 0
// stops it. Not collective; `rank` only names this rank in the message.
void start_watchdog(double timeout_seconds, int rank);
// Stops and joins the thread (idempotent). Called before MPI_Finalize returns control to exit.
void stop_watchdog();

}  // namespace skein::engine
