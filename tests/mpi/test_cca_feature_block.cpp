// DenseFeatureBlock against naive loops over the standardised matrix: column statistics, multiply and
// transpose_multiply on row subsets (repeats, any order, wider than one column slab), full_cross, at 1-3
// ranks with each rank holding its BlockPartition columns.
// skein-test-ranks: 1 2 3
#include "comm/block_partition.hpp"
#include "comm/communicator.hpp"
#include "comm/view_collectives.hpp"
#include "engine/random.hpp"
#include "solvers/feature_block.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

using skein::comm::Communicator;
using namespace skein::solvers;

namespace {

using Matrix = Kokkos::View<double**, Kokkos::LayoutRight>;

// Raw value of global entry (i, j): offset and spread differ per column, a few columns constant.
double raw_value(std::int64_t i, std::int64_t j, std::int64_t p) {
  if (j % 997 == 5) return 3.0;
  return 2.0 + 0.1 * j + (1.0 + (j % 3)) * skein::engine::standard_normal(7, 1u, i * p + j);
}

struct Fixture {
  std::int64_t n, p, first, local;
  Matrix values;
  std::vector<double> mean, inv;  // global statistics, by direct computation
  double standardized(std::int64_t i, std::int64_t j, bool scale) const {
    return (raw_value(i, j, p) - mean[j]) * (scale ? inv[j] : 1.0);
  }
};

Fixture make(const Communicator& comm, std::int64_t n, std::int64_t p) {
  Fixture f{n, p, 0, 0, Matrix(), {}, {}};
  const auto range = skein::comm::BlockPartition(p, comm.size()).range(comm.rank());
  f.first = static_cast<std::int64_t>(range.begin);
  f.local = static_cast<std::int64_t>(range.size());
  f.values = Matrix("values", n, f.local);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < f.local; ++j) f.values(i, j) = raw_value(i, f.first + j, p);
  f.mean.assign(p, 0.0);
  f.inv.assign(p, 1.0);
  for (std::int64_t j = 0; j < p; ++j) {
    double s = 0, ss = 0;
    for (std::int64_t i = 0; i < n; ++i) s += raw_value(i, j, p);
    f.mean[j] = s / n;
    for (std::int64_t i = 0; i < n; ++i) ss += std::pow(raw_value(i, j, p) - f.mean[j], 2);
    const double sd = std::sqrt(ss / n);
    f.inv[j] = sd > 1e-12 ? 1.0 / sd : 1.0;
  }
  return f;
}

void check_block(const Communicator& comm, bool scale) {
  const std::int64_t n = 37, p = 2 * 2048 + 300, k = 3;
  const Fixture f = make(comm, n, p);
  DenseFeatureBlock<double> block(f.values, f.first, scale ? Standardize::scale : Standardize::center);
  EXPECT_EQ(block.rows(), n);
  EXPECT_EQ(block.columns(), f.local);
  for (std::int64_t j = 0; j < f.local; ++j) {
    EXPECT_NEAR(block.means()(j), f.mean[f.first + j], 1e-12);
    EXPECT_NEAR(block.inverse_scales()(j), scale ? f.inv[f.first + j] : 1.0, 1e-9);
  }
  // Rows: a subset in scrambled order with one repeat.
  std::vector<std::int64_t> pick = {5, 0, 36, 12, 5, 20, 33, 1};
  Kokkos::View<std::int64_t*> rows("rows", pick.size());
  for (std::size_t i = 0; i < pick.size(); ++i) rows(i) = pick[i];
  const std::int64_t b = static_cast<std::int64_t>(pick.size());
  Matrix U("U", f.local, k), Z("Z", b, k), G("G", b, k), out("out", f.local, k);
  for (std::int64_t j = 0; j < f.local; ++j)
    for (std::int64_t c = 0; c < k; ++c)
      U(j, c) = skein::engine::standard_normal(3, 2u, (f.first + j) * k + c);
  for (std::int64_t i = 0; i < b; ++i)
    for (std::int64_t c = 0; c < k; ++c) {
      G(i, c) = skein::engine::standard_normal(3, 3u, i * k + c);
      Z(i, c) = 1.0;  // multiply adds
    }
  block.multiply(rows, U, Z);
  comm.allreduce(Z, skein::comm::Op::sum);
  block.transpose_multiply(rows, G, out);
  for (std::int64_t i = 0; i < b; ++i)
    for (std::int64_t c = 0; c < k; ++c) {
      double expect = comm.size();  // every rank added its 1.0 start value
      for (std::int64_t j = 0; j < p; ++j)
        expect += f.standardized(pick[i], j, scale) * skein::engine::standard_normal(3, 2u, j * k + c);
      EXPECT_NEAR(Z(i, c), expect, 1e-9 * (1 + std::abs(expect)));
    }
  for (std::int64_t j = 0; j < f.local; ++j)
    for (std::int64_t c = 0; c < k; ++c) {
      double expect = 0;
      for (std::int64_t i = 0; i < b; ++i) expect += f.standardized(pick[i], f.first + j, scale) * G(i, c);
      EXPECT_NEAR(out(j, c), expect, 1e-10 * (1 + std::abs(expect)));
    }
  // full_cross against all rows of a random Y.
  const std::int64_t q = 4;
  Matrix Y("Y", n, q), cross("cross", f.local, q);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t c = 0; c < q; ++c) Y(i, c) = skein::engine::standard_normal(3, 4u, i * q + c);
  block.full_cross(Y, cross);
  for (std::int64_t j = 0; j < f.local; ++j)
    for (std::int64_t c = 0; c < q; ++c) {
      double expect = 0;
      for (std::int64_t i = 0; i < n; ++i) expect += f.standardized(i, f.first + j, scale) * Y(i, c);
      EXPECT_NEAR(cross(j, c), expect, 1e-10 * (1 + std::abs(expect)));
    }
}

TEST(DenseFeatureBlock, CentredProductsMatchNaiveLoops) {
  Communicator comm(MPI_COMM_WORLD);
  check_block(comm, false);
}

TEST(DenseFeatureBlock, ScaledProductsMatchNaiveLoops) {
  Communicator comm(MPI_COMM_WORLD);
  check_block(comm, true);
}

TEST(DenseFeatureBlock, StatisticsFromGivenRows) {
  Communicator comm(MPI_COMM_WORLD);
  const Fixture f = make(comm, 37, 50);
  Kokkos::View<std::int64_t*> rows("rows", 3);
  rows(0) = 4;
  rows(1) = 30;
  rows(2) = 9;
  DenseFeatureBlock<double> block(f.values, f.first, Standardize::scale, rows);
  for (std::int64_t j = 0; j < f.local; ++j) {
    const double a = raw_value(4, f.first + j, 50), b = raw_value(30, f.first + j, 50),
                 c = raw_value(9, f.first + j, 50);
    const double mean = (a + b + c) / 3;
    const double sd =
        std::sqrt(((a - mean) * (a - mean) + (b - mean) * (b - mean) + (c - mean) * (c - mean)) / 3);
    EXPECT_NEAR(block.means()(j), mean, 1e-12);
    EXPECT_NEAR(block.inverse_scales()(j), sd > 1e-12 ? 1 / sd : 1.0, 1e-9);
  }
}

}  // namespace
