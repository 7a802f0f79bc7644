// The reference for the solvers' normal fills: standard_normal over a range of global indices, computed in
// Kokkos' default execution space as the fills are.
#pragma once

#include "engine/random.hpp"

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <vector>

namespace skein_test {

// standard_normal(seed, stream, first + i) for i < count. Computed where the fills run because a GPU's log
// and cos may round the last bit differently from the host's (seen on an H200); what a fill test checks is
// which global index each element draws, which must hold bit for bit on any backend.
inline std::vector<double> device_normals(std::uint64_t seed, skein::engine::StreamId stream,
                                          std::uint64_t first, std::size_t count) {
  Kokkos::View<double*> values("device_normals", count);
  Kokkos::parallel_for(
      "device_normals", Kokkos::RangePolicy<>(0, count), KOKKOS_LAMBDA(const std::size_t i) {
        values(i) = skein::engine::standard_normal(seed, stream, first + i);
      });
  const auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), values);
  return std::vector<double>(host.data(), host.data() + count);
}

}  // namespace skein_test
