// Test helpers for the DCDM network: keyed fields on a decomposition's owned cells, read back on the host.
#pragma once

#include "comm/cartesian.hpp"
#include "engine/random.hpp"
#include "solvers/poisson_operator.hpp"

#include <Kokkos_Core.hpp>

#include <array>
#include <cstdint>

namespace skein::test {

// A standard normal value per global cell (keyed by seed), on the owned cells; ghosts stay 0.
inline solvers::PoissonField keyed_field(const comm::CartDecomposition& d, std::uint64_t seed) {
  solvers::PoissonField f("keyed", d.owned().extent[0] + 2, d.owned().extent[1] + 2, d.owned().extent[2] + 2);
  auto host = Kokkos::create_mirror_view(f);
  const auto box = d.owned();
  const auto g = d.global_extent();
  for (std::int64_t i = 0; i < box.extent[0]; ++i)
    for (std::int64_t j = 0; j < box.extent[1]; ++j)
      for (std::int64_t k = 0; k < box.extent[2]; ++k) {
        const std::int64_t id = ((box.offset[0] + i) * g[1] + box.offset[1] + j) * g[2] + box.offset[2] + k;
        host(i + 1, j + 1, k + 1) = engine::standard_normal(seed, 77u, static_cast<std::uint64_t>(id));
      }
  Kokkos::deep_copy(f, host);
  return f;
}

inline solvers::PoissonField zero_field(const comm::CartDecomposition& d) {
  return solvers::PoissonField("zero", d.owned().extent[0] + 2, d.owned().extent[1] + 2,
                               d.owned().extent[2] + 2);
}

}  // namespace skein::test
