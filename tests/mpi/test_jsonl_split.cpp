// JsonlShard and resolve_inputs: every line of the input is read by exactly one rank, with its file, byte
// offset and bytes intact, whatever the rank count, block size or chunk size.
#include "comm/communicator.hpp"
#include "engine/error.hpp"
#include "io/input_files.hpp"
#include "io/json_field.hpp"
#include "io/jsonl_reader.hpp"
#include "jsonl_test_lines.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <zstd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

using skein::comm::Communicator;
using skein::io::InputFile;
using skein::io::JsonlShard;
using skein::io::Line;

std::string zstd_frames(const std::string& content, int frames) {
  std::string out;
  const std::size_t part = content.size() / static_cast<std::size_t>(frames) + 1;
  for (std::size_t begin = 0; begin < content.size() || (begin == 0 && content.empty()); begin += part) {
    const std::string piece = content.substr(begin, part);
    std::string compressed(ZSTD_compressBound(piece.size()), '\0');
    const std::size_t n = ZSTD_compress(compressed.data(), compressed.size(), piece.data(), piece.size(), 3);
    EXPECT_FALSE(ZSTD_isError(n));
    out.append(compressed.data(), n);
    if (content.empty()) break;
  }
  return out;
}

// Rank 0 writes the files (contents uncompressed; ".zst" names get compressed in `frames` frames); every
// rank gets the resolved list.
std::vector<InputFile> write_files(const Communicator& comm, const SharedDir& dir,
                                   const std::vector<std::pair<std::string, std::string>>& files,
                                   int frames = 2) {
  std::vector<std::string> paths;
  for (const auto& [name, content] : files) {
    paths.push_back(dir.file(name));
    if (comm.rank() != 0) continue;
    const bool zst = name.size() > 4 && name.compare(name.size() - 4, 4, ".zst") == 0;
    std::ofstream out(paths.back(), std::ios::binary);
    const std::string bytes = zst ? zstd_frames(content, frames) : content;
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  comm.barrier();
  return skein::io::resolve_inputs(comm, paths, "test.files");
}

std::vector<std::string> contents_of(const std::vector<std::pair<std::string, std::string>>& files) {
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back(f.second);
  return out;
}

struct ShardResult {
  std::vector<Rec> lines;
  std::uint64_t bytes_total = 0;
};

ShardResult read_shard(const std::vector<InputFile>& files, int rank, int size, std::size_t block,
                       std::size_t chunk) {
  JsonlShard shard(files, rank, size, block);
  ShardResult result;
  std::uint64_t last_done = 0;
  bool padding_ok = true;
  auto on_line = [&](const Line& line) {
    const char* end = line.bytes.data() + line.bytes.size();
    if (line.padded_end - end < static_cast<std::ptrdiff_t>(skein::io::JsonFieldReader::kPadding))
      padding_ok = false;
    // The padding must be readable memory (ASan/valgrind would flag this otherwise).
    volatile char last = line.padded_end[-1];
    (void)last;
    result.lines.push_back(make_rec(line.file_index, line.byte_offset, line.bytes));
  };
  std::size_t calls = 0;
  while (shard.next_chunk(chunk, on_line)) {
    EXPECT_GE(shard.bytes_done(), last_done);
    last_done = shard.bytes_done();
    if (++calls > 100'000'000) break;
  }
  EXPECT_TRUE(padding_ok);
  EXPECT_TRUE(shard.exhausted());
  EXPECT_EQ(shard.bytes_done(), shard.bytes_total());
  EXPECT_FALSE(shard.next_chunk(chunk, on_line));  // stays exhausted
  result.bytes_total = shard.bytes_total();
  return result;
}

std::uint64_t total_size(const std::vector<InputFile>& files) {
  std::uint64_t total = 0;
  for (const auto& f : files) total += f.size;
  return total;
}

// Every rank reads its own shard; the union over ranks must be exactly the expected lines.
void check_across_ranks(const Communicator& comm, const std::vector<InputFile>& files,
                        const std::vector<Rec>& expected, std::size_t block, std::size_t chunk) {
  auto mine = read_shard(files, comm.rank(), comm.size(), block, chunk);
  auto all = comm.allgatherv(mine.lines);
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all.size(), expected.size()) << "block " << block << " chunk " << chunk;
  EXPECT_EQ(all, expected) << "block " << block << " chunk " << chunk;
  EXPECT_EQ(comm.allreduce(mine.bytes_total, skein::comm::Op::sum), total_size(files));
}

// The same check for any rank count, simulated in this process.
void check_simulated(const std::vector<InputFile>& files, const std::vector<Rec>& expected, int size,
                     std::size_t block, std::size_t chunk) {
  std::vector<Rec> all;
  std::uint64_t total = 0;
  for (int r = 0; r < size; ++r) {
    auto part = read_shard(files, r, size, block, chunk);
    // Each rank's lines come in file order.
    EXPECT_TRUE(std::is_sorted(part.lines.begin(), part.lines.end()));
    all.insert(all.end(), part.lines.begin(), part.lines.end());
    total += part.bytes_total;
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, expected) << size << " ranks, block " << block << " chunk " << chunk;
  EXPECT_EQ(total, total_size(files));
}

std::vector<std::pair<std::string, std::string>> hand_written_files() {
  std::string a;
  for (int i = 0; i < 40; ++i) {
    a += "{\"id\": " + std::to_string(i) + ", \"text\": \"" +
         std::string(static_cast<std::size_t>(i * 7 % 23), 'a') + "\"}\n";
    if (i % 9 == 0) a += "\n\n";  // empty lines
  }
  std::string zst;
  for (int i = 0; i < 30; ++i) zst += "{\"text\": \"compressed " + std::to_string(i) + "\"}\n";
  return {
      {"a.jsonl", a},
      {"b.jsonl", "x\ny\n{\"text\": \"last line without newline\"}"},
      {"empty.jsonl", ""},
      {"crlf.jsonl", "{\"a\": 1}\r\n{\"a\": 2}\r\n\r\n{\"a\": 3}\r\n"},
      {"long.jsonl", "short\n" + std::string(300'000, 'L') + "\nafter\n" + std::string(70'000, 'M')},
      {"c.jsonl.zst", zst},
      {"one_newline.jsonl", "\n"},
      {"single.jsonl", "z"},
      {"d.jsonl", "\n\nstarts with empty lines\n\n"},
  };
}

TEST(JsonlSplit, EveryLineExactlyOnceAcrossRanks) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-jsonl");
  const auto spec = hand_written_files();
  const auto files = write_files(comm, dir, spec);
  const auto expected = expected_lines(contents_of(spec));
  for (const std::size_t block : {std::size_t{32}, std::size_t{4096}, JsonlShard::default_block_bytes}) {
    for (const std::size_t chunk : {std::size_t{1}, std::size_t{100}, std::size_t{1} << 20}) {
      check_across_ranks(comm, files, expected, block, chunk);
    }
  }
}

TEST(JsonlSplit, AnyRankCountSimulated) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-jsonl");
  const auto spec = hand_written_files();
  const auto files = write_files(comm, dir, spec);
  const auto expected = expected_lines(contents_of(spec));
  for (int size = 1; size <= 12; ++size) {
    check_simulated(files, expected, size, 64, 50);
    check_simulated(files, expected, size, 1 << 16, 1 << 20);
  }
  // More ranks than bytes in some files, and than lines overall.
  check_simulated(files, expected, 1000, 16, 7);
}

TEST(JsonlSplit, RangeBoundaryAtEveryByte) {
  // With small files and up to T + 2 simulated ranks, some range starts at every byte: at a line start,
  // right after a '\n', on an empty line, on a '\r', at a file's first or last byte.
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-jsonl");
  const std::vector<std::pair<std::string, std::string>> spec = {
      {"1.jsonl", "a\n\nbc\n\r\n\nxyz"},
      {"2.jsonl", ""},
      {"3.jsonl", "\n"},
      {"4.jsonl", "cd\n"},
      {"5.jsonl", "e"},
      {"6.jsonl.zst", "z1\n\nz2\n"},
      {"7.jsonl", "\n\n\nlast\n"},
  };
  const auto files = write_files(comm, dir, spec);
  const auto expected = expected_lines(contents_of(spec));
  const auto total = static_cast<int>(total_size(files));
  for (int size = 1; size <= total + 2; ++size) {
    for (const std::size_t block : {std::size_t{1}, std::size_t{3}, std::size_t{4096}}) {
      check_simulated(files, expected, size, block, 1);
      check_simulated(files, expected, size, block, 1 << 20);
    }
  }
}

TEST(JsonlSplit, LineLongerThanTheDefaultBlock) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-jsonl");
  const std::size_t big = JsonlShard::default_block_bytes + 1'234'567;
  std::string huge(big, 'h');
  for (std::size_t i = 0; i < huge.size(); i += 4099) huge[i] = ' ';
  const std::vector<std::pair<std::string, std::string>> spec = {
      {"big.jsonl", "first\n" + huge + "\nmiddle\n" + huge + "\n"},
      {"after.jsonl", "tail 1\ntail 2\n"},
      {"big.jsonl.zst", "z1\n" + huge + "\nz2"},
  };
  const auto files = write_files(comm, dir, spec, 1);
  const auto expected = expected_lines(contents_of(spec));
  check_across_ranks(comm, files, expected, JsonlShard::default_block_bytes, JsonlShard::default_block_bytes);
  check_across_ranks(comm, files, expected, JsonlShard::default_block_bytes, 1 << 16);
  for (int size = 2; size <= 5; ++size) {
    check_simulated(files, expected, size, JsonlShard::default_block_bytes, JsonlShard::default_block_bytes);
  }
}

TEST(JsonlSplit, Randomized) {
  Communicator comm(MPI_COMM_WORLD);
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    SharedDir dir(comm, "skein-jsonl");
    std::mt19937_64 rng(seed);  // same stream on every rank: every rank knows the expected lines
    std::vector<std::pair<std::string, std::string>> spec;
    const int nfiles = 1 + static_cast<int>(rng() % 5);
    for (int f = 0; f < nfiles; ++f) {
      std::string content;
      const int nlines = static_cast<int>(rng() % 200);
      for (int i = 0; i < nlines; ++i) {
        const std::uint64_t kind = rng() % 20;
        const std::size_t length = kind == 0 ? rng() % 5000 : kind < 5 ? 0 : rng() % 40;
        for (std::size_t k = 0; k < length; ++k) content += static_cast<char>('!' + rng() % 90);
        if (rng() % 7 == 0) content += '\r';
        content += '\n';
      }
      if (rng() % 3 == 0 && !content.empty()) content.pop_back();  // no final newline
      const bool zst = rng() % 4 == 0;
      spec.emplace_back("f" + std::to_string(f) + (zst ? ".jsonl.zst" : ".jsonl"), content);
    }
    const auto files = write_files(comm, dir, spec, 1 + static_cast<int>(seed % 3));
    const auto expected = expected_lines(contents_of(spec));
    const std::size_t block = 16 + rng() % 300;
    const std::size_t chunk = 1 + rng() % 2000;
    check_across_ranks(comm, files, expected, block, chunk);
    for (const int size : {1, 2, 3, 4, 5, 7, 9, 16, 61, 250})
      check_simulated(files, expected, size, block, chunk);
  }
}

TEST(JsonlSplit, ZstdFileIsNotSplit) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-jsonl");
  std::string content;
  for (int i = 0; i < 1000; ++i) content += "{\"text\": \"line " + std::to_string(i) + "\"}\n";
  const auto files = write_files(comm, dir, {{"only.jsonl.zst", content}}, 3);
  const auto mine = read_shard(files, comm.rank(), comm.size(), 256, 1000);
  // The file's first byte is global byte 0, which is rank 0's.
  if (comm.rank() == 0) {
    EXPECT_EQ(mine.lines, expected_lines({content}));
    EXPECT_EQ(mine.bytes_total, files[0].size);
  } else {
    EXPECT_TRUE(mine.lines.empty());
    EXPECT_EQ(mine.bytes_total, 0u);
  }
}

TEST(JsonlSplit, RewindReadsTheSameLinesAgain) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-jsonl");
  const auto spec = hand_written_files();
  const auto files = write_files(comm, dir, spec);
  JsonlShard shard(files, comm.rank(), comm.size(), 128);
  std::vector<Rec> first;
  std::vector<Rec> second;
  while (shard.next_chunk(
      300, [&](const Line& l) { first.push_back(make_rec(l.file_index, l.byte_offset, l.bytes)); })) {
  }
  shard.rewind();
  EXPECT_EQ(shard.bytes_done(), 0u);
  while (shard.next_chunk(
      1 << 20, [&](const Line& l) { second.push_back(make_rec(l.file_index, l.byte_offset, l.bytes)); })) {
  }
  EXPECT_EQ(first, second);
}

TEST(JsonlSplit, LineNumbers) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-jsonl");
  const auto spec = hand_written_files();
  const auto files = write_files(comm, dir, spec);
  const auto expected = expected_lines(contents_of(spec));
  JsonlShard shard(files, comm.rank(), comm.size());
  std::vector<std::uint64_t> index_in_file(files.size(), 0);
  for (const auto& rec : expected) {
    const std::uint64_t number = ++index_in_file[rec.file];
    if (number % 5 != 1 && rec.file != 5) continue;  // a sample, and every line of the .zst file
    EXPECT_EQ(shard.line_number(rec.file, rec.offset), number) << rec;
  }
  EXPECT_EQ(shard.line_number(99, 0), 0u);  // no such file
}

TEST(JsonlSplit, CorruptZstdIsADataError) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-jsonl");
  std::string content;
  for (int i = 0; i < 2000; ++i) content += "{\"text\": \"line " + std::to_string(i) + "\"}\n";
  const std::string compressed = zstd_frames(content, 1);
  if (comm.rank() == 0) {
    std::ofstream(dir.file("garbage.jsonl.zst"), std::ios::binary) << "this is not zstd at all\n";
    std::ofstream(dir.file("truncated.jsonl.zst"), std::ios::binary)
        << compressed.substr(0, compressed.size() / 2);
  }
  comm.barrier();
  for (const char* name : {"garbage.jsonl.zst", "truncated.jsonl.zst"}) {
    const auto files = skein::io::resolve_inputs(comm, {dir.file(name)}, "test.files");
    JsonlShard shard(files, 0, 1, 4096);  // local: the whole file
    try {
      while (shard.next_chunk(1 << 20, [](const Line&) {})) {
      }
      ADD_FAILURE() << name << " was read without error";
    } catch (const skein::engine::DataError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

std::string error_of(const std::function<void()>& f, int& code) {
  try {
    f();
  } catch (const skein::engine::Error& e) {
    code = static_cast<int>(e.code());
    return e.what();
  }
  code = 0;
  return "";
}

TEST(InputFiles, ResolveExpandsSortsAndDeduplicates) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-jsonl");
  if (comm.rank() == 0) {
    std::ofstream(dir.file("b.jsonl")) << "{}\n{}\n";
    std::ofstream(dir.file("a.jsonl")) << "{}\n";
    std::ofstream(dir.file("c.json")) << "[]";
    std::ofstream(dir.file("d.jsonl.zst")) << "x";
    std::ofstream(dir.file("notes.txt")) << "text";
  }
  comm.barrier();
  auto files =
      skein::io::resolve_inputs(comm, {dir.file("*.jsonl"), dir.file("a.jsonl"), dir.file("c.json")}, "k");
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].path, dir.file("a.jsonl"));
  EXPECT_EQ(files[0].size, 3u);
  EXPECT_EQ(files[1].path, dir.file("b.jsonl"));
  EXPECT_EQ(files[1].size, 6u);
  EXPECT_EQ(files[2].path, dir.file("c.json"));
  for (const auto& f : files) EXPECT_FALSE(f.zstd);
  // The pattern order is kept; the same file by another name is dropped.
  files = skein::io::resolve_inputs(
      comm, {dir.file("d.jsonl.zst"), dir.file("b.jsonl"), dir.file("./b.jsonl")}, "k");
  ASSERT_EQ(files.size(), 2u);
  EXPECT_TRUE(files[0].zstd);
  EXPECT_EQ(files[1].path, dir.file("b.jsonl"));
}

TEST(InputFiles, ErrorsNameTheKeyAndPathOnEveryRank) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm, "skein-jsonl");
  if (comm.rank() == 0) {
    std::ofstream(dir.file("notes.txt")) << "text";
    std::ofstream(dir.file("ok.jsonl")) << "{}\n";
    std::filesystem::create_directory(dir.file("folder.jsonl"));
  }
  comm.barrier();
  struct Case {
    std::vector<std::string> patterns;
    skein::engine::ExitCode code;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{dir.file("missing.jsonl")}, skein::engine::ExitCode::data, "missing.jsonl"},
      {{dir.file("nothing*.jsonl")}, skein::engine::ExitCode::data, "matches no file"},
      {{dir.file("notes.txt")}, skein::engine::ExitCode::usage, "notes.txt"},
      {{dir.file("*")}, skein::engine::ExitCode::data, "folder.jsonl"},  // the directory comes first
      {{dir.file("folder.jsonl")}, skein::engine::ExitCode::data, "directory"},
      {{dir.file("ok.jsonl"), dir.file("*.txt")}, skein::engine::ExitCode::usage, "notes.txt"},
      {{}, skein::engine::ExitCode::usage, "dsir.raw_files"},
  };
  for (const auto& c : cases) {
    int code = -1;
    const std::string message =
        error_of([&] { skein::io::resolve_inputs(comm, c.patterns, "dsir.raw_files"); }, code);
    EXPECT_EQ(code, static_cast<int>(c.code)) << message;
    EXPECT_NE(message.find("dsir.raw_files"), std::string::npos) << message;
    EXPECT_NE(message.find(c.needle), std::string::npos) << message;
    // The same message on every rank.
    const auto hashes = comm.allgather(XXH3_64bits(message.data(), message.size()));
    for (const auto h : hashes) EXPECT_EQ(h, hashes[0]) << message;
  }
}

}  // namespace
