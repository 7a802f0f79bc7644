#include "comm/communicator.hpp"

#include <chrono>
#include <climits>
#include <mutex>
#include <thread>
#include <vector>

namespace skein::comm {

namespace {
// Buffers of requests dropped while MPI may still use them, kept for the rest of the process (see
// request.hpp). Held from a static pointer, never freed: reachable to the end, so not a leak, and never
// released after Kokkos or MPI have finalized.
void keep_until_exit(std::shared_ptr<const void> buffer) {
  static std::mutex mutex;
  static auto* kept = new std::vector<std::shared_ptr<const void>>();
  const std::lock_guard<std::mutex> lock(mutex);
  kept->push_back(std::move(buffer));
}

std::string mpi_error_text(const char* call, int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  return std::string(call) + " failed: " + std::string(text, static_cast<std::size_t>(length));
}
}  // namespace

MpiError::MpiError(const char* call, int code) : engine::InternalError(mpi_error_text(call, code)) {}

namespace detail {
MPI_Op mpi_op(Op op) {
  switch (op) {
    case Op::sum:
      return MPI_SUM;
    case Op::min:
      return MPI_MIN;
    case Op::max:
      return MPI_MAX;
  }
  return MPI_SUM;
}
void check(const char* call, int code) {
  if (code != MPI_SUCCESS) throw MpiError(call, code);
}
}  // namespace detail

Communicator::Communicator(MPI_Comm parent) {
  detail::check("MPI_Comm_dup", MPI_Comm_dup(parent, &comm_));
  detail::check("MPI_Comm_set_errhandler", MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  detail::check("MPI_Comm_rank", MPI_Comm_rank(comm_, &rank_));
  detail::check("MPI_Comm_size", MPI_Comm_size(comm_, &size_));
}

Communicator::Communicator(MPI_Comm comm, Adopt) : comm_(comm) {
  if (comm_ == MPI_COMM_NULL) {
    rank_ = 0;
    size_ = 0;
    return;
  }
  try {
    detail::check("MPI_Comm_set_errhandler", MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    detail::check("MPI_Comm_rank", MPI_Comm_rank(comm_, &rank_));
    detail::check("MPI_Comm_size", MPI_Comm_size(comm_, &size_));
  } catch (...) {
    release();  // ownership was taken: do not leak the communicator
    throw;
  }
}

Communicator Communicator::adopt(MPI_Comm comm) {
  return Communicator(comm, Adopt{});
}

Communicator::Communicator(Communicator&& other) noexcept
    : comm_(std::exchange(other.comm_, MPI_COMM_NULL)),
      rank_(std::exchange(other.rank_, 0)),
      size_(std::exchange(other.size_, 0)),
      staging_(std::move(other.staging_)),
      device_(std::move(other.device_)),
      gpu_aware_(std::exchange(other.gpu_aware_, false)),
      exact_sums_(std::exchange(other.exact_sums_, false)),
      pinned_staging_(std::move(other.pinned_staging_)),
      pinned_staging_bytes_(std::exchange(other.pinned_staging_bytes_, 0)) {}

Communicator& Communicator::operator=(Communicator&& other) noexcept {
  if (this != &other) {
    release();
    comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
    rank_ = std::exchange(other.rank_, 0);
    size_ = std::exchange(other.size_, 0);
    staging_ = std::move(other.staging_);
    device_ = std::move(other.device_);
    gpu_aware_ = std::exchange(other.gpu_aware_, false);
    exact_sums_ = std::exchange(other.exact_sums_, false);
    pinned_staging_ = std::move(other.pinned_staging_);
    pinned_staging_bytes_ = std::exchange(other.pinned_staging_bytes_, 0);
  }
  return *this;
}

void Communicator::release() noexcept {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  comm_ = MPI_COMM_NULL;
}

Communicator::~Communicator() {
  release();
}

Communicator Communicator::split(int color, int key) const {
  MPI_Comm part = MPI_COMM_NULL;
  const engine::BlockingScope blocking("MPI_Comm_split");
  detail::check("MPI_Comm_split",
                MPI_Comm_split(comm_, color == no_color ? MPI_UNDEFINED : color, key, &part));
  Communicator result = adopt(part);
  // Other ranks, so not the device backend (an NCCL communicator is fixed to its ranks); MPI is the same.
  result.gpu_aware_ = gpu_aware_;
  result.exact_sums_ = exact_sums_;
  return result;
}

void Communicator::require_contiguous(bool contiguous, const char* what) {
  if (!contiguous) throw engine::InternalError(std::string(what) + " needs a contiguous View");
}

void* Communicator::staging(std::size_t bytes) const {
  const std::size_t units = (bytes + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t);
  if (staging_.size() < units) staging_.resize(units);
  return staging_.data();
}

Request Communicator::isend_bytes(const void* data, std::size_t bytes, int destination, int tag,
                                  std::shared_ptr<const void> keep_alive) const {
  if (bytes > INT_MAX) throw engine::InternalError("isend of more than 2 GiB is not supported");
  MPI_Request request = MPI_REQUEST_NULL;
  detail::check("MPI_Isend",
                MPI_Isend(data, static_cast<int>(bytes), MPI_BYTE, destination, tag, comm_, &request));
  return Request(request, std::move(keep_alive), /*is_receive=*/false);
}

Request Communicator::irecv_bytes(void* data, std::size_t bytes, int source, int tag,
                                  std::shared_ptr<const void> keep_alive) const {
  if (bytes > INT_MAX) throw engine::InternalError("irecv of more than 2 GiB is not supported");
  MPI_Request request = MPI_REQUEST_NULL;
  detail::check("MPI_Irecv",
                MPI_Irecv(data, static_cast<int>(bytes), MPI_BYTE, source, tag, comm_, &request));
  return Request(request, std::move(keep_alive), /*is_receive=*/true);
}

void Request::abandon() noexcept {
  if (request_ == MPI_REQUEST_NULL) {
    keep_alive_.reset();
    return;
  }
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) {
    if (is_receive_) MPI_Cancel(&request_);  // best effort: the poll below tells whether it took effect
    int done = 0;
    for (int attempt = 0; attempt < 200 && !done; ++attempt) {
      if (MPI_Test(&request_, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) break;
      if (!done) std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    if (done) {
      keep_alive_.reset();
      return;
    }
    if (request_ != MPI_REQUEST_NULL) MPI_Request_free(&request_);
  }
  request_ = MPI_REQUEST_NULL;
  // MPI may still use the buffer: keep it allocated for the rest of the process (see request.hpp).
  keep_until_exit(std::move(keep_alive_));
}

void Communicator::barrier() const {
  const engine::BlockingScope blocking("MPI_Barrier");
  detail::check("MPI_Barrier", MPI_Barrier(comm_));
}

void Communicator::settle(int code, const std::string& message) const {
  // Lowest failing rank speaks for all: (failed ? rank : size) reduced with MIN.
  const int speaker = allreduce(code != 0 ? rank_ : size_, Op::min);
  if (speaker == size_) return;
  int agreed_code = code;
  bcast(&agreed_code, 1, speaker);
  std::string agreed_message = message;
  bcast(agreed_message, speaker);
  if (size_ > 1) agreed_message = "rank " + std::to_string(speaker) + ": " + agreed_message;
  engine::throw_agreed_error(static_cast<engine::ExitCode>(agreed_code), agreed_message);
}

void Communicator::bcast_bytes(void* data, std::size_t bytes, int root) const {
  auto* cursor = static_cast<char*>(data);
  const engine::BlockingScope blocking("MPI_Bcast");
  for (std::size_t done = 0; done < bytes;) {
    const int n = chunk(bytes - done);
    detail::check("MPI_Bcast", MPI_Bcast(cursor + done, n, MPI_BYTE, root, comm_));
    done += static_cast<std::size_t>(n);
  }
}

void Communicator::bcast(std::string& text, int root) const {
  std::uint64_t length = text.size();
  bcast(&length, 1, root);
  text.resize(length);
  bcast_bytes(text.data(), length, root);
}

std::vector<std::uint64_t> Communicator::gather_sizes(std::uint64_t bytes, int root) const {
  std::vector<std::uint64_t> sizes(static_cast<std::size_t>(size_));
  const engine::BlockingScope blocking("MPI_Allgather/MPI_Gather");
  if (root < 0) {
    detail::check("MPI_Allgather",
                  MPI_Allgather(&bytes, 1, MPI_UINT64_T, sizes.data(), 1, MPI_UINT64_T, comm_));
  } else {
    detail::check("MPI_Gather",
                  MPI_Gather(&bytes, 1, MPI_UINT64_T, sizes.data(), 1, MPI_UINT64_T, root, comm_));
    if (rank_ != root) sizes.assign(sizes.size(), 0);
  }
  return sizes;
}

void Communicator::gather_bytes(const void* local, std::size_t bytes, void* all,
                                const std::vector<std::uint64_t>& sizes, int root) const {
  std::vector<int> counts(sizes.size()), displacements(sizes.size());
  std::uint64_t offset = 0;
  for (std::size_t r = 0; r < sizes.size(); ++r) {
    counts[r] = static_cast<int>(sizes[r]);
    displacements[r] = static_cast<int>(offset);
    offset += sizes[r];
  }
  // All ranks must take the same branch: the size check uses the allgathered / root-known totals only on
  // the ranks that have them, so compare the local contribution too and agree before moving data.
  const int too_big = allreduce(static_cast<int>(offset > INT_MAX || bytes > INT_MAX), Op::max);
  if (too_big) throw engine::InternalError("gather of more than 2 GiB is not supported");
  const int local_count = static_cast<int>(bytes);
  const engine::BlockingScope blocking("MPI_Allgatherv/MPI_Gatherv");
  if (root < 0) {
    detail::check("MPI_Allgatherv", MPI_Allgatherv(local, local_count, MPI_BYTE, all, counts.data(),
                                                   displacements.data(), MPI_BYTE, comm_));
  } else {
    detail::check("MPI_Gatherv", MPI_Gatherv(local, local_count, MPI_BYTE, all, counts.data(),
                                             displacements.data(), MPI_BYTE, root, comm_));
  }
}

std::vector<std::uint64_t> Communicator::exchange_counts(
    const std::vector<std::uint64_t>& send_counts) const {
  std::vector<std::uint64_t> receive_counts(send_counts.size());
  const engine::BlockingScope blocking("MPI_Alltoall");
  detail::check("MPI_Alltoall", MPI_Alltoall(send_counts.data(), 1, MPI_UINT64_T, receive_counts.data(), 1,
                                             MPI_UINT64_T, comm_));
  return receive_counts;
}

void Communicator::exchange_bytes(const void* send, const std::vector<std::uint64_t>& send_counts,
                                  void* receive, const std::vector<std::uint64_t>& receive_counts,
                                  std::size_t item_bytes) const {
  const std::size_t p = send_counts.size();
  std::vector<int> sc(p), sd(p), rc(p), rd(p);
  std::uint64_t send_offset = 0, receive_offset = 0;
  bool too_big = false;
  for (std::size_t r = 0; r < p; ++r) {
    const std::uint64_t s_bytes = send_counts[r] * item_bytes, r_bytes = receive_counts[r] * item_bytes;
    too_big |= send_offset + s_bytes > INT_MAX || receive_offset + r_bytes > INT_MAX;
    sc[r] = static_cast<int>(s_bytes);
    sd[r] = static_cast<int>(send_offset);
    rc[r] = static_cast<int>(r_bytes);
    rd[r] = static_cast<int>(receive_offset);
    send_offset += s_bytes;
    receive_offset += r_bytes;
  }
  if (allreduce(static_cast<int>(too_big), Op::max)) {
    throw engine::InternalError("exchange of more than 2 GiB per rank is not supported");
  }
  const engine::BlockingScope blocking("MPI_Alltoallv");
  detail::check("MPI_Alltoallv", MPI_Alltoallv(send, sc.data(), sd.data(), MPI_BYTE, receive, rc.data(),
                                               rd.data(), MPI_BYTE, comm_));
}

}  // namespace skein::comm
