// comm.reproducible for the CCA solvers: a view's columns in fixed groups (their width a function of the
// view's width only), ranks owning whole groups, each group's partial product computed the same way by
// whichever rank owns it and the partials added exactly (comm/exact_sum.hpp): the same bits at any rank
// count.
#pragma once

#include "comm/block_partition.hpp"
#include "comm/communicator.hpp"
#include "comm/exact_sum.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace skein::solvers::cca {

// Groups per view the width aims at: enough for that many ranks to own some, few enough that a group's
// BLAS call is not all overhead.
constexpr std::int64_t kTargetGroups = 256;

// The group width for a view of p columns: the smallest power of two >= p / kTargetGroups, within
// [16, 2048] (a multiple of 4 for packed genotypes, a divisor of DenseFeatureBlock::column_slab).
inline std::int64_t group_columns(std::int64_t p) {
  std::int64_t g = 16;
  while (g < 2048 && g * kTargetGroups < p) g *= 2;
  return g;
}

// Rank `rank`'s columns of a p-column view under comm.reproducible: whole groups, block-partitioned.
inline comm::IndexRange grouped_columns(std::int64_t p, int ranks, int rank) {
  const std::int64_t g = group_columns(p);
  const std::int64_t groups = (p + g - 1) / g;
  const comm::IndexRange mine = comm::BlockPartition(static_cast<std::uint64_t>(groups), ranks).range(rank);
  return {std::min<std::uint64_t>(mine.begin * g, p), std::min<std::uint64_t>(mine.end * g, p)};
}

// The number of local groups of a block (columns() columns from first_column(), whole groups).
template <class Block>
std::int64_t local_groups(const Block& block, std::int64_t group) {
  return (block.columns() + group - 1) / group;
}

// Each local group's Xs[rows, group] U[group] (b x k, row-major) into terms rows [0, groups) at column
// offset `at` of a row-major table of `length` columns.
template <class Block, class Matrix>
void add_group_products(const Block& block, Kokkos::View<const std::int64_t*> rows, const Matrix& u,
                        std::int64_t group, std::vector<double>& terms, std::size_t length, std::size_t at) {
  using Scalar = typename Block::scalar_type;
  const std::int64_t groups = local_groups(block, group);
  const auto b = static_cast<std::int64_t>(rows.extent(0)), k = static_cast<std::int64_t>(u.extent(1));
  if (groups == 0 || b == 0) return;
  Kokkos::View<Scalar***, Kokkos::LayoutRight> z("cca::group_products", groups, b, k);
  block.multiply_groups(rows, u, group, z);
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), z);
  for (std::int64_t g = 0; g < groups; ++g)
    for (std::int64_t r = 0; r < b; ++r)
      for (std::int64_t c = 0; c < k; ++c) terms[g * length + at + r * k + c] = h(g, r, c);
}

// Each local group's U[group]^T U[group] (k x k, row-major, added row by row in order) into terms rows
// [0, groups) at column offset `at`. u: a host-readable copy of this rank's rows of U.
template <class HostMatrix>
void add_group_grams(const HostMatrix& u, std::int64_t group, std::vector<double>& terms, std::size_t length,
                     std::size_t at) {
  const auto rows = static_cast<std::int64_t>(u.extent(0)), k = static_cast<std::int64_t>(u.extent(1));
  for (std::int64_t r = 0; r < rows; ++r) {
    double* out = terms.data() + (r / group) * length + at;
    for (std::int64_t i = 0; i < k; ++i)
      for (std::int64_t j = 0; j < k; ++j) out[i * k + j] += static_cast<double>(u(r, i)) * u(r, j);
  }
}

// Each local group's sum of squares of a column vector's entries (host copy) into terms rows at `at`.
template <class HostMatrix>
void add_group_squares(const HostMatrix& v, std::int64_t group, std::vector<double>& terms,
                       std::size_t length, std::size_t at) {
  for (std::int64_t r = 0; r < static_cast<std::int64_t>(v.extent(0)); ++r)
    terms[(r / group) * length + at] += static_cast<double>(v(r, 0)) * v(r, 0);
}

// result = the exact column sums of every rank's `rows` x length table (comm::exact_sum_columns).
inline std::vector<double> exact_group_sum(const comm::Communicator& comm, const std::vector<double>& terms,
                                           std::size_t length) {
  std::vector<double> result(length, 0.0);
  comm::exact_sum_columns(comm, length, length == 0 ? 0 : terms.size() / length, terms.data(), result.data());
  return result;
}

}  // namespace skein::solvers::cca
