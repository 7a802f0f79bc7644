// io::LineFetcher (dsir's collect pass reads selected lines with it): every line JsonlShard delivers is read
// back byte for byte at its offset, with the next line's start as the bound or with none; a bound the line
// runs past (the file changed since it was read) is an error naming the file.
#include "engine/error.hpp"
#include "io/jsonl_reader.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

namespace {

skein::io::InputFile plain_file(const std::string& name, const std::string& bytes) {
  const std::string path = std::string(::testing::TempDir()) + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  skein::io::InputFile file;
  file.path = path;
  file.size = bytes.size();
  return file;
}

struct Read {
  std::uint32_t file;
  std::uint64_t offset;
  std::string bytes;
};

// The reference: every line of the files as JsonlShard (one reader, the whole byte space) delivers it.
std::vector<Read> all_lines(const std::vector<skein::io::InputFile>& files) {
  std::vector<Read> lines;
  skein::io::JsonlShard shard(files, 0, 1, 64);
  while (shard.next_chunk(1 << 20, [&](const skein::io::Line& line) {
    lines.push_back({line.file_index, line.byte_offset, std::string(line.bytes)});
  })) {
  }
  return lines;
}

}  // namespace

TEST(LineFetcher, ReadsEveryLineAsTheShardDeliversIt) {
  // Empty lines, a CRLF line, a line longer than the fetcher's 64 KiB reads, and no final newline.
  const std::string long_line(200000, 'x');
  const std::vector<skein::io::InputFile> files = {
      plain_file("fetch_a.jsonl", "{\"text\": \"a\"}\n\n{\"text\": \"b\"}\r\n" + long_line + "\nlast"),
      plain_file("fetch_b.jsonl", "one\ntwo\n")};
  const auto lines = all_lines(files);
  ASSERT_EQ(lines.size(), 7u);
  skein::io::LineFetcher fetcher(files);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const bool next_in_file = i + 1 < lines.size() && lines[i + 1].file == lines[i].file;
    std::string bounded = "prefix:", unbounded;
    fetcher.append_line(lines[i].file, lines[i].offset, next_in_file ? lines[i + 1].offset : 0, bounded);
    fetcher.append_line(lines[i].file, lines[i].offset, 0, unbounded);
    EXPECT_EQ(bounded, "prefix:" + lines[i].bytes) << "line " << i;
    EXPECT_EQ(unbounded, lines[i].bytes) << "line " << i;
  }
}

TEST(LineFetcher, ALineRunningPastItsBoundIsAnErrorNamingTheFile) {
  const std::vector<skein::io::InputFile> files = {plain_file("fetch_c.jsonl", "abcdef\nxyz\n")};
  skein::io::LineFetcher fetcher(files);
  std::string out = "kept";
  try {
    fetcher.append_line(0, 0, 4, out);  // the line ends at byte 6
    FAIL() << "no error";
  } catch (const skein::engine::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("fetch_c.jsonl"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("changed"), std::string::npos) << e.what();
  }
  EXPECT_EQ(out, "kept");  // nothing half-appended
}
