// The dsir job's pieces: every line belongs to exactly one piece, and pieces shared out to any rank count
// give each rank a contiguous, ordered part whose owner() agrees with share().
#include "comm/block_partition.hpp"
#include "engine/random.hpp"
#include "jobs/dsir/piece_lists.hpp"
#include "jobs/dsir/pieces.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>

using skein::dsir::Pieces;
using Files = std::vector<skein::io::InputFile>;

namespace {

std::string temp_file(const std::string& name, const std::string& bytes) {
  const std::string path = std::string(::testing::TempDir()) + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

}  // namespace

TEST(Pieces, EveryLineIsReadInExactlyOnePiece) {
  std::vector<skein::io::InputFile> files;
  std::set<std::pair<std::uint32_t, std::uint64_t>> expected;
  for (int f = 0; f < 3; ++f) {
    std::string bytes;
    for (int i = 0; i < 200 + 37 * f; ++i) {
      expected.insert({static_cast<std::uint32_t>(f), bytes.size()});
      const auto length = skein::engine::random_bits(f, 2u, i) % 90;
      bytes += "{\"text\": \"" + std::string(length, 'a' + f) + "\"}" + (i % 7 == 0 ? "\r\n" : "\n");
    }
    if (f == 2) bytes.pop_back();  // no final newline
    files.push_back({temp_file("pieces" + std::to_string(f) + ".jsonl", bytes), bytes.size(), false});
  }
  for (const std::uint64_t piece_bytes : {1ull, 97ull, 1000ull, 4096ull, 1ull << 20}) {
    const Pieces pieces(files, piece_bytes);
    std::set<std::pair<std::uint32_t, std::uint64_t>> seen;
    for (std::uint64_t p = 0; p < pieces.count(); ++p) {
      skein::io::JsonlShard shard(files, {pieces.range(p)}, 64);
      while (shard.next_chunk(1000, [&](const skein::io::Line& line) {
        EXPECT_EQ(pieces.piece_of(line.file_index, line.byte_offset), p);
        EXPECT_TRUE(seen.insert({line.file_index, line.byte_offset}).second) << "line read twice";
      })) {
      }
    }
    EXPECT_EQ(seen, expected) << "piece_bytes " << piece_bytes;
  }
}

TEST(Pieces, ShareAndOwnerAgreeForAnyRankCount) {
  for (const std::uint64_t count : {0ull, 1ull, 2ull, 7ull, 100ull, 1001ull}) {
    std::vector<std::uint64_t> all;
    for (std::uint64_t p = 0; p < count; ++p) all.push_back(p);
    for (int size = 1; size <= 9; ++size) {
      std::uint64_t next = 0;
      for (int rank = 0; rank < size; ++rank) {
        const skein::comm::BlockPartition partition(count, size);
        const auto share = partition.range(rank);
        for (std::uint64_t piece = share.begin; piece < share.end; ++piece) {
          EXPECT_EQ(all[piece], next++) << "shares must be contiguous and in rank order";
          EXPECT_EQ(partition.owner(piece), rank) << "piece " << piece << " of " << count;
        }
      }
      EXPECT_EQ(next, count);
    }
  }
}

namespace {

skein::io::InputFile compressed(std::uint64_t stream_size, std::vector<std::uint64_t> frame_starts = {0}) {
  skein::io::InputFile file{"x.jsonl.zst", stream_size / 3, true};
  file.indexed = true;
  file.stream_size = stream_size;
  for (const auto start : frame_starts) file.frames.push_back({start / 3, start});
  return file;
}

// Decoded bytes the rank starting at piece `first` discards before its share (from the last restart point).
std::uint64_t skip_of(const std::vector<skein::io::InputFile>& files, std::uint64_t piece_bytes,
                      std::uint64_t first) {
  std::uint64_t at = first * piece_bytes, base = 0;
  for (const auto& f : files) {
    if (at < base + f.extent()) {
      if (!f.zstd) return 0;
      std::uint64_t last = 0;
      for (const auto& frame : f.frames)
        if (frame.stream_offset <= at - base) last = frame.stream_offset;
      return at - base - last;
    }
    base += f.extent();
  }
  return 0;
}

void expect_shares_partition_pending(const Pieces& pieces, const std::vector<std::uint64_t>& pending,
                                     int size) {
  const auto owners = pieces.owners(size);
  std::uint64_t next = 0;
  for (int rank = 0; rank < size; ++rank) {
    const auto share = pieces.share(pending, rank, size);
    EXPECT_EQ(share.begin, next) << "rank " << rank << " of " << size;
    EXPECT_LE(share.begin, share.end);
    next = share.end;
    if (pending.size() == pieces.count()) {
      for (std::uint64_t i = share.begin; i < share.end; ++i) EXPECT_EQ(owners.of(pending[i]), rank);
    }
  }
  EXPECT_EQ(next, pending.size());
}

}  // namespace

// Plain files: exactly the even share (BlockPartition), whatever the sizes and rank count.
TEST(Pieces, PlainFilesGetTheEvenShare) {
  for (const std::uint64_t piece_bytes : {7ull, 100ull, 4096ull}) {
    std::vector<skein::io::InputFile> files = {
        {"a.jsonl", 1234, false}, {"b.jsonl", 99, false}, {"c.jsonl", 5000, false}};
    const Pieces pieces(files, piece_bytes);
    std::vector<std::uint64_t> all;
    for (std::uint64_t p = 0; p < pieces.count(); ++p) all.push_back(p);
    for (int size = 1; size <= 9; ++size) {
      const skein::comm::BlockPartition even(all.size(), size);
      for (int rank = 0; rank < size; ++rank) EXPECT_EQ(pieces.share(all, rank, size), even.range(rank));
      expect_shares_partition_pending(pieces, all, size);
    }
  }
}

// Equal single-frame files, as many as ranks or twice as many: no rank decodes a file only to skip it (a
// cut in a file's last piece moves past the file's end), as when each rank read whole files.
TEST(Pieces, CutsAvoidSkippingThroughSingleFrames) {
  const std::uint64_t piece_bytes = 100;
  for (std::uint64_t size_each = 1000; size_each <= 1300; size_each += 7) {
    const std::vector<skein::io::InputFile> files(4, compressed(size_each));
    const Pieces pieces(files, piece_bytes);
    std::vector<std::uint64_t> all;
    for (std::uint64_t p = 0; p < pieces.count(); ++p) all.push_back(p);
    for (int size = 2; size <= 4; ++size) {
      expect_shares_partition_pending(pieces, all, size);
      if (size == 3) continue;  // cuts mid-file: split there
      const auto cuts = pieces.cuts(all, size);
      const skein::comm::BlockPartition even(all.size(), size);
      for (int k = 1; k < size; ++k) {
        EXPECT_LE(skip_of(files, piece_bytes, cuts[static_cast<std::size_t>(k)]), piece_bytes)
            << "cut " << k << " of " << size << ", files of " << size_each;
        EXPECT_LE(cuts[static_cast<std::size_t>(k)] - even.begin(k), 2u);
      }
    }
    // Resuming with some pieces done: the shares still partition what is left.
    std::vector<std::uint64_t> pending;
    for (std::uint64_t p = 0; p < pieces.count(); ++p)
      if (p % 5 != 2) pending.push_back(p);
    for (int size = 1; size <= 5; ++size) expect_shares_partition_pending(pieces, pending, size);
  }
  // A frame start just after an even cut: the cut moves to it.
  const std::vector<skein::io::InputFile> framed = {compressed(4000, {0, 2050})};
  const Pieces framed_pieces(framed, piece_bytes);
  std::vector<std::uint64_t> all_framed;
  for (std::uint64_t p = 0; p < framed_pieces.count(); ++p) all_framed.push_back(p);
  EXPECT_EQ(framed_pieces.cuts(all_framed, 2)[1], 21u);
}

namespace {

// What one rank reading the pieces `share` (ids, ascending) costs, simulated the way JsonlShard reads: in
// units of decoding a byte, featurising one costs Pieces::kDecodeOverFeaturise; a compressed segment is
// decoded from where the decoder stands in that file if it is not past the segment's start (at it: the
// reader kept the byte before), else from the last frame start at or before the byte before the segment
// (the reader looks at it to see whether a line starts there); skipped output is decoded and discarded.
std::uint64_t share_cost(const Files& files, std::uint64_t piece_bytes,
                         const std::vector<std::uint64_t>& share) {
  const std::uint64_t featurise = Pieces::kDecodeOverFeaturise;
  std::uint64_t total = 0;
  for (const auto& f : files) total += f.extent();
  std::size_t open_file = files.size();
  std::uint64_t decoded_to = 0;  // bytes of open_file's stream decoded so far
  std::uint64_t cost = 0;
  for (const std::uint64_t piece : share) {
    const std::uint64_t begin = piece * piece_bytes, end = std::min(total, begin + piece_bytes);
    std::uint64_t base = 0;
    for (std::size_t f = 0; f < files.size(); base += files[f].extent(), ++f) {
      const std::uint64_t from = std::max(begin, base), to = std::min(end, base + files[f].extent());
      if (from >= to) continue;
      if (!files[f].zstd) {
        cost += (to - from) * featurise;
        continue;
      }
      const std::uint64_t local = from - base, byte_before = local == 0 ? 0 : local - 1;
      if (open_file != f || decoded_to > local) {
        open_file = f;
        decoded_to = 0;
        for (const auto& frame : files[f].frames)
          if (frame.stream_offset <= byte_before) decoded_to = frame.stream_offset;
      }
      cost += local - decoded_to;             // decoded to be skipped
      cost += (to - from) * (1 + featurise);  // decoded and featurised
      decoded_to = to - base;
    }
  }
  return cost;
}

// Each share's simulated cost under `cuts`.
std::vector<std::uint64_t> share_costs(const Files& files, std::uint64_t piece_bytes,
                                       const std::vector<std::uint64_t>& pending,
                                       const std::vector<std::uint64_t>& cuts) {
  std::vector<std::uint64_t> costs;
  for (std::size_t k = 0; k + 1 < cuts.size(); ++k)
    costs.push_back(
        share_cost(files, piece_bytes, {pending.begin() + cuts[k], pending.begin() + cuts[k + 1]}));
  return costs;
}

// The smallest possible cost of the busiest of `size` ranks taking contiguous shares of `pending` in order,
// by exhaustive dynamic programming over every cut (best[j] after k ranks: the first k ranks taking the first
// j pending pieces).
std::uint64_t best_max_cost(const Files& files, std::uint64_t piece_bytes,
                            const std::vector<std::uint64_t>& pending, int size) {
  const std::size_t n = pending.size();
  std::vector<std::vector<std::uint64_t>> cost(n + 1, std::vector<std::uint64_t>(n + 1, 0));
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i + 1; j <= n; ++j)
      cost[i][j] = share_cost(files, piece_bytes, {pending.begin() + i, pending.begin() + j});
  const std::uint64_t none = ~std::uint64_t{0};
  std::vector<std::uint64_t> best(n + 1, none);
  for (std::size_t j = 0; j <= n; ++j) best[j] = cost[0][j];
  for (int k = 2; k <= size; ++k) {
    std::vector<std::uint64_t> next(n + 1, none);
    for (std::size_t j = 0; j <= n; ++j)
      for (std::size_t i = 0; i <= j; ++i) next[j] = std::min(next[j], std::max(best[i], cost[i][j]));
    best = next;
  }
  return best[n];
}

std::vector<std::uint64_t> all_pieces(const Pieces& pieces) {
  std::vector<std::uint64_t> all(pieces.count());
  for (std::uint64_t p = 0; p < all.size(); ++p) all[p] = p;
  return all;
}

}  // namespace

// The busiest share's cost, simulated independently of Pieces, is within one piece's cost of the best any
// cuts can do (found exhaustively), for mixes of plain, single-frame and multi-frame files, all pieces
// pending or some done (a resumed pass), at 1 to 5 ranks.
TEST(Pieces, CutsBalanceTheEstimatedCost) {
  const std::uint64_t piece_bytes = 100;
  const std::uint64_t one_piece = piece_bytes * (Pieces::kDecodeOverFeaturise + 1);
  for (std::uint64_t seed = 0; seed < 12; ++seed) {
    Files files;
    const auto count = 1 + skein::engine::random_bits(seed, 1u, 0) % 4;
    for (std::uint64_t f = 0; f < count; ++f) {
      const std::uint64_t size = 150 + skein::engine::random_bits(seed, 2u, f) % 1800;
      switch (skein::engine::random_bits(seed, 3u, f) % 3) {
        case 0:
          files.push_back({"p.jsonl", size, false});
          break;
        case 1:
          files.push_back(compressed(size));
          break;
        default: {
          std::vector<std::uint64_t> frames = {0};
          for (std::uint64_t at = 300 + skein::engine::random_bits(seed, 4u, f) % 400; at < size; at += 450)
            frames.push_back(at);
          files.push_back(compressed(size, frames));
        }
      }
    }
    const Pieces pieces(files, piece_bytes);
    const auto all = all_pieces(pieces);
    std::vector<std::uint64_t> resumed;
    for (const auto p : all)
      if (skein::engine::random_bits(seed, 5u, p) % 4 != 0) resumed.push_back(p);
    for (const std::vector<std::uint64_t>* pending :
         {static_cast<const std::vector<std::uint64_t>*>(&all),
          static_cast<const std::vector<std::uint64_t>*>(&resumed)}) {
      for (int size = 1; size <= 5; ++size) {
        expect_shares_partition_pending(pieces, *pending, size);
        const auto costs = share_costs(files, piece_bytes, *pending, pieces.cuts(*pending, size));
        const std::uint64_t busiest = *std::max_element(costs.begin(), costs.end());
        const std::uint64_t best = best_max_cost(files, piece_bytes, *pending, size);
        EXPECT_LE(busiest, best + one_piece)
            << "seed " << seed << ", " << size << " ranks, " << (pending == &all ? "all pending" : "resumed");
        EXPECT_GE(busiest, best);
      }
    }
  }
}

// One single-frame file of S bytes (decoding 1, featurising 3 per byte): at 2 ranks rank 0 reads
// x = S (d + f) / (d + 2f) = 4/7 S and the other skips x and reads the rest, so the busiest share is 7/8 of
// the ideal (the even cut: 4/5); at 3 ranks 148/192 = 0.77 (even: 2/3).
TEST(Pieces, OneSingleFrameFileIsCutByCost) {
  static_assert(Pieces::kDecodeOverFeaturise == 3, "the figures below assume featurising costs 3x decoding");
  const std::uint64_t piece_bytes = 100, stream = 70000;
  const Files one = {compressed(stream)};
  const Pieces pieces(one, piece_bytes);
  const auto all = all_pieces(pieces);
  const std::uint64_t whole = share_cost(one, piece_bytes, all);
  auto balance = [&](const std::vector<std::uint64_t>& cuts) {
    const auto costs = share_costs(one, piece_bytes, all, cuts);
    return static_cast<double>(whole) /
           static_cast<double>((cuts.size() - 1) * *std::max_element(costs.begin(), costs.end()));
  };
  const auto two = pieces.cuts(all, 2);
  EXPECT_NEAR(static_cast<double>(two[1]), 4.0 / 7 * static_cast<double>(all.size()), 1.0);
  EXPECT_NEAR(balance(two), 0.875, 0.005);
  EXPECT_NEAR(balance({0, 350, 700}), 0.8, 0.005);  // the even cut, for comparison
  EXPECT_NEAR(balance(pieces.cuts(all, 3)), 0.77, 0.01);
  EXPECT_NEAR(balance({0, 233, 466, 700}), 0.667, 0.005);  // even
}

// Frame starts are free restart points: cuts go to the first piece past each frame start when that is
// cheaper than skipping into a frame, so no rank discards more than a piece of decoding.
TEST(Pieces, MultiFrameFilesAreCutAtFrames) {
  const std::uint64_t piece_bytes = 100;
  for (const std::uint64_t first : {0ull, 30ull, 70ull}) {
    const Files framed = {compressed(6000, {0, 2000 + first, 4000 + first})};
    const Pieces pieces(framed, piece_bytes);
    const auto all = all_pieces(pieces);
    const auto cuts = pieces.cuts(all, 3);
    for (int k = 1; k < 3; ++k) {
      EXPECT_LE(skip_of(framed, piece_bytes, cuts[static_cast<std::size_t>(k)]), piece_bytes) << first;
      EXPECT_EQ(cuts[static_cast<std::size_t>(k)], (2000 * k + first) / piece_bytes + 1)
          << "offset " << first;
    }
  }
}

// More single-frame files than ranks, of unequal sizes: every cut lands within a piece past a file's start
// when whole files balance better than skipping into one.
TEST(Pieces, ManyFilesGoWholeToRanks) {
  const std::uint64_t piece_bytes = 100;
  const Files files = {compressed(3000), compressed(3100), compressed(2900), compressed(3050),
                       compressed(2950), compressed(3000), compressed(3020), compressed(2980)};
  const Pieces pieces(files, piece_bytes);
  const auto all = all_pieces(pieces);
  for (const int size : {2, 4, 8}) {
    const auto cuts = pieces.cuts(all, size);
    for (int k = 1; k < size; ++k)
      EXPECT_LE(skip_of(files, piece_bytes, cuts[static_cast<std::size_t>(k)]), piece_bytes)
          << "cut " << k << " of " << size;
  }
}

// --- PieceLists: pieces moved at agreements to a rank about to run out ---

namespace {

using skein::dsir::PieceLists;

std::vector<std::uint64_t> range_of(std::uint64_t begin, std::uint64_t end) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t p = begin; p < end; ++p) out.push_back(p);
  return out;
}

// Every piece is in exactly one list, once.
void expect_partition(const PieceLists& lists, std::uint64_t count) {
  std::vector<int> seen(count, 0);
  for (const auto& list : lists.lists())
    for (const auto p : list) ++seen.at(p);
  for (std::uint64_t p = 0; p < count; ++p) EXPECT_EQ(seen[p], 1) << "piece " << p;
}

}  // namespace

// Plain text: rank 0 has read its 10 pieces, rank 1 has 10 left; the last 5 move, in order, and the ranks
// are left with equal costs.
TEST(PieceLists, AStarvingRankTakesHalfOfTheTailOfTheBusiestOne) {
  const Files plain = {{"a.jsonl", 2000, false}};
  const Pieces pieces(plain, 100);
  PieceLists lists(pieces, {range_of(0, 10), range_of(10, 20)});
  const auto moves = lists.balance({0, 10}, {4, 4});
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].from, 1);
  EXPECT_EQ(moves[0].to, 0);
  EXPECT_EQ(moves[0].count, 5u);
  EXPECT_EQ(lists.pending_of(0), range_of(15, 20));
  EXPECT_EQ(lists.pending_of(1), range_of(10, 15));
  expect_partition(lists, pieces.count());
  // Later rank 1 has 1 piece left and rank 0 4: rank 1 takes rank 0's last (3 against 2; one more would
  // be 2 against 3).
  const auto again = lists.balance({4, 1}, {4, 4});
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(lists.pending_of(0), range_of(16, 19));
  EXPECT_EQ(lists.pending_of(1), (std::vector<std::uint64_t>{14, 19}));
  expect_partition(lists, pieces.count());
}

TEST(PieceLists, NothingMovesWhileEveryRankHasWorkOrOnlyOnePieceIsLeft) {
  const Files plain = {{"a.jsonl", 2000, false}};
  const Pieces pieces(plain, 100);
  PieceLists lists(pieces, {range_of(0, 10), range_of(10, 20)});
  EXPECT_TRUE(lists.balance({5, 10}, {4, 4}).empty());  // nobody runs out before the next agreement
  EXPECT_TRUE(lists.balance({4, 10}, {4, 4}).empty());
  // One pending piece is never moved (it may be half decoded), and two is no gain to split.
  EXPECT_TRUE(lists.balance({0, 1}, {4, 4}).empty());
  EXPECT_TRUE(lists.balance({1, 2}, {4, 4}).empty());
  EXPECT_EQ(lists.pending_of(1), range_of(18, 20));
  expect_partition(lists, pieces.count());
}

// The inside of a single zstd frame is left to the cuts: taking a piece there would decode everything before
// it first. Independent frames are entered at their starts, so their pieces move.
TEST(PieceLists, PiecesInsideASingleFrameStay) {
  const Files one = {compressed(2000)};
  const Pieces single(one, 100);
  PieceLists lists(single, {range_of(0, 10), range_of(10, 20)});
  EXPECT_TRUE(lists.balance({0, 10}, {4, 4}).empty());

  const Files framed = {compressed(2000, {0, 1500, 1700, 1900})};
  const Pieces frames(framed, 100);
  PieceLists framed_lists(frames, {range_of(0, 10), range_of(10, 20)});
  ASSERT_EQ(framed_lists.balance({0, 10}, {4, 4}).size(), 1u);
  // Pieces 16..19 are entered from the frame start at 1500 (at most one piece of decoding); piece 15, at
  // the frame start itself, would decode from 0, as the reader looks at the byte before a piece.
  EXPECT_EQ(framed_lists.pending_of(0), range_of(16, 20));
  expect_partition(framed_lists, frames.count());
}

// Three ranks, two out of work: the work left ends up spread over all three, every piece accounted for.
TEST(PieceLists, SeveralStarvingRanksShareTheWork) {
  const Files plain = {{"a.jsonl", 3000, false}};
  const Pieces pieces(plain, 100);
  PieceLists lists(pieces, {range_of(0, 10), range_of(10, 20), range_of(20, 30)});
  lists.balance({0, 0, 10}, {4, 4, 4});
  EXPECT_EQ(lists.pending_of(2).size() + lists.pending_of(0).size() + lists.pending_of(1).size(), 10u);
  for (int r = 0; r < 3; ++r) {
    EXPECT_GE(lists.pending_of(r).size(), 2u) << "rank " << r;
    EXPECT_LE(lists.pending_of(r).size(), 5u) << "rank " << r;
  }
  expect_partition(lists, pieces.count());
}
