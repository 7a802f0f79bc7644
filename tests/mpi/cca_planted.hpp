// Planted two-view data for the CCA solver tests: a few shared latent factors with decreasing strength
// plus noise, every entry keyed by its global index (rank-count independent), held as DenseFeatureBlocks
// of this rank's BlockPartition columns.
#pragma once

#include "comm/block_partition.hpp"
#include "comm/communicator.hpp"
#include "engine/random.hpp"
#include "solvers/feature_block.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

namespace cca_test {

using Matrix = Kokkos::View<double**, Kokkos::LayoutRight>;
using Block = skein::solvers::DenseFeatureBlock<double>;

struct PlantedSpec {
  std::int64_t n = 2000, p = 60, q = 40;
  int latent = 5;         // shared factors; factor l has loading scale strength * decay^l
  double strength = 1.0;  // signal loading scale
  double decay = 0.75;
  double noise = 1.0;
  std::uint64_t seed = 11;
};

// Raw entry (i, j) of view v (0 = x, 1 = y): sum_l s_l(i) a_v(j, l) + noise e_v(i, j), plus an offset
// and per-column scale so that standardisation matters.
inline double planted_value(const PlantedSpec& s, int view, std::int64_t i, std::int64_t j) {
  using skein::engine::standard_normal;
  const std::int64_t width = view == 0 ? s.p : s.q;
  double value = 0;
  for (int l = 0; l < s.latent; ++l) {
    const double factor = standard_normal(s.seed, 10u, static_cast<std::uint64_t>(i * s.latent + l));
    const double loading = standard_normal(s.seed, 11u + view, static_cast<std::uint64_t>(j * s.latent + l));
    value += s.strength * std::pow(s.decay, l) * factor * loading;
  }
  value += s.noise * standard_normal(s.seed, 13u + view, static_cast<std::uint64_t>(i * width + j));
  return 1.0 + 0.01 * j + (1.0 + 0.1 * (j % 5)) * value;
}

// This rank's columns of both views, and the blocks over them (the blocks refer to the Views held here).
struct PlantedViews {
  PlantedSpec spec;
  std::int64_t first_x = 0, first_y = 0;
  Matrix x_values, y_values;
  std::unique_ptr<Block> x, y;
};

inline std::unique_ptr<PlantedViews> make_planted(
    const skein::comm::Communicator& comm, const PlantedSpec& s,
    skein::solvers::Standardize standardize = skein::solvers::Standardize::scale) {
  auto out = std::make_unique<PlantedViews>();
  out->spec = s;
  const auto rx = skein::comm::BlockPartition(s.p, comm.size()).range(comm.rank());
  const auto ry = skein::comm::BlockPartition(s.q, comm.size()).range(comm.rank());
  out->first_x = static_cast<std::int64_t>(rx.begin);
  out->first_y = static_cast<std::int64_t>(ry.begin);
  out->x_values = Matrix("x", s.n, rx.size());
  out->y_values = Matrix("y", s.n, ry.size());
  // Filled on the host and copied: on a GPU build the Views live in device memory.
  auto x_host = Kokkos::create_mirror_view(out->x_values);
  auto y_host = Kokkos::create_mirror_view(out->y_values);
  for (std::int64_t i = 0; i < s.n; ++i) {
    for (std::int64_t j = 0; j < static_cast<std::int64_t>(rx.size()); ++j)
      x_host(i, j) = planted_value(s, 0, i, out->first_x + j);
    for (std::int64_t j = 0; j < static_cast<std::int64_t>(ry.size()); ++j)
      y_host(i, j) = planted_value(s, 1, i, out->first_y + j);
  }
  Kokkos::deep_copy(out->x_values, x_host);
  Kokkos::deep_copy(out->y_values, y_host);
  out->x = std::make_unique<Block>(out->x_values, out->first_x, standardize);
  out->y = std::make_unique<Block>(out->y_values, out->first_y, standardize);
  return out;
}

inline Kokkos::View<std::int64_t*> make_rows(const std::vector<std::int64_t>& rows) {
  Kokkos::View<std::int64_t*> v("rows", rows.size());
  auto host = Kokkos::create_mirror_view(v);
  for (std::size_t i = 0; i < rows.size(); ++i) host(i) = rows[i];
  Kokkos::deep_copy(v, host);
  return v;
}

inline Kokkos::View<std::int64_t*> range_rows(std::int64_t begin, std::int64_t end) {
  std::vector<std::int64_t> r(static_cast<std::size_t>(end - begin));
  std::iota(r.begin(), r.end(), begin);
  return make_rows(r);
}

// Epoch `epoch`'s permutation of rows [0, n): sorted by random bits keyed by (seed, epoch * n + i).
inline std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed, std::int64_t epoch) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::vector<std::uint64_t> keys(order.size());
  for (std::int64_t i = 0; i < n; ++i)
    keys[i] = skein::engine::random_bits(seed, 20u, static_cast<std::uint64_t>(epoch * n + i));
  std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return keys[a] < keys[b]; });
  return order;
}

}  // namespace cca_test
