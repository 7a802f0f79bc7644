// The Communicator's members on Kokkos Views (allreduce, bcast, allgatherv, isend, irecv): the part of
// comm/communicator.hpp that needs Kokkos, so that code which communicates no View builds without it.
#pragma once

#include "comm/communicator.hpp"

#include <Kokkos_Core.hpp>

#include <memory>
#include <type_traits>
#include <vector>

namespace skein::comm::detail {

template <class View>
constexpr bool host_accessible =
    Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename View::memory_space>::accessible;

// The stream of the default execution space instance, where device collectives are enqueued (nullptr, the
// default stream, on host-only Kokkos, where no View reaches the device backend).
inline void* execution_space_stream() {
#if defined(KOKKOS_ENABLE_CUDA)
  if constexpr (std::is_same_v<Kokkos::DefaultExecutionSpace, Kokkos::Cuda>) {
    return static_cast<void*>(Kokkos::DefaultExecutionSpace().cuda_stream());
  }
#endif
  return nullptr;
}

template <class View, class Enable>
struct ViewCollectives {
  static_assert(Kokkos::is_view<View>::value, "Communicator's View members take Kokkos Views");
  using T = typename View::non_const_value_type;
  using Flat = Kokkos::View<T*, Kokkos::LayoutRight, typename View::memory_space,
                            Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  using HostFlat =
      Kokkos::View<T*, Kokkos::LayoutRight, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

  // Host memory to stage `bytes` of device data through: pinned (page-locked, so copies run at full speed
  // and MPI need not pin again) on CUDA, owned by the communicator and reused, so a warm call allocates
  // nothing.
  static void* pinned_staging(const Communicator& comm, std::size_t bytes) {
#if defined(KOKKOS_ENABLE_CUDA)
    if (comm.pinned_staging_bytes_ < bytes) {
      using Pinned = Kokkos::View<char*, Kokkos::CudaHostPinnedSpace>;
      auto buffer =
          std::make_shared<Pinned>(Kokkos::view_alloc(Kokkos::WithoutInitializing, "skein_staging"), bytes);
      comm.pinned_staging_ = std::shared_ptr<void>(buffer, buffer->data());
      comm.pinned_staging_bytes_ = bytes;
    }
    return comm.pinned_staging_.get();
#else
    return comm.staging(bytes);
#endif
  }

  static void allreduce(const Communicator& comm, const View& view, Op op) {
    static_assert(std::is_same_v<typename View::value_type, T>, "allreduce needs a non-const View");
    static_assert(std::is_arithmetic_v<T>);
    Communicator::require_contiguous(view.span_is_contiguous(), "allreduce");
    Kokkos::fence();
    const std::size_t count = view.span();
    if constexpr (host_accessible<View>) {
      comm.allreduce_inplace(view.data(), count, op);
    } else if (const auto& device = comm.device_backend()) {
      device->allreduce(view.data(), count, device_type<T>(), op, execution_space_stream());
    } else if (comm.gpu_aware()) {
      comm.allreduce_inplace(view.data(), count, op);
    } else {
      Flat flat(view.data(), count);
      HostFlat host(static_cast<T*>(pinned_staging(comm, count * sizeof(T))), count);
      Kokkos::deep_copy(host, flat);
      comm.allreduce_inplace(host.data(), count, op);
      Kokkos::deep_copy(flat, host);
      Kokkos::fence();
    }
  }

  static void bcast(const Communicator& comm, const View& view, int root) {
    Kokkos::fence();
    if constexpr (!host_accessible<View>) {
      if (view.span_is_contiguous() && (comm.device_backend() || comm.gpu_aware())) {
        if (const auto& device = comm.device_backend()) {
          // As bytes: a broadcast needs no arithmetic type.
          device->bcast(view.data(), view.span() * sizeof(T), DeviceType::u8, root, execution_space_stream());
        } else {
          comm.bcast(view.data(), view.span(), root);
        }
        return;
      }
    }
    auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), view);
    comm.bcast(host.data(), host.span(), root);
    Kokkos::deep_copy(view, host);
  }

  static Kokkos::View<T*, Kokkos::HostSpace> allgatherv(const Communicator& comm, const View& view) {
    if constexpr (!host_accessible<View>) {
      // Equal shares (the usual case: one block per rank) go through the device backend in one call.
      if (const auto& device = comm.device_backend()) {
        const std::uint64_t local = view.extent(0);
        const bool equal = comm.allreduce(local, Op::min) == comm.allreduce(local, Op::max);
        if (equal && view.span_is_contiguous()) {
          Kokkos::fence();
          Kokkos::View<T*, typename View::memory_space> all(
              Kokkos::view_alloc(Kokkos::WithoutInitializing, "allgatherv"), local * comm.size());
          device->allgather(view.data(), all.data(), local * sizeof(T), DeviceType::u8,
                            execution_space_stream());
          Kokkos::View<T*, Kokkos::HostSpace> result(
              Kokkos::view_alloc(Kokkos::WithoutInitializing, "allgatherv"), all.extent(0));
          Kokkos::deep_copy(result, all);
          return result;
        }
      }
    }
    auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), view);
    std::vector<T> local(host.data(), host.data() + host.extent(0));
    const auto all = comm.allgatherv(local);
    Kokkos::View<T*, Kokkos::HostSpace> result("allgatherv", all.size());
    for (std::size_t i = 0; i < all.size(); ++i) result(i) = all[i];
    return result;
  }

  static Request isend(const Communicator& comm, const View& view, int destination, int tag) {
    static_assert(host_accessible<View>, "isend needs host-accessible memory; stage device Views");
    Communicator::require_contiguous(view.span_is_contiguous(), "isend");
    Kokkos::fence();
    return comm.isend(view.data(), view.span(), destination, tag, std::make_shared<const View>(view));
  }

  static Request irecv(const Communicator& comm, const View& view, int source, int tag) {
    static_assert(host_accessible<View>, "irecv needs host-accessible memory; stage device Views");
    static_assert(!std::is_const_v<typename View::value_type>, "irecv needs a non-const View");
    Communicator::require_contiguous(view.span_is_contiguous(), "irecv");
    return comm.irecv(view.data(), view.span(), source, tag, std::make_shared<const View>(view));
  }
};

}  // namespace skein::comm::detail
