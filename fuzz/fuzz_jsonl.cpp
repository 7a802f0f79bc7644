// libFuzzer target: the input is one JSON Lines file, read by JsonlShard (plain, or compressed to .zst in one
// or three frames, or handed over as a .zst as it is; .zst files indexed by index_zstd_inputs when they can
// be) and every line featurized as dsir does (JSON field, tokenizer, n-gram
// hashing). Checks the reader's contract: every line read exactly once whatever the rank count and block
// size, each line the file's bytes up to its newline, and every bucket below num_buckets.
#include "fuzz/fuzz_common.hpp"
#include "io/jsonl_reader.hpp"
#include "io/zstd_index.hpp"
#include "jobs/dsir/featurizer.hpp"

#include <zstd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace skein;

struct SeenLine {
  std::uint64_t offset;
  std::string bytes;
  bool operator==(const SeenLine& o) const { return offset == o.offset && bytes == o.bytes; }
};

std::vector<SeenLine> read_lines(const std::vector<io::InputFile>& files, int rank, int size,
                                 std::size_t block_bytes) {
  std::vector<SeenLine> lines;
  io::JsonlShard shard(files, rank, size, block_bytes);
  while (shard.next_chunk(block_bytes, [&](const io::Line& line) {
    lines.push_back({line.byte_offset, std::string(line.bytes)});
  })) {
  }
  return lines;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::world();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::ByteReader in(data, size);
  const std::uint8_t flags = in.u8();
  const int mode = flags & 3;  // 0, 3: plain; 1: compressed here to .zst; 2: the bytes are the .zst
  const std::string_view text = in.rest();

  // One featurizer per settings, kept across inputs as dsir keeps one per pass (building one allocates the
  // 32 MiB of sha256 token and n-gram caches, which would dominate a fuzzing run); `files` is the one list
  // they refer to.
  static std::vector<io::InputFile> files(1);
  static dsir::Settings all_settings[256];
  static std::unique_ptr<dsir::Featurizer> featurizers[256];
  dsir::Settings& settings = all_settings[flags & ~3];
  if (!featurizers[flags & ~3]) {
    settings.text_field = "text";
    settings.lowercase = (flags & 4) != 0;
    settings.hash = (flags & 8) ? dsir::HashKind::sha256 : dsir::HashKind::xxh3;
    settings.ngrams = 1 + (flags >> 4) % 3;
    settings.num_buckets = (flags & 64) ? 7 : 10000;
    settings.skip_bad_lines = (flags & 128) != 0;
    featurizers[flags & ~3] = std::make_unique<dsir::Featurizer>(settings, files);
  }
  dsir::Featurizer& featurizer = *featurizers[flags & ~3];

  // mode 0: plain; 1: compressed here as one frame; 2: the bytes are the .zst (then indexed, if they
  // index); 3: compressed here as three frames, indexed, so the ranks split it by decompressed offset.
  io::InputFile file;
  file.zstd = mode != 0;
  std::string on_disk(text);
  if (mode == 1 || mode == 3) {
    static ZSTD_CCtx* const compressor = ZSTD_createCCtx();
    on_disk.clear();
    const std::size_t parts = mode == 3 ? 3 : 1;
    for (std::size_t p = 0; p < parts; ++p) {
      const std::string_view part =
          text.substr(text.size() * p / parts, text.size() * (p + 1) / parts - text.size() * p / parts);
      std::string frame(ZSTD_compressBound(part.size()), '\0');
      const std::size_t n =
          ZSTD_compressCCtx(compressor, frame.data(), frame.size(), part.data(), part.size(), 1);
      if (ZSTD_isError(n)) fuzz::finding("ZSTD_compress failed");
      on_disk.append(frame.data(), n);
    }
  }
  file.path = fuzz::write_scratch(file.zstd ? "input.jsonl.zst" : "input.jsonl", on_disk);
  file.size = on_disk.size();
  files[0] = file;
  if (mode >= 2) {
    try {
      io::index_zstd_inputs(fuzz::world(), files);
      if (!files[0].indexed) fuzz::finding("index_zstd_inputs left a .zst unindexed");
      if (mode == 3 && files[0].stream_size != text.size()) fuzz::finding("indexed stream size is wrong");
    } catch (const engine::Error&) {
      if (mode == 3) fuzz::finding("index_zstd_inputs refused a valid .zst");
      files[0] = file;  // unindexed: read whole by one rank
    }
  }

  fuzz::expect_skein_errors([&] {
    // One rank with an ordinary block, then three ranks with a tiny one (buffer growth, lines across
    // blocks, ranges starting mid-line or mid-stream): the same lines.
    const auto whole = read_lines(files, 0, 1, 4096);
    std::vector<SeenLine> split;
    for (int r = 0; r < 3; ++r) {
      const auto part = read_lines(files, r, 3, 16);
      split.insert(split.end(), part.begin(), part.end());
    }
    if (!(whole == split)) fuzz::finding("lines differ between 1 rank and 3 ranks with tiny blocks");
    // Four pieces read in order by one shard, retargeted (dsir's pieces): the same lines again.
    const std::uint64_t total = io::JsonlShard::total_bytes(files);
    std::vector<SeenLine> pieces;
    io::JsonlShard shard(files, std::vector<io::ByteRange>{{0, total / 4}}, 32);
    for (std::uint64_t k = 0; k < 4; ++k) {
      if (k > 0) shard.retarget({{total * k / 4, total * (k + 1) / 4}});
      while (shard.next_chunk(32, [&](const io::Line& line) {
        pieces.push_back({line.byte_offset, std::string(line.bytes)});
      })) {
      }
    }
    if (!(whole == pieces)) fuzz::finding("lines differ when one shard is retargeted over four pieces");
    if (mode != 2) {
      // The decompressed stream is `text`: each line is its bytes up to the next newline, and the lines
      // tile it.
      std::uint64_t expected_offset = 0;
      for (const auto& line : whole) {
        if (line.offset != expected_offset) fuzz::finding("line offsets do not tile the file");
        if (text.substr(line.offset, line.bytes.size()) != line.bytes)
          fuzz::finding("a line's bytes are not the file's");
        if (line.bytes.find('\n') != std::string::npos) fuzz::finding("a line holds a newline");
        expected_offset = line.offset + line.bytes.size() + 1;
      }
      if (expected_offset < text.size()) fuzz::finding("lines end before the file does");
    }

    io::JsonlShard featurized(files, 0, 1, 64);
    dsir::Tally tally;
    // line_number re-reads the file through a 1 MiB buffer: once per input (dsir calls it once, to throw).
    std::size_t checked_numbers = 0;
    while (featurized.next_chunk(64, [&](const io::Line& line) {
      if (mode != 2 && checked_numbers < 1 && line.byte_offset > 0) {
        ++checked_numbers;
        std::uint64_t newlines = 0;
        for (std::uint64_t i = 0; i < line.byte_offset; ++i) newlines += text[i] == '\n';
        if (featurized.line_number(0, line.byte_offset) != newlines + 1) fuzz::finding("wrong line_number");
      }
      if (!featurizer.featurize(line, featurized, tally)) return;
      for (const auto b : featurizer.buckets()) {
        if (b >= settings.num_buckets) fuzz::finding("bucket out of range");
      }
    })) {
    }
  });
  return 0;
}
