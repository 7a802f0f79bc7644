// Rank-sharded JSON Lines reading: each rank reads the lines that start in its share of the input bytes.
#pragma once

#include "io/input_files.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

struct ZSTD_DCtx_s;

namespace skein::io {

// One line handed to a JsonlShard callback; valid only during the callback.
struct Line {
  std::uint32_t file_index = 0;  // index into the InputFile list
  // Of the line's first byte in its file (in the decompressed stream for .zst).
  std::uint64_t byte_offset = 0;
  std::string_view bytes;  // without the '\n'; a trailing '\r' is kept
  // End of readable memory after `bytes`: at least simdjson::SIMDJSON_PADDING bytes past bytes.end(),
  // so simdjson parses in place (capacity = padded_end - bytes.data()). The padding's bytes are arbitrary.
  const char* padded_end = nullptr;
};

// The files form one global byte space (file i occupies [base_i, base_i + size_i), in list order); rank r
// of P owns global bytes [r*T/P, (r+1)*T/P) and reads exactly the lines that start there: a line may run
// past the range end, and a range that starts mid-line skips to the next line start. Every file starts a
// line, even when the previous file lacks a final newline. An indexed .jsonl.zst file (InputFile::indexed)
// occupies its decompressed size and is split the same way, in decompressed offsets: a range that starts
// mid-file decodes from the last frame start before it and discards the output up to the range. An
// unindexed one belongs wholly to the rank whose range holds its first byte. So every line of the input is
// read by exactly one rank, whatever the rank count. Reading is local (no communication); errors throw
// DataError naming the file. Lines are found with memchr in blocks read by pread (no per-line allocation). A
// half-open range [begin, end) of the global byte space.
struct ByteRange {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

class JsonlShard {
 public:
  static constexpr std::size_t default_block_bytes = std::size_t{8} << 20;

  // `block_bytes` is the initial buffer size (it grows to hold a longer line); tests make it small.
  // Rank `rank` of `size`'s even share of the inputs' concatenated bytes (comm::BlockPartition).
  JsonlShard(const std::vector<InputFile>& files, int rank, int size,
             std::size_t block_bytes = default_block_bytes);
  // The lines that start in any of `ranges` (sorted, disjoint), with the same rules as for a rank's range;
  // a job that splits the byte space into pieces and hands them out uses this.
  JsonlShard(const std::vector<InputFile>& files, const std::vector<ByteRange>& ranges,
             std::size_t block_bytes = default_block_bytes);
  static std::uint64_t total_bytes(const std::vector<InputFile>& files);
  ~JsonlShard();
  JsonlShard(const JsonlShard&) = delete;
  JsonlShard& operator=(const JsonlShard&) = delete;

  // Reads about `max_bytes` more input (at least 64 KiB, or the block size if smaller) and calls
  // `on_line` for every whole line found, in file order. Returns false once the shard is exhausted
  // (that call may still have delivered lines), so `while (shard.next_chunk(n, f)) {}` reads everything.
  bool next_chunk(std::size_t max_bytes, const std::function<void(const Line&)>& on_line);
  bool exhausted() const { return segment_ >= segments_.size(); }
  // Starts over from the first line of the shard (for a second pass).
  void rewind();
  // Reads the lines of `ranges` next, as a new shard would. A .zst decoder already at or before the start
  // of the first new range is kept, so pieces of a compressed file read in order are decoded once, not
  // from the file's start (or last frame start) for each piece.
  void retarget(const std::vector<ByteRange>& ranges);

  // What reading the next range must decode before its first line, in decompressed bytes: from where its
  // .zst decoder is (or would start: the last frame start before the range) up to the range. 0 for plain
  // files and once the decoder is there. Entering a single-frame file far from its start costs a decode of
  // everything before the range, however little of the file the range is.
  std::uint64_t lead_in() const;
  // Decodes up to `max_bytes` of the lead-in now, delivering no lines. A caller that works in turns with
  // other ranks (dsir's steps) spreads a long lead-in over several turns instead of holding up one turn.
  void decode_lead_in(std::uint64_t max_bytes);

  // Progress in input bytes (compressed bytes for an unindexed .zst, decompressed for an indexed one);
  // bytes_total() summed over ranks is the size of the byte space.
  std::uint64_t bytes_done() const;
  std::uint64_t bytes_total() const { return bytes_total_; }

  // 1-based line number of the line starting at `byte_offset` of file `file_index` (counts the newlines
  // before it by re-reading the file; meant for error messages). 0 if the file cannot be read again.
  std::uint64_t line_number(std::uint32_t file_index, std::uint64_t byte_offset) const;

  const std::vector<InputFile>& files() const { return files_; }

 private:
  struct Segment {
    std::uint32_t file;
    std::uint64_t begin;  // lines starting in [begin, end) of the file (zstd: the whole stream)
    std::uint64_t end;
    bool zstd;
    std::uint64_t weight;  // input bytes this segment accounts for in bytes_total()
  };

  void build_segments(const std::vector<ByteRange>& ranges);
  void open_segment();
  void open_zstd_segment();
  static std::uint64_t read_start(const Segment& seg);
  static ZstdFrameStart frame_start_before(const InputFile& file, std::uint64_t offset);
  // Whether the decoder (of this file, not past the segment's read_start) can carry on into `seg`.
  bool decoder_kept_for(const Segment& seg) const;
  bool decoder_lands_on_byte_before(const Segment& seg) const;
  // Opens `seg`'s file with a fresh decoder at the last frame start at or before read_start(seg).
  void start_decoder(const Segment& seg);
  void close_segment();
  void close_stream();
  // Decodes and discards `n` bytes of the stream (the buffer is empty).
  void skip_zstd(std::uint64_t n);
  // Delivers whole lines from the buffer; true when the segment has no more lines.
  bool scan_lines(const std::function<void(const Line&)>& on_line);
  // Appends input to the buffer (compacting or growing it first); returns the bytes appended.
  std::size_t refill(std::size_t want);
  std::size_t refill_plain(char* out, std::size_t want);
  std::size_t refill_zstd(char* out, std::size_t want);

  std::vector<InputFile> files_;
  std::vector<Segment> segments_;
  std::uint64_t bytes_total_ = 0;

  std::size_t segment_ = 0;
  bool segment_open_ = false;
  std::uint64_t done_before_ = 0;  // weight of finished segments

  std::vector<char> buffer_;  // capacity_ usable bytes + SIMDJSON padding
  std::size_t capacity_ = 0;
  std::size_t fill_ = 0;             // valid bytes in buffer_
  std::size_t pos_ = 0;              // start of the next undelivered line
  std::size_t scanned_ = 0;          // [pos_, scanned_) holds no '\n'
  std::uint64_t buffer_offset_ = 0;  // stream offset of buffer_[0]
  bool skipping_ = false;            // discarding the tail of a line that started before this range
  bool source_eof_ = false;

  int fd_ = -1;
  std::uint64_t read_offset_ = 0;  // plain: next file offset to read; zstd: compressed bytes read
  ZSTD_DCtx_s* zstd_ = nullptr;
  std::vector<char> zstd_in_;
  std::size_t zstd_in_pos_ = 0;
  std::size_t zstd_in_size_ = 0;
  std::size_t zstd_last_ret_ = 0;  // 0 when the decoder ended a frame cleanly
  std::int64_t zstd_file_ = -1;    // the file the decoder (and fd_) is positioned in; -1 none
  bool have_byte_before_ = false;  // byte_before_ holds the stream byte at buffer_offset_ - 1
  char byte_before_ = 0;
};

// Reads single lines of plain (uncompressed) files at known offsets with pread, for a pass that needs only a
// few known lines and should not read the bytes between them (dsir's collect pass). Files open on first use.
class LineFetcher {
 public:
  explicit LineFetcher(const std::vector<InputFile>& files) : files_(files) {}
  ~LineFetcher();
  LineFetcher(const LineFetcher&) = delete;
  LineFetcher& operator=(const LineFetcher&) = delete;

  // Appends to `out` the line of plain file `file_index` that starts at `offset`, without its '\n' (a
  // trailing
  // '\r' is kept, as JsonlShard delivers it). `end_bound` > offset is an offset the line (with its '\n')
  // ends at or before, when the caller knows one (the next line's start); 0 if not. Throws DataError naming
  // the file if it cannot be read, or if no '\n' lies before `end_bound` (the file changed since it was
  // read).
  void append_line(std::uint32_t file_index, std::uint64_t offset, std::uint64_t end_bound, std::string& out);

 private:
  int fd_of(std::uint32_t file_index);
  const std::vector<InputFile>& files_;
  std::vector<int> fds_;
};

}  // namespace skein::io
