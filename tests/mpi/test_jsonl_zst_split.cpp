// skein-test-ranks: 1 2 3
// Compressed inputs split across ranks: index_zstd_inputs learns each .jsonl.zst file's decompressed size and
// frame starts (single-frame, multi-frame with empty and skippable frames, frames without a declared size),
// then JsonlShard reads every line exactly once, with its offset in the decompressed stream, whether rank
// shares or pieces cut the files (also with fewer files than ranks); a truncated file is an agreed DataError
// naming the file and the decompressed offset.
#include "comm/communicator.hpp"
#include "engine/error.hpp"
#include "io/input_files.hpp"
#include "io/jsonl_reader.hpp"
#include "io/zstd_index.hpp"
#include "io/zstd_index_cache.hpp"
#include "jsonl_test_lines.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <zstd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <vector>

namespace {

using skein::comm::Communicator;
using skein::io::InputFile;
using skein::io::JsonlShard;
using skein::io::Line;

// JSON-ish lines of varied lengths (a few longer than the small blocks the tests read with), some "\r\n".
std::string make_content(int lines, int seed, bool final_newline) {
  std::string text;
  for (int i = 0; i < lines; ++i) {
    const int length = (i * 37 + seed * 11) % 97 + (i % 50 == 7 ? 700 : 0);
    text += "{\"text\": \"" + std::to_string(seed) + ":" + std::to_string(i) + " " +
            std::string(static_cast<std::size_t>(length), static_cast<char>('a' + (i + seed) % 26)) + "\"}" +
            (i % 9 == 4 ? "\r\n" : "\n");
  }
  if (!final_newline) text.pop_back();
  return text;
}

std::string compress(const std::string& bytes, bool declare_size = true) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, declare_size ? 1 : 0);
  std::string out(ZSTD_compressBound(bytes.size()), '\0');
  const std::size_t n = ZSTD_compress2(cctx, out.data(), out.size(), bytes.data(), bytes.size());
  ZSTD_freeCCtx(cctx);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

// Several frames cut at `cuts` (mid-line), an empty frame and a skippable frame among them; the data
// frames' start offsets in the decompressed stream go to `starts`.
std::string multi_frame(const std::string& content, const std::vector<std::size_t>& cuts,
                        std::vector<std::uint64_t>& starts) {
  std::string out;
  std::size_t begin = 0;
  for (std::size_t k = 0; k <= cuts.size(); ++k) {
    const std::size_t end = k < cuts.size() ? cuts[k] : content.size();
    starts.push_back(begin);
    out += compress(content.substr(begin, end - begin), k != 2);
    if (k == 1) out += compress("");  // an empty frame: no line starts there
    if (k == 3) {                     // a skippable frame of 5 bytes
      const unsigned char skippable[] = {0x50, 0x2A, 0x4D, 0x18, 5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'};
      out.append(reinterpret_cast<const char*>(skippable), sizeof skippable);
    }
    begin = end;
  }
  return out;
}

// The corpus: a single-frame file, a multi-frame one, one whose frame declares no size, a plain one.
struct Corpus {
  std::vector<std::string> names = {"single.jsonl.zst", "multi.jsonl.zst", "undeclared.jsonl.zst",
                                    "plain.jsonl"};
  std::vector<std::string> contents;
  std::vector<std::string> bytes;  // as written
  std::vector<std::uint64_t> multi_starts;

  Corpus() {
    contents = {make_content(900, 1, true), make_content(700, 2, true), make_content(500, 3, false),
                make_content(300, 4, true)};
    const std::string& m = contents[1];
    bytes = {compress(contents[0]),
             multi_frame(m, {m.size() / 7, m.size() / 3, m.size() / 2, 2 * m.size() / 3}, multi_starts),
             compress(contents[2], false), contents[3]};
  }
  // Rank 0 writes files `which`; every rank gets them resolved (not yet indexed).
  std::vector<InputFile> write(const Communicator& comm, const SharedDir& dir,
                               const std::vector<std::size_t>& which) const {
    std::vector<std::string> paths;
    for (const std::size_t i : which) {
      paths.push_back(dir.file(names[i]));
      if (comm.rank() == 0) std::ofstream(paths.back(), std::ios::binary) << bytes[i];
    }
    comm.barrier();
    return skein::io::resolve_inputs(comm, paths, "test.files");
  }
  std::vector<std::string> contents_of(const std::vector<std::size_t>& which) const {
    std::vector<std::string> out;
    for (const std::size_t i : which) out.push_back(contents[i]);
    return out;
  }
};

std::vector<Rec> read_all(JsonlShard& shard, std::size_t chunk) {
  std::vector<Rec> lines;
  while (shard.next_chunk(
      chunk, [&](const Line& l) { lines.push_back(make_rec(l.file_index, l.byte_offset, l.bytes)); })) {
  }
  return lines;
}

// Each file's first byte in the files' global byte space; `total` gets the space's size.
std::vector<std::uint64_t> file_bases(const std::vector<InputFile>& files, std::uint64_t& total) {
  std::vector<std::uint64_t> base;
  total = 0;
  for (const auto& f : files) {
    base.push_back(total);
    total += f.extent();
  }
  return base;
}

TEST(ZstdIndex, DecompressedSizeAndFrameStarts) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-zst");
  const Corpus corpus;
  auto files = corpus.write(comm, dir, {0, 1, 2, 3});
  for (const auto& f : files) EXPECT_FALSE(f.indexed);
  const std::vector<std::uint64_t> decoded = skein::io::index_zstd_inputs(comm, files).decoded;
  // Rank j % size indexes the j-th .zst file and decodes only the frames that declare no size: none of the
  // single-frame file, the third frame of the multi-frame one, all of the undeclared one.
  std::vector<std::uint64_t> expected(static_cast<std::size_t>(comm.size()), 0);
  const std::size_t m = corpus.contents[1].size();
  expected[1 % expected.size()] += m / 2 - m / 3;
  expected[2 % expected.size()] += corpus.contents[2].size();
  EXPECT_EQ(decoded, expected);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(files[i].indexed) << files[i].path;
    EXPECT_EQ(files[i].stream_size, corpus.contents[i].size()) << files[i].path;
    EXPECT_EQ(files[i].extent(), corpus.contents[i].size());
  }
  EXPECT_FALSE(files[3].indexed);  // plain
  EXPECT_EQ(files[3].extent(), corpus.contents[3].size());
  ASSERT_EQ(files[0].frames.size(), 1u);
  EXPECT_EQ(files[0].frames[0].stream_offset, 0u);
  std::vector<std::uint64_t> starts;
  for (const auto& frame : files[1].frames) starts.push_back(frame.stream_offset);
  EXPECT_EQ(starts, corpus.multi_starts);
  // Each frame start is a real one: decoding from there gives the stream from there.
  for (const auto& frame : files[1].frames) {
    const std::string& b = corpus.bytes[1];
    const unsigned long long size =
        ZSTD_getFrameContentSize(b.data() + frame.compressed_offset, b.size() - frame.compressed_offset);
    if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR) continue;
    std::string out(size, '\0');
    const std::size_t frame_bytes =
        ZSTD_findFrameCompressedSize(b.data() + frame.compressed_offset, b.size() - frame.compressed_offset);
    ASSERT_FALSE(ZSTD_isError(frame_bytes));
    ZSTD_decompress(out.data(), out.size(), b.data() + frame.compressed_offset, frame_bytes);
    EXPECT_EQ(out, corpus.contents[1].substr(frame.stream_offset, size));
  }
}

// The index cache: a second indexing of the same files reads every index from it (nothing decoded) and gets
// the same sizes and frames; a file rewritten since, and entries that are damaged, are indexed again (and
// their entries replaced); a cache that cannot be written leaves the indexing as it is and says why.
TEST(ZstdIndexCache, IndexesOnceThenReadsTheCacheUntilAFileChanges) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-zst");
  const Corpus corpus;
  const skein::io::ZstdIndexCache cache(dir.file("cache/zstd-index"));
  auto first = corpus.write(comm, dir, {0, 1, 2, 3});
  const auto fresh = skein::io::index_zstd_inputs(comm, first, &cache);
  EXPECT_EQ(fresh.files, 3u);
  EXPECT_EQ(fresh.from_cache, 0u);
  EXPECT_EQ(fresh.cache_error, "");
  std::uint64_t decoded = 0;
  for (const auto d : fresh.decoded) decoded += d;
  EXPECT_GT(decoded, 0u);  // the undeclared frames

  auto expect_indexed_like = [&](const std::vector<InputFile>& files, const std::vector<InputFile>& like) {
    for (std::size_t i = 0; i < files.size(); ++i) {
      EXPECT_EQ(files[i].indexed, like[i].indexed) << files[i].path;
      EXPECT_EQ(files[i].stream_size, like[i].stream_size) << files[i].path;
      ASSERT_EQ(files[i].frames.size(), like[i].frames.size()) << files[i].path;
      for (std::size_t k = 0; k < files[i].frames.size(); ++k) {
        EXPECT_EQ(files[i].frames[k].compressed_offset, like[i].frames[k].compressed_offset);
        EXPECT_EQ(files[i].frames[k].stream_offset, like[i].frames[k].stream_offset);
      }
    }
  };
  auto again = skein::io::resolve_inputs(comm,
                                         {dir.file(corpus.names[0]), dir.file(corpus.names[1]),
                                          dir.file(corpus.names[2]), dir.file(corpus.names[3])},
                                         "test.files");
  const auto second = skein::io::index_zstd_inputs(comm, again, &cache);
  EXPECT_EQ(second.from_cache, 3u);
  for (const auto d : second.decoded) EXPECT_EQ(d, 0u);
  expect_indexed_like(again, first);

  // The single-frame file rewritten with the undeclared file's bytes: indexed again, as that file.
  if (comm.rank() == 0) std::ofstream(dir.file(corpus.names[0]), std::ios::binary) << corpus.bytes[2];
  comm.barrier();
  auto changed = skein::io::resolve_inputs(comm, {dir.file(corpus.names[0])}, "test.files");
  const auto third = skein::io::index_zstd_inputs(comm, changed, &cache);
  EXPECT_EQ(third.from_cache, 0u);
  EXPECT_EQ(changed[0].stream_size, corpus.contents[2].size());
  auto changed_again = skein::io::resolve_inputs(comm, {dir.file(corpus.names[0])}, "test.files");
  EXPECT_EQ(skein::io::index_zstd_inputs(comm, changed_again, &cache).from_cache, 1u);
  EXPECT_EQ(changed_again[0].stream_size, corpus.contents[2].size());

  // Damaged entries (cut short, or not an index at all) are misses, then replaced.
  if (comm.rank() == 0) {
    int k = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir.file("cache/zstd-index"))) {
      std::string text;
      {
        std::ifstream in(entry.path());
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
      std::ofstream(entry.path(), std::ios::trunc) << (k++ % 2 == 0 ? text.substr(0, text.size() / 2) : "x");
    }
  }
  comm.barrier();
  auto damaged =
      skein::io::resolve_inputs(comm, {dir.file(corpus.names[1]), dir.file(corpus.names[2])}, "test.files");
  EXPECT_EQ(skein::io::index_zstd_inputs(comm, damaged, &cache).from_cache, 0u);
  expect_indexed_like(damaged, {first[1], first[2]});
  auto repaired =
      skein::io::resolve_inputs(comm, {dir.file(corpus.names[1]), dir.file(corpus.names[2])}, "test.files");
  EXPECT_EQ(skein::io::index_zstd_inputs(comm, repaired, &cache).from_cache, 2u);

  // A file that begins with a skippable frame (as pzstd writes them): its first frame is not at byte 0.
  const unsigned char skippable[] = {0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 'p', 'z', 's', 't'};
  if (comm.rank() == 0) {
    std::ofstream(dir.file("skippable-first.jsonl.zst"), std::ios::binary)
        << std::string(reinterpret_cast<const char*>(skippable), sizeof skippable) + corpus.bytes[1];
  }
  comm.barrier();
  for (const std::uint64_t expected_from_cache : {0u, 1u}) {
    auto skipping = skein::io::resolve_inputs(comm, {dir.file("skippable-first.jsonl.zst")}, "test.files");
    EXPECT_EQ(skein::io::index_zstd_inputs(comm, skipping, &cache).from_cache, expected_from_cache);
    EXPECT_EQ(skipping[0].stream_size, corpus.contents[1].size());
    ASSERT_FALSE(skipping[0].frames.empty());
    EXPECT_EQ(skipping[0].frames[0].compressed_offset, sizeof skippable);
  }

  // A cache under a regular file cannot be written: the indexing is done all the same.
  const skein::io::ZstdIndexCache unwritable(dir.file(corpus.names[3]) + "/zstd-index");
  auto plain_cache = skein::io::resolve_inputs(comm, {dir.file(corpus.names[1])}, "test.files");
  const auto fourth = skein::io::index_zstd_inputs(comm, plain_cache, &unwritable);
  EXPECT_EQ(fourth.from_cache, 0u);
  EXPECT_NE(fourth.cache_error.find(corpus.names[3]), std::string::npos) << fourth.cache_error;
  expect_indexed_like(plain_cache, {first[1]});
}

// Rank shares of the decompressed byte space: every line once, at its decompressed offset; with a single
// compressed file every rank reads some of it.
TEST(ZstdSplit, RankSharesReadEveryLineOnceAndKeepEveryRankBusy) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-zst");
  const Corpus corpus;
  for (const std::vector<std::size_t>& which :
       std::vector<std::vector<std::size_t>>{{0, 1, 2, 3}, {0}, {1}, {2}}) {
    auto files = corpus.write(comm, dir, which);
    skein::io::index_zstd_inputs(comm, files);
    for (const std::size_t block : {std::size_t{64}, std::size_t{4096}, JsonlShard::default_block_bytes}) {
      JsonlShard shard(files, comm.rank(), comm.size(), block);
      const auto mine = read_all(shard, 1000);
      if (which.size() == 1)
        EXPECT_FALSE(mine.empty()) << "rank " << comm.rank() << " idle on " << files[0].path;
      auto all = comm.allgatherv(mine);
      std::sort(all.begin(), all.end());
      EXPECT_TRUE(all == expected_lines(corpus.contents_of(which))) << files[0].path << ", block " << block;
      EXPECT_EQ(comm.allreduce<std::uint64_t>(shard.bytes_total(), skein::comm::Op::sum),
                JsonlShard::total_bytes(files));
      EXPECT_EQ(shard.bytes_done(), shard.bytes_total());
    }
  }
}

// Pieces read by one reader retargeted from piece to piece (in order, as a rank reads its share, and out of
// order, as after a resume): each line comes from the piece holding its first decompressed byte.
TEST(ZstdSplit, OneReaderRetargetedOverPieces) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-zst");
  const Corpus corpus;
  auto files = corpus.write(comm, dir, {0, 1, 2, 3});
  skein::io::index_zstd_inputs(comm, files);
  std::uint64_t total = 0;
  const std::vector<std::uint64_t> base = file_bases(files, total);
  const auto expected = expected_lines(corpus.contents_of({0, 1, 2, 3}));
  for (const std::uint64_t piece_bytes : {997ull, 4096ull, 40000ull}) {
    const std::uint64_t count = (total + piece_bytes - 1) / piece_bytes;
    std::vector<std::uint64_t> order;
    for (std::uint64_t p = 0; p < count; ++p) order.push_back(p);
    for (const bool shuffled : {false, true}) {
      if (shuffled) std::reverse(order.begin() + static_cast<std::ptrdiff_t>(count / 3), order.end());
      JsonlShard shard(files, std::vector<skein::io::ByteRange>{}, 64);
      std::vector<Rec> seen;
      for (const std::uint64_t p : order) {
        shard.retarget({{p * piece_bytes, std::min(total, (p + 1) * piece_bytes)}});
        while (shard.next_chunk(500, [&](const Line& l) {
          EXPECT_EQ((base[l.file_index] + l.byte_offset) / piece_bytes, p);
          seen.push_back(make_rec(l.file_index, l.byte_offset, l.bytes));
        })) {
        }
      }
      std::sort(seen.begin(), seen.end());
      EXPECT_TRUE(seen == expected) << "pieces of " << piece_bytes << (shuffled ? ", out of order" : "");
    }
  }
}

// The lead-in: what a reader decodes before a piece's first line. A fresh reader entering a single frame at
// byte b decodes b - 1 bytes (it reads from the byte before b), one in a multi-frame file only from the last
// frame start, a plain file nothing; a reader already in the file only the gap. Decoding it in slices
// (decode_lead_in, as dsir spreads it over steps) shrinks it by each slice and the piece then reads the
// same lines.
TEST(ZstdSplit, LeadInDecodedInSlicesThenTheSameLines) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-zst");
  const Corpus corpus;
  auto files = corpus.write(comm, dir, {0, 1, 2, 3});
  skein::io::index_zstd_inputs(comm, files);
  std::uint64_t total = 0;
  const std::vector<std::uint64_t> base = file_bases(files, total);
  const auto all = expected_lines(corpus.contents_of({0, 1, 2, 3}));
  const std::uint64_t piece_bytes = 4096;
  const std::uint64_t count = (total + piece_bytes - 1) / piece_bytes;
  auto file_of = [&](std::uint64_t at) {
    return static_cast<std::size_t>(std::upper_bound(base.begin(), base.end(), at) - base.begin()) - 1;
  };
  // Where a fresh decoder of file f starts to read from stream offset `start`: its last frame start.
  auto frame_start = [&](std::size_t f, std::uint64_t start) {
    std::uint64_t from = 0;
    for (const auto& frame : files[f].frames)
      if (frame.stream_offset <= start) from = frame.stream_offset;
    return from;
  };
  for (const std::uint64_t stride : {1ull, 3ull}) {
    for (const std::uint64_t slice : {1ull, 100ull, 5000ull}) {
      JsonlShard shard(files, std::vector<skein::io::ByteRange>{}, 64);
      std::vector<Rec> seen, expected;
      std::int64_t previous_file = -1;
      for (std::uint64_t p = 1; p < count; p += stride) {
        const skein::io::ByteRange range{p * piece_bytes, std::min(total, (p + 1) * piece_bytes)};
        shard.retarget({range});
        const std::size_t f = file_of(range.begin);
        const std::uint64_t start = range.begin - base[f] - (range.begin > base[f] ? 1 : 0);
        std::uint64_t lead = shard.lead_in();
        if (!files[f].zstd) {
          EXPECT_EQ(lead, 0u) << "plain piece " << p;
        } else if (static_cast<std::int64_t>(f) != previous_file && !files[f].frames.empty()) {
          EXPECT_EQ(lead, start - frame_start(f, start)) << "piece " << p << ", a fresh decoder";
        } else if (stride == 1 || !files[f].indexed) {
          EXPECT_EQ(lead, 0u) << "piece " << p << " follows the last one read";
        } else {
          EXPECT_LE(lead, stride * piece_bytes) << "piece " << p << ": only the gap, at most";
        }
        while (lead > 0) {
          shard.decode_lead_in(slice);
          const std::uint64_t now = shard.lead_in();
          EXPECT_EQ(now, lead > slice ? lead - slice : 0) << "piece " << p << ", slices of " << slice;
          if (now >= lead) break;
          lead = now;
        }
        while (shard.next_chunk(
            500, [&](const Line& l) { seen.push_back(make_rec(l.file_index, l.byte_offset, l.bytes)); })) {
        }
        previous_file = static_cast<std::int64_t>(file_of(range.end - 1));  // where its decoder is
        for (const Rec& r : all) {
          if ((base[r.file] + r.offset) / piece_bytes == p) expected.push_back(r);
        }
      }
      std::sort(seen.begin(), seen.end());
      std::sort(expected.begin(), expected.end());
      EXPECT_FALSE(expected.empty());
      EXPECT_TRUE(seen == expected) << "every " << stride << " piece(s), lead-in slices of " << slice;
    }
  }
  // A stream that ends before its index says (the file changed since): the lead-in ends with the stream,
  // and the range then reads no lines, instead of asking for decoding that can never come.
  auto longer = files;
  longer[0].stream_size += 100000;
  JsonlShard shard(longer, std::vector<skein::io::ByteRange>{}, 64);
  shard.retarget({{longer[0].stream_size - 1000, longer[0].stream_size}});
  int steps = 0;
  while (shard.lead_in() > 0 && steps < 10000) {
    shard.decode_lead_in(4096);
    ++steps;
  }
  EXPECT_EQ(shard.lead_in(), 0u);
  EXPECT_LE(steps, static_cast<int>(corpus.contents[0].size() / 4096) + 1);
  EXPECT_TRUE(read_all(shard, 500).empty());
}

// A truncated file: every rank throws the same DataError, naming the file and the decompressed byte where
// the data ends (within the frame that was cut).
TEST(ZstdSplit, TruncatedFileIsAnAgreedErrorWithTheDecompressedOffset) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-zst");
  const Corpus corpus;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"cut-single.jsonl.zst", corpus.bytes[0].substr(0, corpus.bytes[0].size() * 2 / 3)},
      {"cut-multi.jsonl.zst", corpus.bytes[1].substr(0, corpus.bytes[1].size() - 100)},
      {"cut-undeclared.jsonl.zst", corpus.bytes[2].substr(0, corpus.bytes[2].size() / 2)}};
  if (comm.rank() == 0) std::ofstream(dir.file("good.jsonl.zst"), std::ios::binary) << corpus.bytes[0];
  for (const auto& [name, bytes] : cases) {
    if (comm.rank() == 0) std::ofstream(dir.file(name), std::ios::binary) << bytes;
    comm.barrier();
    // The file after a good one, so that ranks other than 0 index it.
    auto files = skein::io::resolve_inputs(comm, {dir.file("good.jsonl.zst"), dir.file(name)}, "test.files");
    std::string message;
    int code = 0;
    try {
      skein::io::index_zstd_inputs(comm, files);
    } catch (const skein::engine::Error& e) {
      message = e.what();
      code = static_cast<int>(e.code());
    }
    EXPECT_EQ(code, static_cast<int>(skein::engine::ExitCode::data)) << message;
    EXPECT_EQ(message.rfind(dir.file(name) + ": truncated zstd stream", 0), 0u) << message;
    std::smatch match;
    ASSERT_TRUE(std::regex_search(message, match, std::regex("after decompressed byte (\\d+)"))) << message;
    const std::uint64_t at = std::stoull(match[1].str());
    const std::string& content = name == "cut-multi.jsonl.zst"    ? corpus.contents[1]
                                 : name == "cut-single.jsonl.zst" ? corpus.contents[0]
                                                                  : corpus.contents[2];
    EXPECT_LT(at, content.size()) << message;
    if (name == "cut-multi.jsonl.zst") EXPECT_GE(at, corpus.multi_starts.back()) << message;
    EXPECT_EQ(comm.allreduce<int>(code, skein::comm::Op::min), code) << "ranks disagree";
  }
}

}  // namespace
