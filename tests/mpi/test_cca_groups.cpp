// comm.reproducible's column groups for CCA (solvers/cca_groups.hpp): ranks own whole groups that tile the
// columns; a group's multiply_groups product is the same bits whichever block holds it (a rank's block of
// many groups, or a block of that group alone, as another rank count would give), for dense and packed
// genotype blocks, and equals a naive product; the exact sum of the groups' products matches across ranks.
// skein-test-ranks: 1 3
#include "comm/communicator.hpp"
#include "engine/random.hpp"
#include "solvers/cca_groups.hpp"
#include "solvers/feature_block.hpp"
#include "solvers/genotype_block.hpp"

#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using skein::comm::Communicator;
using namespace skein::solvers;
using Matrix = Kokkos::View<double**, Kokkos::LayoutRight>;
using Grouped = Kokkos::View<double***, Kokkos::LayoutRight>;
using Rows = Kokkos::View<const std::int64_t*>;

constexpr std::int64_t kRows = 50, kK = 3;

double value(std::int64_t i, std::int64_t j) {
  return skein::engine::standard_normal(3, 1u, i * 1000 + j);
}
double weight(std::int64_t j, std::int64_t c) {
  return skein::engine::standard_normal(3, 2u, j * kK + c);
}
unsigned code(std::int64_t snp, std::int64_t sample) {
  return static_cast<unsigned>(skein::engine::uniform_open01(3, 3u, snp * 1000 + sample) * 4) & 3u;
}

Kokkos::View<std::int64_t*> batch() {
  Kokkos::View<std::int64_t*> rows("rows", 20);
  auto h = Kokkos::create_mirror_view(rows);
  for (std::int64_t i = 0; i < 20; ++i) h(i) = (7 * i + 3) % kRows;  // any order, a subset
  Kokkos::deep_copy(rows, h);
  return rows;
}

Matrix weights(std::int64_t first, std::int64_t count) {
  Matrix u("u", count, kK);
  for (std::int64_t j = 0; j < count; ++j)
    for (std::int64_t c = 0; c < kK; ++c) u(j, c) = weight(first + j, c);
  return u;
}

DenseFeatureBlock<double> dense_block(std::int64_t first, std::int64_t count) {
  Matrix values("values", kRows, count);
  for (std::int64_t i = 0; i < kRows; ++i)
    for (std::int64_t j = 0; j < count; ++j) values(i, j) = value(i, first + j);
  return DenseFeatureBlock<double>(values, first, Standardize::center);
}

GenotypeFeatureBlock<double> genotype_block(std::int64_t first, std::int64_t count) {
  Kokkos::View<std::uint8_t**, Kokkos::LayoutRight> packed("packed", count, (kRows + 3) / 4);
  for (std::int64_t j = 0; j < count; ++j)
    for (std::int64_t s = 0; s < kRows; ++s)
      packed(j, s / 4) = static_cast<std::uint8_t>(packed(j, s / 4) | (code(first + j, s) << (2 * (s % 4))));
  return GenotypeFeatureBlock<double>(packed, kRows, first);
}

bool same_bits(const Grouped& a, std::int64_t ga, const Grouped& b, std::int64_t gb) {
  return std::memcmp(&a(ga, 0, 0), &b(gb, 0, 0), sizeof(double) * a.extent(1) * a.extent(2)) == 0;
}

TEST(CcaGroups, RanksOwnWholeGroupsThatTileTheColumns) {
  EXPECT_EQ(cca::group_columns(10), 16);
  EXPECT_EQ(cca::group_columns(4096), 16);
  EXPECT_EQ(cca::group_columns(4097), 32);
  EXPECT_EQ(cca::group_columns(100'000'000), 2048);
  for (const std::int64_t p : {1, 15, 16, 17, 500, 70'000})
    for (const int ranks : {1, 2, 3, 7}) {
      const std::int64_t g = cca::group_columns(p);
      std::uint64_t next = 0;
      for (int r = 0; r < ranks; ++r) {
        const auto range = cca::grouped_columns(p, ranks, r);
        EXPECT_EQ(range.begin, next) << p << " " << ranks << " " << r;
        EXPECT_TRUE(range.begin % g == 0 || range.begin == static_cast<std::uint64_t>(p));
        next = range.end;
      }
      EXPECT_EQ(next, static_cast<std::uint64_t>(p));
    }
}

// A block of columns [16, 16 + 72) (groups of 16: four whole and one of 8) against a block of each group
// alone: the same bits; and against the naive product of the standardised values.
template <class Make>
void check_group_products(Make make, bool dense) {
  const std::int64_t g = 16, first = 16, count = 72, groups = 5;
  const auto rows = batch();
  const auto block = make(first, count);
  Grouped all("all", groups, 20, kK);
  block.multiply_groups(Rows(rows), weights(first, count), g, all);
  for (std::int64_t i = 0; i < groups; ++i) {
    const std::int64_t g0 = first + i * g, width = std::min(g, first + count - g0);
    const auto alone = make(g0, width);
    Grouped one("one", 1, 20, kK);
    alone.multiply_groups(Rows(rows), weights(g0, width), g, one);
    EXPECT_TRUE(same_bits(all, i, one, 0)) << "group " << i;
    // Naive: standardised column = raw minus its mean over all rows (dense) or its decoded value (genotype).
    Matrix z("z", 20, kK);
    alone.multiply(Rows(rows), weights(g0, width), z);
    for (std::int64_t r = 0; r < 20; ++r)
      for (std::int64_t c = 0; c < kK; ++c) {
        double expected = 0;
        for (std::int64_t j = g0; j < g0 + width; ++j) {
          double x;
          if (dense) {
            double mean = 0;
            for (std::int64_t s = 0; s < kRows; ++s) mean += value(s, j);
            x = value(rows(r), j) - mean / kRows;
          } else {
            double a2 = 0, seen = 0;
            for (std::int64_t s = 0; s < kRows; ++s) {
              const unsigned k = code(j, s);
              if (k == 1) continue;
              seen += 1;
              a2 += k == 0 ? 0 : k == 2 ? 1 : 2;
            }
            const unsigned k = code(j, rows(r));
            x = k == 1 ? 0.0 : (k == 0 ? 0 : k == 2 ? 1 : 2) - a2 / seen;
          }
          expected += x * weight(j, c);
        }
        EXPECT_NEAR(all(i, r, c), expected, 1e-12 * (1 + std::abs(expected))) << i << " " << r << " " << c;
        EXPECT_NEAR(z(r, c), expected, 1e-12 * (1 + std::abs(expected)));
      }
  }
}

TEST(CcaGroups, DenseGroupProductsDoNotDependOnTheBlockHoldingThem) {
  check_group_products(dense_block, true);
}

TEST(CcaGroups, GenotypeGroupProductsDoNotDependOnTheBlockHoldingThem) {
  check_group_products(genotype_block, false);
}

// The groups' products summed exactly over this rank count's ranks equal the 1-rank sum of every group.
TEST(CcaGroups, ExactSumOfGroupProductsIsTheSameAtAnyRankCount) {
  const Communicator comm(MPI_COMM_WORLD), self(MPI_COMM_SELF);
  const std::int64_t p = 100, g = cca::group_columns(p);
  const auto range = cca::grouped_columns(p, comm.size(), comm.rank());
  const auto first = static_cast<std::int64_t>(range.begin), count = static_cast<std::int64_t>(range.size());
  const auto rows = batch();
  const std::size_t length = 20 * kK;
  const auto sum_of = [&](const Communicator& c, std::int64_t f, std::int64_t n) {
    const auto block = dense_block(f, n);
    std::vector<double> terms(static_cast<std::size_t>(cca::local_groups(block, g)) * length, 0.0);
    cca::add_group_products(block, Rows(rows), weights(f, n), g, terms, length, 0);
    return cca::exact_group_sum(c, terms, length);
  };
  const auto spread = sum_of(comm, first, count);
  const auto whole = sum_of(self, 0, p);
  EXPECT_EQ(0, std::memcmp(spread.data(), whole.data(), length * sizeof(double)));
}

}  // namespace
