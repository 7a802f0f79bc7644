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

template <class View, class Enable>
struct ViewCollectives {
  static_assert(Kokkos::is_view<View>::value, "Communicator's View members take Kokkos Views");
  using T = typename View::non_const_value_type;

  static void allreduce(const Communicator& comm, const View& view, Op op) {
    static_assert(std::is_same_v<typename View::value_type, T>, "allreduce needs a non-const View");
    static_assert(std::is_arithmetic_v<T>);
    Communicator::require_contiguous(view.span_is_contiguous(), "allreduce");
    Kokkos::fence();
    const std::size_t count = view.span();
    if constexpr (host_accessible<View>) {
      comm.allreduce_inplace(view.data(), count, op);
    } else {
      using Flat = Kokkos::View<T*, Kokkos::LayoutRight, typename View::memory_space,
                                Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
      using HostFlat =
          Kokkos::View<T*, Kokkos::LayoutRight, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
      Flat flat(view.data(), count);
      HostFlat host(static_cast<T*>(comm.staging(count * sizeof(T))), count);
      Kokkos::deep_copy(host, flat);
      comm.allreduce_inplace(host.data(), count, op);
      Kokkos::deep_copy(flat, host);
      Kokkos::fence();
    }
  }

  static void bcast(const Communicator& comm, const View& view, int root) {
    Kokkos::fence();
    auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), view);
    comm.bcast(host.data(), host.span(), root);
    Kokkos::deep_copy(view, host);
  }

  static Kokkos::View<T*, Kokkos::HostSpace> allgatherv(const Communicator& comm, const View& view) {
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
