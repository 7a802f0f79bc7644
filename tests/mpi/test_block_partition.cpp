// BlockPartition gives exactly the ranges of the rules it replaces (JsonlShard::rank_range,
// Pieces::share/owner). skein-test-ranks: 1 2 3 4
#include "comm/block_partition.hpp"
#include "comm/communicator.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

using skein::comm::BlockPartition;
using skein::comm::Communicator;
using skein::comm::IndexRange;

namespace {

// The old rules, verbatim, as references (their callers are being switched over to BlockPartition).
IndexRange old_rank_range(std::uint64_t total, int rank, int size) {
  using wide = unsigned __int128;
  return {static_cast<std::uint64_t>(wide{total} * static_cast<unsigned>(rank) / static_cast<unsigned>(size)),
          static_cast<std::uint64_t>(wide{total} * static_cast<unsigned>(rank + 1) /
                                     static_cast<unsigned>(size))};
}
IndexRange old_pieces_share(std::size_t m, int rank, int size) {
  const std::size_t begin = m * static_cast<std::size_t>(rank) / static_cast<std::size_t>(size);
  const std::size_t end = m * static_cast<std::size_t>(rank + 1) / static_cast<std::size_t>(size);
  return {begin, end};
}
int old_pieces_owner(std::uint64_t piece, std::uint64_t count, int size) {
  int r =
      static_cast<int>((piece + 1) * static_cast<std::uint64_t>(size) / std::max<std::uint64_t>(count, 1));
  while (r > 0 && static_cast<std::uint64_t>(r) * count / static_cast<std::uint64_t>(size) > piece) --r;
  while (r + 1 < size &&
         static_cast<std::uint64_t>(r + 1) * count / static_cast<std::uint64_t>(size) <= piece)
    ++r;
  return std::min(r, size - 1);
}

}  // namespace

TEST(BlockPartition, MatchesTheOldRulesOverManySizes) {
  // Each rank checks a different slice of the (n, P) grid, and the ranks agree that nobody failed.
  const Communicator comm(MPI_COMM_WORLD);
  int checked = 0;
  for (std::uint64_t n = 0; n <= 300; ++n) {
    for (int parts = 1; parts <= 40; ++parts) {
      if (static_cast<int>((n * 41 + static_cast<std::uint64_t>(parts)) %
                           static_cast<std::uint64_t>(comm.size())) != comm.rank())
        continue;
      const BlockPartition partition(n, parts);
      ASSERT_EQ(partition.size(), n);
      ASSERT_EQ(partition.parts(), parts);
      std::uint64_t covered = 0;
      for (int r = 0; r < parts; ++r) {
        const IndexRange range = partition.range(r);
        ASSERT_EQ(range, old_rank_range(n, r, parts)) << "n=" << n << " P=" << parts << " r=" << r;
        ASSERT_EQ(range, old_pieces_share(n, r, parts)) << "n=" << n << " P=" << parts << " r=" << r;
        ASSERT_EQ(range.begin, covered);  // contiguous, in order
        covered = range.end;
        const std::uint64_t floor_share = n / static_cast<std::uint64_t>(parts);
        ASSERT_TRUE(range.size() == floor_share || range.size() == floor_share + 1);
      }
      ASSERT_EQ(covered, n);
      for (std::uint64_t i = 0; i < n; ++i) {
        const int owner = partition.owner(i);
        ASSERT_EQ(owner, old_pieces_owner(i, n, parts)) << "n=" << n << " P=" << parts << " i=" << i;
        const IndexRange range = partition.range(owner);
        ASSERT_TRUE(range.begin <= i && i < range.end) << "n=" << n << " P=" << parts << " i=" << i;
      }
      ++checked;
    }
  }
  EXPECT_EQ(comm.allreduce(checked, skein::comm::Op::sum), 301 * 40);
}

TEST(BlockPartition, FewerItemsThanPartsLeavesEmptyPartsThatOwnNothing) {
  const BlockPartition partition(3, 7);
  std::vector<std::uint64_t> sizes;
  for (int r = 0; r < 7; ++r) sizes.push_back(partition.range(r).size());
  EXPECT_EQ(sizes, (std::vector<std::uint64_t>{0, 0, 1, 0, 1, 0, 1}));
  EXPECT_EQ(partition.owner(0), 2);
  EXPECT_EQ(partition.owner(1), 4);
  EXPECT_EQ(partition.owner(2), 6);
  EXPECT_EQ(BlockPartition(0, 3).range(2), (IndexRange{0, 0}));
}

TEST(BlockPartition, HugeCountsDoNotOverflow) {
  const std::uint64_t n = std::numeric_limits<std::uint64_t>::max() - 5;
  for (const int parts : {1, 3, 7, 1000, 65536}) {
    const BlockPartition partition(n, parts);
    EXPECT_EQ(partition.range(parts - 1).end, n);
    for (const int r : {0, parts / 3, parts / 2, parts - 1}) {
      const IndexRange range = partition.range(r);
      EXPECT_EQ(range, old_rank_range(n, r, parts));
      EXPECT_EQ(partition.owner(range.begin), r);
      EXPECT_EQ(partition.owner(range.end - 1), r);
    }
  }
}

TEST(BlockPartition, RejectsBadParts) {
  EXPECT_THROW(BlockPartition(10, 0), skein::engine::InternalError);
  EXPECT_THROW(BlockPartition(10, 2).range(2), skein::engine::InternalError);
  EXPECT_THROW(BlockPartition(10, 2).range(-1), skein::engine::InternalError);
}
