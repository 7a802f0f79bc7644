// The dsir job's pieces: every line belongs to exactly one piece, and pieces shared out to any rank count
// give each rank a contiguous, ordered part whose owner() agrees with share().
#include "comm/block_partition.hpp"
#include "engine/random.hpp"
#include "jobs/dsir/pieces.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <set>

using skein::dsir::Pieces;

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

// Equal single-frame files, as many as ranks or twice as many: no rank decodes a file only to skip it (an
// even cut in a file's last piece moves past the file's end), as when each rank read whole files; fewer
// files than ranks: the even share.
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
  const std::vector<skein::io::InputFile> one = {compressed(5000)};
  const Pieces pieces(one, piece_bytes);
  std::vector<std::uint64_t> all;
  for (std::uint64_t p = 0; p < pieces.count(); ++p) all.push_back(p);
  for (int size = 1; size <= 6; ++size) {
    const skein::comm::BlockPartition even(all.size(), size);
    for (int rank = 0; rank < size; ++rank) EXPECT_EQ(pieces.share(all, rank, size), even.range(rank));
  }
  // A frame start just after an even cut: the cut moves to it.
  const std::vector<skein::io::InputFile> framed = {compressed(4000, {0, 2050})};
  const Pieces framed_pieces(framed, piece_bytes);
  std::vector<std::uint64_t> all_framed;
  for (std::uint64_t p = 0; p < framed_pieces.count(); ++p) all_framed.push_back(p);
  EXPECT_EQ(framed_pieces.cuts(all_framed, 2)[1], 21u);
}
