// The dsir job's pieces: every line belongs to exactly one piece, and pieces shared out to any rank count
// give each rank a contiguous, ordered part whose owner() agrees with share().
#include "comm/block_partition.hpp"
#include "jobs/dsir/pieces.hpp"
#include "engine/random.hpp"

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
