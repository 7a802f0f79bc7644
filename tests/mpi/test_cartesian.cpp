// CartDecomposition: every cell owned exactly once, neighbours, non-cubic and fixed dims, coarsening, errors.
// skein-test-ranks: 1 2 3 4
#include "comm/block_partition.hpp"
#include "comm/cartesian.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <vector>

using skein::comm::Box3;
using skein::comm::CartDecomposition;
using skein::comm::Communicator;
using skein::comm::Op;
using Extent = std::array<std::int64_t, 3>;
using Dims = std::array<int, 3>;

namespace {

// Every global cell is owned by exactly one rank; owned_by and the neighbours agree with what each rank owns.
void expect_exact_cover(const CartDecomposition& d) {
  const Communicator& comm = d.comm();
  const Extent g = d.global_extent();
  std::vector<int> count(static_cast<std::size_t>(g[0] * g[1] * g[2]), 0);
  const Box3 mine = d.owned();
  for (std::int64_t i = mine.offset[0]; i < mine.end(0); ++i)
    for (std::int64_t j = mine.offset[1]; j < mine.end(1); ++j)
      for (std::int64_t k = mine.offset[2]; k < mine.end(2); ++k)
        ++count[static_cast<std::size_t>((i * g[1] + j) * g[2] + k)];
  comm.allreduce_inplace(count.data(), count.size(), Op::sum);
  EXPECT_EQ(std::count(count.begin(), count.end(), 1), static_cast<std::ptrdiff_t>(count.size()))
      << "grid " << g[0] << "x" << g[1] << "x" << g[2];

  const auto all = comm.allgather(mine);
  std::int64_t smallest = g[0];
  for (int r = 0; r < comm.size(); ++r) {
    EXPECT_EQ(d.owned_by(r), all[static_cast<std::size_t>(r)]);
    for (int a = 0; a < 3; ++a) smallest = std::min(smallest, all[static_cast<std::size_t>(r)].extent[a]);
  }
  EXPECT_EQ(d.min_owned_extent(), smallest);

  const Dims dims = d.dims(), coords = d.coords();
  EXPECT_EQ(dims[0] * dims[1] * dims[2], comm.size());
  for (int a = 0; a < 3; ++a) {
    for (const int direction : {-1, 1}) {
      const int n = d.neighbor(a, direction);
      const int c = coords[a] + direction;
      if (c < 0 || c >= dims[a]) {
        EXPECT_EQ(n, -1);
        continue;
      }
      ASSERT_GE(n, 0);
      const Box3 theirs = d.owned_by(n);
      for (int b = 0; b < 3; ++b) {
        if (b == a) continue;
        EXPECT_EQ(theirs.offset[b], mine.offset[b]);
        EXPECT_EQ(theirs.extent[b], mine.extent[b]);
      }
      if (direction > 0) {
        EXPECT_EQ(theirs.offset[a], mine.end(a));
      } else {
        EXPECT_EQ(theirs.end(a), mine.offset[a]);
      }
    }
  }
}

std::vector<std::pair<Extent, Dims>> cases(int size) {
  std::vector<std::pair<Extent, Dims>> result = {
      {{7, 5, 3}, {0, 0, 0}}, {{13, 1, 9}, {0, 0, 0}}, {{7, 5, 3}, {size, 1, 1}}, {{5, 9, 4}, {1, 0, 1}},
      {{6, 7, 5}, {1, 1, 0}}, {{4, 11, 6}, {0, 0, 1}}, {{64, 3, 17}, {0, 0, 0}},  {{1, 1, 100}, {0, 0, 0}},
  };
  if (size % 2 == 0) result.push_back({{9, 5, 7}, {2, 0, 0}});
  return result;
}

}  // namespace

TEST(CartDecomposition, CoversEveryCellOnceForUnevenGridsAndFixedDims) {
  const Communicator world(MPI_COMM_WORLD);
  for (const auto& [extent, dims] : cases(world.size())) {
    const CartDecomposition d(world, extent, dims);
    EXPECT_EQ(d.global_extent(), extent);
    EXPECT_EQ(d.comm().size(), world.size());
    EXPECT_EQ(d.comm().rank(), world.rank());  // reorder = false
    for (int a = 0; a < 3; ++a) {
      if (dims[a] > 0) {
        EXPECT_EQ(d.dims()[a], dims[a]);
      }
      EXPECT_LE(d.dims()[a], extent[a]);
      // Each axis is cut by the even-share rule.
      const skein::comm::BlockPartition rule(static_cast<std::uint64_t>(extent[a]), d.dims()[a]);
      const auto range = rule.range(d.coords()[a]);
      EXPECT_EQ(d.owned().offset[a], static_cast<std::int64_t>(range.begin));
      EXPECT_EQ(d.owned().extent[a], static_cast<std::int64_t>(range.size()));
    }
    expect_exact_cover(d);
  }
}

TEST(CartDecomposition, ChoosesTheSmallestCutRespectingTheGridShape) {
  const Communicator world(MPI_COMM_WORLD);
  const int p = world.size();
  // A 1-cell axis is never split (plain MPI_Dims_create would give 2x2x1 at 4 ranks).
  EXPECT_EQ(CartDecomposition(world, {13, 1, 9}).dims()[1], 1);
  EXPECT_EQ(CartDecomposition(world, {1, 1, 100}).dims(), (Dims{1, 1, p}));
  // A cube gets MPI_Dims_create's balanced split.
  const Dims cube = CartDecomposition(world, {8, 8, 8}).dims();
  const Dims expected_cube[] = {{1, 1, 1}, {1, 1, 1}, {2, 1, 1}, {3, 1, 1}, {2, 2, 1}};
  EXPECT_EQ(cube, expected_cube[p]);
  // A flat slab is cut across its large axes.
  const Dims slab = CartDecomposition(world, {64, 64, 2}).dims();
  EXPECT_EQ(slab[2], 1);
}

TEST(CartDecomposition, CoarseningFollowsTheRuleAndCoversTheCoarseGrid) {
  const Communicator world(MPI_COMM_WORLD);
  for (const auto& [extent, dims] : cases(world.size())) {
    CartDecomposition fine(world, extent, dims);
    for (int level = 0; level < 8; ++level) {
      const CartDecomposition coarse = fine.coarsened();
      EXPECT_EQ(&coarse.comm(), &fine.comm());  // levels share one communicator
      EXPECT_EQ(coarse.dims(), fine.dims());
      EXPECT_EQ(coarse.coords(), fine.coords());
      for (int a = 0; a < 3; ++a) {
        EXPECT_EQ(coarse.global_extent()[a], (fine.global_extent()[a] + 1) / 2);
        const std::int64_t begin = fine.owned().offset[a], end = fine.owned().end(a);
        EXPECT_EQ(coarse.owned().offset[a], (begin + 1) / 2);
        EXPECT_EQ(coarse.owned().end(a), (end + 1) / 2);
        // The rule: coarse cell I belongs to the owner of fine cell 2I.
        for (std::int64_t I = coarse.owned().offset[a]; I < coarse.owned().end(a); ++I) {
          EXPECT_TRUE(2 * I >= begin && 2 * I < end);
        }
        EXPECT_EQ(coarse.neighbor(a, -1), fine.neighbor(a, -1));
        EXPECT_EQ(coarse.neighbor(a, 1), fine.neighbor(a, 1));
      }
      expect_exact_cover(coarse);  // includes min_owned_extent == the minimum over ranks and axes
      if (coarse.global_extent() == Extent{1, 1, 1}) break;
      fine = coarse;
    }
  }
}

TEST(CartDecomposition, MinOwnedExtentStopsCoarseningBeforeEmptyBoxes) {
  const Communicator world(MPI_COMM_WORLD);
  CartDecomposition d(world, {40, 24, 12});
  int levels = 1;
  while (d.coarsened().min_owned_extent() >= 2) {
    d = d.coarsened();
    ++levels;
  }
  EXPECT_GE(d.min_owned_extent(), 2);
  EXPECT_FALSE(d.owned().empty());
  EXPECT_EQ(world.allreduce(levels, Op::max), world.allreduce(levels, Op::min));
}

namespace {
// Constructing `make` must throw the same agreed UsageError on every rank.
template <class Make>
void expect_agreed_usage_error(const Communicator& world, Make make, const char* what) {
  std::string message;
  try {
    make();
    ADD_FAILURE() << what << ": no error";
  } catch (const skein::engine::UsageError& e) {
    EXPECT_TRUE(e.agreed()) << what;
    EXPECT_EQ(e.code(), skein::engine::ExitCode::usage);
    message = e.what();
  }
  std::string first = message;
  world.bcast(first, 0);
  EXPECT_EQ(message, first) << what;
}
}  // namespace

TEST(CartDecomposition, BadRequestsAreTheSameUsageErrorOnEveryRank) {
  const Communicator world(MPI_COMM_WORLD);
  const int p = world.size();
  expect_agreed_usage_error(
      world,
      [&] {
        CartDecomposition(world, {0, 5, 5});
      },
      "zero extent");
  expect_agreed_usage_error(
      world,
      [&] {
        CartDecomposition(world, {4, -1, 5});
      },
      "negative extent");
  expect_agreed_usage_error(
      world,
      [&] {
        CartDecomposition(world, {8, 8, 8}, {p + 1, 0, 0});
      },
      "dims too big");
  expect_agreed_usage_error(
      world,
      [&] {
        CartDecomposition(world, {8, 8, 8}, {-1, 0, 0});
      },
      "negative dims");
  if (p > 1) {
    expect_agreed_usage_error(
        world,
        [&] {
          CartDecomposition(world, {p - 1, 9, 9}, {p, 1, 1});
        },
        "fewer cells than ranks along x");
    expect_agreed_usage_error(
        world,
        [&] {
          CartDecomposition(world, {1, 1, 1});
        },
        "one cell, many ranks");
    expect_agreed_usage_error(
        world,
        [&] {
          CartDecomposition(world, {8, 8, 8}, {1, 1, 1});
        },
        "dims product");
  }
  // Still usable afterwards: nobody was left inside a collective.
  EXPECT_EQ(world.allreduce(1, Op::sum), p);
}
