// A move-only handle on one non-blocking MPI operation that keeps the memory it reads or writes alive
// until the operation completes.
#pragma once

#include "engine/watchdog.hpp"

#include <mpi.h>

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace skein::comm {

namespace detail {
void check(const char* call, int code);  // throws MpiError; defined in communicator.cpp
}  // namespace detail

class Request {
 public:
  Request() = default;
  // `keep_alive` owns (a handle on) the buffer: e.g. a copy of the View being sent, so the caller may drop
  // its own handle before wait(). `is_receive` decides what happens if the request is dropped (below).
  Request(MPI_Request request, std::shared_ptr<const void> keep_alive, bool is_receive)
      : request_(request), keep_alive_(std::move(keep_alive)), is_receive_(is_receive) {}
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  Request(Request&& other) noexcept
      : request_(std::exchange(other.request_, MPI_REQUEST_NULL)),
        keep_alive_(std::move(other.keep_alive_)) {}
  Request& operator=(Request&& other) noexcept {
    if (this != &other) {
      abandon();
      request_ = std::exchange(other.request_, MPI_REQUEST_NULL);
      keep_alive_ = std::move(other.keep_alive_);
      is_receive_ = other.is_receive_;
    }
    return *this;
  }
  ~Request() { abandon(); }

  // True until wait() (or a test() that found it complete).
  bool active() const { return request_ != MPI_REQUEST_NULL; }

  // Blocks until the operation completes, then releases the buffer. A no-op on an inactive request.
  void wait() {
    if (request_ != MPI_REQUEST_NULL) {
      const engine::BlockingScope blocking("MPI_Wait");
      detail::check("MPI_Wait", MPI_Wait(&request_, MPI_STATUS_IGNORE));
    }
    keep_alive_.reset();
  }
  // True (and the buffer released) once the operation has completed; never blocks.
  bool test() {
    if (request_ == MPI_REQUEST_NULL) return true;
    int done = 0;
    detail::check("MPI_Test", MPI_Test(&request_, &done, MPI_STATUS_IGNORE));
    if (done) keep_alive_.reset();
    return done != 0;
  }

 private:
  // A request dropped without wait() (an exception unwinding between start and finish) must neither hang
  // nor let MPI touch freed memory. Waiting could hang: a large send to a peer that has itself given up
  // never completes, and the unwinding would then never reach the collective abort. So a receive is
  // cancelled (an unmatched one completes at once, and cannot swallow a later message); a send is not
  // (cancelling sends is deprecated and unreliable; it still reaches a peer that receives later). Then a
  // short poll (at most ~0.1 s); if the operation has still not finished, the request is freed and the
  // buffer handle deliberately leaked, because MPI may still use that memory. That leak only happens on
  // error paths, which end the process.
  void abandon() noexcept;

  MPI_Request request_ = MPI_REQUEST_NULL;
  std::shared_ptr<const void> keep_alive_;
  bool is_receive_ = false;
};

// Completes every request (in order; all were posted already, so the order cannot deadlock).
inline void wait_all(Request* requests, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) requests[i].wait();
}
inline void wait_all(std::vector<Request>& requests) {
  wait_all(requests.data(), requests.size());
}

}  // namespace skein::comm
