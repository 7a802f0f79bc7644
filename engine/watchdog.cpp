#include "engine/watchdog.hpp"

#include "engine/error.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace skein::engine {

namespace detail {
std::atomic<int> g_blocking_depth{0};
std::atomic<std::uint64_t> g_blocking_progress{0};
std::atomic<const char*> g_blocking_operation{"(none)"};
}  // namespace detail

namespace {

struct Watchdog {
  std::mutex mutex;
  std::condition_variable wake;
  std::thread thread;
  bool stopping = false;
  double timeout_seconds = 0;
  int rank = 0;
};

// Never destroyed: a joinable std::thread destroyed at exit would call std::terminate.
Watchdog& watchdog() {
  static Watchdog* instance = new Watchdog;
  return *instance;
}

[[noreturn]] void abort_unresponsive(int rank, double timeout_seconds, const char* operation) {
  const int code = static_cast<int>(ExitCode::unresponsive);
  // The main thread is blocked inside MPI and the logger may be mid-line: plain stdio, one write.
  std::fprintf(stderr,
               "skein: error: rank %d: no response from the other ranks within %g s in %s (comm_timeout = "
               "%g): a rank stopped responding (stopped, hung, or its node unreachable); aborting every "
               "rank (exit %d); --resume continues from the newest checkpoint\n",
               rank, timeout_seconds, operation, timeout_seconds, code);
  std::fflush(stderr);
  std::fflush(stdout);
  // Raw MPI in engine/ (like Context::abort_all): the runtime owns MPI's lifetime. MPI_Abort from this
  // thread while the main thread waits in MPI is outside MPI_THREAD_FUNNELED's promise, but it is the only
  // way out of a collective that never completes, and Open MPI's abort only talks to its launcher; should
  // it return, the process ends anyway and the launcher ends the rest.
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

void watch() {
  Watchdog& w = watchdog();
  std::unique_lock<std::mutex> lock(w.mutex);
  bool timing = false;  // inside a region, with `watched` the progress count last seen
  std::uint64_t watched = 0;
  auto since = std::chrono::steady_clock::now();
  while (!w.stopping) {
    // Polling a fraction of the timeout bounds the overshoot; one wake-up a second at most costs nothing.
    const double poll = std::clamp(w.timeout_seconds / 20, 0.02, 1.0);
    w.wake.wait_for(lock, std::chrono::duration<double>(poll));
    if (w.stopping) break;
    const std::uint64_t progress = detail::g_blocking_progress.load(std::memory_order_acquire);
    const bool inside = detail::g_blocking_depth.load(std::memory_order_relaxed) > 0;
    const auto now = std::chrono::steady_clock::now();
    if (!inside) {
      timing = false;
    } else if (!timing || progress != watched) {
      timing = true;
      watched = progress;
      since = now;
    } else if (std::chrono::duration<double>(now - since).count() >= w.timeout_seconds) {
      abort_unresponsive(w.rank, w.timeout_seconds,
                         detail::g_blocking_operation.load(std::memory_order_relaxed));
    }
  }
}

}  // namespace

void start_watchdog(double timeout_seconds, int rank) {
  Watchdog& w = watchdog();
  if (timeout_seconds <= 0) {
    stop_watchdog();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(w.mutex);
    w.timeout_seconds = timeout_seconds;
    w.rank = rank;
    w.stopping = false;
  }
  if (!w.thread.joinable()) w.thread = std::thread(watch);
}

void stop_watchdog() {
  Watchdog& w = watchdog();
  {
    std::lock_guard<std::mutex> lock(w.mutex);
    w.stopping = true;
  }
  w.wake.notify_all();
  if (w.thread.joinable()) w.thread.join();
}

}  // namespace skein::engine
