// Test helpers for Poisson fields: keyed uniform values and filling a decomposition's owned cells from a
// function of the global cell index (the same field at any rank count).
#pragma once

#include "comm/cartesian.hpp"

#include <Kokkos_Core.hpp>

#include <cstdint>

namespace skein::test {

inline std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
// Uniform in [-1, 1), keyed by (seed, global cell): the same field at any rank count.
inline double uniform(std::uint64_t seed, std::uint64_t cell) {
  return static_cast<double>(mix(mix(seed) ^ cell) >> 11) * 0x1.0p-52 - 1.0;
}

// Owned cells of `field` (ghost width 1) from a function of the global index, through a host mirror.
template <class View, class Fn>
void fill(const comm::CartDecomposition& d, const View& field, Fn fn) {
  auto host = Kokkos::create_mirror_view(field);
  Kokkos::deep_copy(host, field);
  const auto owned = d.owned();
  for (std::int64_t i = 0; i < owned.extent[0]; ++i)
    for (std::int64_t j = 0; j < owned.extent[1]; ++j)
      for (std::int64_t k = 0; k < owned.extent[2]; ++k)
        host(i + 1, j + 1, k + 1) = fn(owned.offset[0] + i, owned.offset[1] + j, owned.offset[2] + k);
  Kokkos::deep_copy(field, host);
}

}  // namespace skein::test
