// RAII MPI communicator: a dup'ed MPI_Comm with MPI_ERRORS_RETURN, checked typed collectives on host data
// and Kokkos Views, and error agreement so one rank's failure ends every rank with its message.
#pragma once

#include "engine/error.hpp"

#include <Kokkos_Core.hpp>
#include <mpi.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace skein::comm {

// An MPI call failed; carries MPI's own error string.
class MpiError : public engine::InternalError {
 public:
  MpiError(const char* call, int code);
};

enum class Op { sum, min, max };

namespace detail {
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
MPI_Op mpi_op(Op op);
void check(const char* call, int code);
}  // namespace detail

class Communicator {
 public:
  // Duplicates `parent` (never uses it directly) and makes MPI return errors instead of aborting.
  explicit Communicator(MPI_Comm parent);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // For libraries that take a communicator (parallel HDF5, MPI-IO in io/).
  MPI_Comm native() const { return comm_; }

  void barrier() const;

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

  // --- Scalars and host arrays ------------------------------------------------------------------------
  template <class T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
  T allreduce(T value, Op op) const {
    T result{};
    detail::check("MPI_Allreduce", MPI_Allreduce(&value, &result, 1, detail::mpi_type<T>(), detail::mpi_op(op), comm_));
    return result;
  }
  template <class T>
  void allreduce_inplace(T* data, std::size_t count, Op op) const {
    for (std::size_t done = 0; done < count;) {
      const int n = chunk(count - done);
      detail::check("MPI_Allreduce",
                    MPI_Allreduce(MPI_IN_PLACE, data + done, n, detail::mpi_type<T>(), detail::mpi_op(op), comm_));
      done += static_cast<std::size_t>(n);
    }
  }
  // Sum of `value` over lower ranks (0 on rank 0).
  template <class T>
  T exscan(T value) const {
    T result{};
    detail::check("MPI_Exscan", MPI_Exscan(&value, &result, 1, detail::mpi_type<T>(), MPI_SUM, comm_));
    return rank_ == 0 ? T{} : result;
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

  // Sends each item to rank `destination(item)`; returns the items this rank received, ordered by source rank,
  // each source's items in their original order (so globally ordered input stays ordered).
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
    for (std::size_t i = 0; i < items.size(); ++i) send[cursor[static_cast<std::size_t>(owner[i])]++] = items[i];
    const auto receive_counts = exchange_counts(send_counts);
    std::uint64_t total = 0;
    for (const auto c : receive_counts) total += c;
    std::vector<T> received(static_cast<std::size_t>(total));
    exchange_bytes(send.data(), send_counts, received.data(), receive_counts, sizeof(T));
    return received;
  }

  // --- Kokkos Views (host-staged when the View is not host-accessible) -------------------------------
  template <class View, std::enable_if_t<Kokkos::is_view<View>::value, int> = 0>
  void allreduce(const View& view, Op op) const {
    static_assert(View::rank == 1, "allreduce on rank-1 Views");
    auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), view);
    allreduce_inplace(host.data(), host.extent(0), op);
    Kokkos::deep_copy(view, host);
  }
  template <class View, std::enable_if_t<Kokkos::is_view<View>::value, int> = 0>
  void bcast(const View& view, int root) const {
    auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), view);
    bcast(host.data(), host.span(), root);
    Kokkos::deep_copy(view, host);
  }
  // Every rank's rank-1 View concatenated in rank order, as a host View on every rank.
  template <class View, std::enable_if_t<Kokkos::is_view<View>::value, int> = 0>
  Kokkos::View<typename View::non_const_value_type*, Kokkos::HostSpace> allgatherv(const View& view) const {
    auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), view);
    std::vector<typename View::non_const_value_type> local(host.data(), host.data() + host.extent(0));
    const auto all = allgatherv(local);
    Kokkos::View<typename View::non_const_value_type*, Kokkos::HostSpace> result("allgatherv", all.size());
    for (std::size_t i = 0; i < all.size(); ++i) result(i) = all[i];
    return result;
  }

 private:
  static int chunk(std::size_t remaining) {
    constexpr std::size_t max_count = 1u << 30;  // stay clear of MPI's int counts
    return static_cast<int>(remaining < max_count ? remaining : max_count);
  }
  void bcast_bytes(void* data, std::size_t bytes, int root) const;
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

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace skein::comm
