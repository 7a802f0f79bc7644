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
#include <memory>
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

// Raw values of the statistics test: constant columns whose value no sum of copies divided by n gives back
// exactly (0.1, 0.7, 2.2), a column far from zero (1e6 + noise), one whose first row is an outlier (the
// variance's shift), and plain noise.
double constant_test_value(std::int64_t i, std::int64_t j) {
  switch (j) {
    case 0:
      return 0.1;
    case 1:
      return 0.7;
    case 2:
      return 2.2;
    case 3:
      return 1e6 + skein::engine::standard_normal(9, 1u, i);
    case 4:
      return i == 0 ? 50.0 : skein::engine::standard_normal(9, 2u, i);
    default:
      return skein::engine::standard_normal(9, 3u, i * 8 + j);
  }
}

// A FeatureSource over a View: the streamed block's code path without a file.
class ViewSource final : public FeatureSource<double> {
 public:
  explicit ViewSource(Matrix values) : values_(values) {}
  std::int64_t rows() const override { return static_cast<std::int64_t>(values_.extent(0)); }
  std::int64_t columns() const override { return static_cast<std::int64_t>(values_.extent(1)); }
  void read(const std::vector<std::int64_t>& rows, std::int64_t c0, std::int64_t c1,
            HostMatrix out) const override {
    for (std::size_t i = 0; i < rows.size(); ++i)
      for (std::int64_t j = c0; j < c1; ++j) out(i, j - c0) = values_(rows[i], j);
  }

 private:
  Matrix values_;
};

// The one-pass (shifted) variance: a constant column has inverse scale exactly 1 and standardises to zeros
// (the sum of n copies of 0.1 over n is not 0.1, and squared deviations from that mean gave a standard
// deviation of ~1e-16 that scaled rounding noise up to O(1)); the others match the two-pass form, held in
// memory and streamed alike (bit-identical), over more than one statistics piece.
TEST(DenseFeatureBlock, ConstantColumnsAndShiftedVariance) {
  Communicator comm(MPI_COMM_WORLD);
  const std::int64_t n = 1500, p = 6;  // two statistics pieces of at most row_slab rows
  const auto range = skein::comm::BlockPartition(p, comm.size()).range(comm.rank());
  const auto first = static_cast<std::int64_t>(range.begin), local = static_cast<std::int64_t>(range.size());
  Matrix values("values", n, local);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < local; ++j) values(i, j) = constant_test_value(i, first + j);
  DenseFeatureBlock<double> memory(values, first, Standardize::scale);
  DenseFeatureBlock<double> streamed(std::make_shared<ViewSource>(values), first, Standardize::scale);
  for (std::int64_t j = 0; j < local; ++j) {
    EXPECT_EQ(memory.means()(j), streamed.means()(j)) << first + j;
    EXPECT_EQ(memory.inverse_scales()(j), streamed.inverse_scales()(j)) << first + j;
    if (first + j < 3) {
      EXPECT_EQ(memory.inverse_scales()(j), 1.0) << first + j;
      continue;
    }
    double sum = 0, squares = 0;
    for (std::int64_t i = 0; i < n; ++i) sum += values(i, j);
    const double mean = sum / n;
    for (std::int64_t i = 0; i < n; ++i) squares += (values(i, j) - mean) * (values(i, j) - mean);
    const double inverse = 1 / std::sqrt(squares / n);
    EXPECT_NEAR(memory.inverse_scales()(j), inverse, 1e-11 * inverse) << first + j;
  }
  // The standardised values themselves: full_cross against the identity (out(j, i) = Xs(i, j)).
  Matrix identity("identity", n, n), out("out", local, n);
  for (std::int64_t i = 0; i < n; ++i) identity(i, i) = 1.0;
  for (const auto* block : {&memory, &streamed}) {
    block->full_cross(identity, out);
    for (std::int64_t j = 0; j < local && first + j < 3; ++j)
      for (std::int64_t i = 0; i < n; ++i) ASSERT_LE(std::abs(out(j, i)), 1e-12) << first + j << " " << i;
  }
}

}  // namespace
