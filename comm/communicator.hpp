// RAII MPI communicator: a dup'ed MPI_Comm with MPI_ERRORS_RETURN, checked typed collectives on host data
// and Kokkos Views, non-blocking point-to-point, and error agreement so one rank's failure ends every rank
// with its message. This header needs no Kokkos: the View members are defined in comm/view_collectives.hpp,
// which a file that communicates Views includes.
#pragma once

#include "comm/device_collectives.hpp"
#include "comm/request.hpp"
#include "engine/error.hpp"
#include "engine/watchdog.hpp"

#include <mpi.h>

#include <array>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace skein::comm {

// An MPI call failed; carries MPI's own error string.
class MpiError : public engine::InternalError {
 public:
  MpiError(const char* call, int code);
};

enum class Op { sum, min, max };

namespace detail {
// clang-format off
template <class T>
MPI_Datatype mpi_type() {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, char>) return MPI_CHAR;
  else if constexpr (std::is_same_v<U, signed char>) return MPI_SIGNED_CHAR;
  else if constexpr (std::is_same_v<U, unsigned char>) return MPI_UNSIGNED_CHAR;
  else if constexpr (std::is_same_v<U, int>) return MPI_INT;
  else if constexpr (std::is_same_v<U, unsigned>) return MPI_UNSIGNED;
  else if constexpr (std::is_same_v<U, long>) return MPI_LONG;
  else if constexpr (std::is_same_v<U, unsigned long>) return MPI_UNSIGNED_LONG;
  else if constexpr (std::is_same_v<U, long long>) return MPI_LONG_LONG;
  else if constexpr (std::is_same_v<U, unsigned long long>) return MPI_UNSIGNED_LONG_LONG;
  else if constexpr (std::is_same_v<U, float>) return MPI_FLOAT;
  else if constexpr (std::is_same_v<U, double>) return MPI_DOUBLE;
  else static_assert(sizeof(T) == 0, "no MPI datatype for this type");
}
// clang-format on
MPI_Op mpi_op(Op op);
void check(const char* call, int code);

template <class T>
struct is_std_vector : std::false_type {};
template <class T, class A>
struct is_std_vector<std::vector<T, A>> : std::true_type {};

// What the View members accept: anything shaped like a Kokkos::View (tested without Kokkos' headers).
template <class T, class = void>
struct is_view_like : std::false_type {};
template <class T>
struct is_view_like<
    T, std::void_t<typename T::memory_space, typename T::array_layout, typename T::non_const_value_type>>
    : std::true_type {};
template <class T>
using if_view_like = std::enable_if_t<is_view_like<T>::value, int>;

// The Communicator's View members, defined in comm/view_collectives.hpp. A View member used without that
// header fails to compile here, on this incomplete type.
template <class View, class Enable = void>
struct ViewCollectives;
}  // namespace detail

class Communicator {
 public:
  // Duplicates `parent` (never uses it directly) and makes MPI return errors instead of aborting.
  explicit Communicator(MPI_Comm parent);
  // Takes ownership of `comm`, a communicator comm/ code has just created (split, Cartesian): no dup; it
  // is freed with this object and made to return errors. MPI_COMM_NULL gives a null communicator.
  static Communicator adopt(MPI_Comm comm);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;
  // A moved-from communicator holds MPI_COMM_NULL (size 0) and its destructor does nothing.
  Communicator(Communicator&& other) noexcept;
  Communicator& operator=(Communicator&& other) noexcept;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_null() const { return comm_ == MPI_COMM_NULL; }
  // For libraries that take a communicator (parallel HDF5, MPI-IO in io/).
  MPI_Comm native() const { return comm_; }

  void barrier() const;

  // --- Device memory (comm/backend.hpp chooses; a job never calls these) ---------------------------------
  // Views in memory the host cannot read go through `device` (NCCL) when set; else straight to MPI when
  // `gpu_aware` (MPI reads device pointers); else through a reused pinned host buffer. Host data always
  // goes through MPI. Communicators split from this one keep `gpu_aware`; the Cartesian one of a
  // CartDecomposition keeps both (same ranks, same order).
  void set_device_backend(std::shared_ptr<const DeviceCollectives> device, bool gpu_aware) {
    device_ = std::move(device);
    gpu_aware_ = gpu_aware;
  }
  const std::shared_ptr<const DeviceCollectives>& device_backend() const { return device_; }
  bool gpu_aware() const { return gpu_aware_; }

  // comm.reproducible (comm/backend.cpp): sums over ranks that solvers and jobs take exactly
  // (comm/exact_sum.hpp), so their results are the same bits at any rank count. Communicators split or
  // made Cartesian from this one keep it.
  void set_exact_sums(bool exact) { exact_sums_ = exact; }
  bool exact_sums() const { return exact_sums_; }

  // Collective: ranks with the same `color` form a new communicator, ordered by (key, old rank). A rank
  // passing `no_color` takes part in the call but gets a null communicator.
  static constexpr int no_color = -1;
  Communicator split(int color, int key) const;

  // --- Error agreement -------------------------------------------------------------------------------
  // Runs `local_work` (which must not communicate), then agrees with every rank on whether any failed.
  // If one did, every rank throws the same typed engine::Error carrying the lowest failing rank's
  // message (prefixed "rank R: " when size() > 1). Every rank must call it the same number of times.
  template <class F>
  void agree(F&& local_work) const {
    int code = 0;
    std::string message;
    try {
      local_work();
    } catch (const engine::Error& e) {
      code = static_cast<int>(e.code());
      message = e.what();
    } catch (const std::exception& e) {
      code = static_cast<int>(engine::ExitCode::internal);
      message = std::string("internal error: ") + e.what();
    }
    settle(code, message);
  }
  // The agreement step alone: `code` 0 means this rank is fine.
  void settle(int code, const std::string& message) const;

  // "Rank 0 decides": rank 0 alone runs f(); its result reaches every rank, or its exception reaches every
  // rank as the same agreed typed error (as agree() reports it). The result may be void, a trivially
  // copyable value, std::string, or std::vector of trivially copyable values.
  template <class F>
  auto decide(F&& f) const {
    using R = std::decay_t<decltype(f())>;
    if constexpr (std::is_void_v<R>) {
      agree([&] {
        if (rank_ == 0) f();
      });
    } else {
      static_assert(std::is_default_constructible_v<R>, "decide() needs a default-constructible result");
      R result{};
      agree([&] {
        if (rank_ == 0) result = f();
      });
      bcast_value(result, 0);
      return result;
    }
  }

  // --- Scalars and host arrays ------------------------------------------------------------------------
  template <class T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
  T allreduce(T value, Op op) const {
    T result{};
    const engine::BlockingScope blocking("MPI_Allreduce");
    detail::check("MPI_Allreduce",
                  MPI_Allreduce(&value, &result, 1, detail::mpi_type<T>(), detail::mpi_op(op), comm_));
    return result;
  }
  template <class T>
  void allreduce_inplace(T* data, std::size_t count, Op op) const {
    const engine::BlockingScope blocking("MPI_Allreduce");
    for (std::size_t done = 0; done < count;) {
      const int n = chunk(count - done);
      detail::check("MPI_Allreduce", MPI_Allreduce(MPI_IN_PLACE, data + done, n, detail::mpi_type<T>(),
                                                   detail::mpi_op(op), comm_));
      done += static_cast<std::size_t>(n);
    }
  }
  // Sum of `value` over lower ranks (0 on rank 0).
  template <class T>
  T exscan(T value) const {
    T result{};
    const engine::BlockingScope blocking("MPI_Exscan");
    detail::check("MPI_Exscan", MPI_Exscan(&value, &result, 1, detail::mpi_type<T>(), MPI_SUM, comm_));
    return rank_ == 0 ? T{} : result;
  }
  // Several reductions fused into one message (e.g. the dot products of one Krylov step).
  template <class T, std::size_t N>
  std::array<T, N> allreduce(std::array<T, N> values, Op op) const {
    static_assert(std::is_arithmetic_v<T>);
    allreduce_inplace(values.data(), N, op);
    return values;
  }
  template <class T>
  void bcast(T* data, std::size_t count, int root) const {
    static_assert(std::is_trivially_copyable_v<T>);
    bcast_bytes(data, count * sizeof(T), root);
  }
  void bcast(std::string& text, int root) const;
  template <class T>
  std::vector<T> allgather(const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    std::vector<T> all(static_cast<std::size_t>(size_));
    const engine::BlockingScope blocking("MPI_Allgather");
    detail::check("MPI_Allgather",
                  MPI_Allgather(&value, sizeof(T), MPI_BYTE, all.data(), sizeof(T), MPI_BYTE, comm_));
    return all;
  }
  // Concatenation of every rank's `local` in rank order, on every rank.
  template <class T>
  std::vector<T> allgatherv(const std::vector<T>& local) const {
    return gather_impl(local, /*root=*/-1);
  }
  // Concatenation of every rank's `local` in rank order on `root`; empty elsewhere.
  template <class T>
  std::vector<T> gatherv(const std::vector<T>& local, int root) const {
    return gather_impl(local, root);
  }

  // Sends each item to rank `destination(item)`; returns the items this rank received, ordered by source
  // rank, each source's items in their original order (so globally ordered input stays ordered).
  template <class T, class Destination>
  std::vector<T> exchange(const std::vector<T>& items, Destination destination) const {
    static_assert(std::is_trivially_copyable_v<T>);
    std::vector<std::uint64_t> send_counts(static_cast<std::size_t>(size_), 0);
    std::vector<int> owner(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
      owner[i] = destination(items[i]);
      ++send_counts[static_cast<std::size_t>(owner[i])];
    }
    std::vector<std::uint64_t> cursor(send_counts.size(), 0);
    for (std::size_t r = 1; r < cursor.size(); ++r) cursor[r] = cursor[r - 1] + send_counts[r - 1];
    std::vector<T> send(items.size());
    for (std::size_t i = 0; i < items.size(); ++i)
      send[cursor[static_cast<std::size_t>(owner[i])]++] = items[i];
    const auto receive_counts = exchange_counts(send_counts);
    std::uint64_t total = 0;
    for (const auto c : receive_counts) total += c;
    std::vector<T> received(static_cast<std::size_t>(total));
    exchange_bytes(send.data(), send_counts, received.data(), receive_counts, sizeof(T));
    return received;
  }

  // --- Kokkos Views (host-staged when the View is not host-accessible) --------------------------------
  // Defined in comm/view_collectives.hpp: include it where Views are communicated.
  // In place on any contiguous View (any rank: a vector, a k x k matrix). Fences first, since a kernel may
  // still be writing the View. Device memory goes through one host staging buffer owned by this
  // communicator, grown on demand, so a warm call allocates nothing.
  template <class View, detail::if_view_like<View> = 0>
  void allreduce(const View& view, Op op) const {
    detail::ViewCollectives<View>::allreduce(*this, view, op);
  }
  template <class View, detail::if_view_like<View> = 0>
  void bcast(const View& view, int root) const {
    detail::ViewCollectives<View>::bcast(*this, view, root);
  }
  // Every rank's rank-1 View concatenated in rank order, as a host View on every rank.
  template <class View, detail::if_view_like<View> = 0>
  auto allgatherv(const View& view) const {
    return detail::ViewCollectives<View>::allgatherv(*this, view);
  }

  // --- Non-blocking point-to-point ------------------------------------------------------------------
  // On contiguous host-accessible Views (comm/view_collectives.hpp); the Request holds a copy of the View
  // handle, so the memory lives until wait() even if the caller drops its handle. Fences first (a kernel
  // may have written the View).
  template <class View, detail::if_view_like<View> = 0>
  Request isend(const View& view, int destination, int tag) const {
    return detail::ViewCollectives<View>::isend(*this, view, destination, tag);
  }
  template <class View, detail::if_view_like<View> = 0>
  Request irecv(const View& view, int source, int tag) const {
    return detail::ViewCollectives<View>::irecv(*this, view, source, tag);
  }
  // Raw host buffers (e.g. persistent halo buffers): `keep_alive` owns them, or is empty when the caller
  // guarantees they outlive the request. No fence here: the caller knows whether a kernel wrote them.
  template <class T>
  Request isend(const T* data, std::size_t count, int destination, int tag,
                std::shared_ptr<const void> keep_alive = {}) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return isend_bytes(data, count * sizeof(T), destination, tag, std::move(keep_alive));
  }
  template <class T>
  Request irecv(T* data, std::size_t count, int source, int tag,
                std::shared_ptr<const void> keep_alive = {}) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return irecv_bytes(data, count * sizeof(T), source, tag, std::move(keep_alive));
  }

 private:
  template <class View, class Enable>
  friend struct detail::ViewCollectives;
  static int chunk(std::size_t remaining) {
    constexpr std::size_t max_count = 1u << 30;  // stay clear of MPI's int counts
    return static_cast<int>(remaining < max_count ? remaining : max_count);
  }
  void bcast_bytes(void* data, std::size_t bytes, int root) const;
  Request isend_bytes(const void* data, std::size_t bytes, int destination, int tag,
                      std::shared_ptr<const void> keep_alive) const;
  Request irecv_bytes(void* data, std::size_t bytes, int source, int tag,
                      std::shared_ptr<const void> keep_alive) const;
  static void require_contiguous(bool contiguous, const char* what);
  // Host staging memory of at least `bytes`, reused across calls (max_align_t-aligned).
  void* staging(std::size_t bytes) const;

  template <class T>
  void bcast_value(T& value, int root) const {
    if constexpr (std::is_same_v<T, std::string>) {
      bcast(value, root);
    } else if constexpr (detail::is_std_vector<T>::value) {
      static_assert(std::is_trivially_copyable_v<typename T::value_type>);
      std::uint64_t count = value.size();
      bcast(&count, 1, root);
      value.resize(static_cast<std::size_t>(count));
      bcast(value.data(), value.size(), root);
    } else {
      static_assert(std::is_trivially_copyable_v<T>,
                    "decide(): result must be trivially copyable, a string or a vector");
      bcast(&value, 1, root);
    }
  }
  std::vector<std::uint64_t> exchange_counts(const std::vector<std::uint64_t>& send_counts) const;
  void exchange_bytes(const void* send, const std::vector<std::uint64_t>& send_counts, void* receive,
                      const std::vector<std::uint64_t>& receive_counts, std::size_t item_bytes) const;
  std::vector<std::uint64_t> gather_sizes(std::uint64_t bytes, int root) const;
  void gather_bytes(const void* local, std::size_t bytes, void* all, const std::vector<std::uint64_t>& sizes,
                    int root) const;

  template <class T>
  std::vector<T> gather_impl(const std::vector<T>& local, int root) const {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto sizes = gather_sizes(local.size() * sizeof(T), root);
    std::uint64_t total = 0;
    for (const auto s : sizes) total += s;
    std::vector<T> all(static_cast<std::size_t>(total / sizeof(T)));
    gather_bytes(local.data(), local.size() * sizeof(T), all.data(), sizes, root);
    return all;
  }

  struct Adopt {};
  Communicator(MPI_Comm comm, Adopt);
  void release() noexcept;

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  mutable std::vector<std::max_align_t> staging_;
  std::shared_ptr<const DeviceCollectives> device_;
  bool gpu_aware_ = false;
  bool exact_sums_ = false;
  // Pinned host staging for device Views (a Kokkos View, type-erased: this header has no Kokkos), grown on
  // demand by comm/view_collectives.hpp and reused.
  mutable std::shared_ptr<void> pinned_staging_;
  mutable std::size_t pinned_staging_bytes_ = 0;
};

}  // namespace skein::comm
