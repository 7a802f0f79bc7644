#include "io/jsonl_reader.hpp"

#include "comm/block_partition.hpp"

#include "engine/error.hpp"

#include <fcntl.h>
#include <simdjson.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

namespace skein::io {

namespace {

constexpr std::size_t padding = simdjson::SIMDJSON_PADDING;
constexpr std::size_t min_read = std::size_t{64} << 10;

// pread until `n` bytes or EOF; returns the bytes read.
std::size_t read_fully(int fd, char* out, std::size_t n, std::uint64_t offset, const std::string& path) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, out + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw engine::DataError("cannot read " + path + " at byte " + std::to_string(offset + got) + ": " +
                              std::strerror(errno));
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  return got;
}

int open_input(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw engine::DataError("cannot open " + path + ": " + std::strerror(errno));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return fd;
}

// Rank r's share of the byte space under the one even-share rule (comm::BlockPartition).
ByteRange even_share(std::uint64_t total, int rank, int size) {
  if (size <= 0 || rank < 0 || rank >= size) {
    throw engine::InternalError("JsonlShard: bad rank " + std::to_string(rank) + " of " +
                                std::to_string(size));
  }
  const auto range = comm::BlockPartition(total, size).range(rank);
  return {range.begin, range.end};
}

// A file named .zst that is not zstd (a plain file renamed) is named as such, not as damaged zstd data.
void check_zstd_magic(int fd, const InputFile& file) {
  unsigned char magic[4] = {};
  const ssize_t n = ::pread(fd, magic, sizeof magic, 0);
  if (n == 0) return;  // an empty file: the decoder reports it
  const std::uint32_t value =
      static_cast<std::uint32_t>(magic[0]) | static_cast<std::uint32_t>(magic[1]) << 8 |
      static_cast<std::uint32_t>(magic[2]) << 16 | static_cast<std::uint32_t>(magic[3]) << 24;
  const bool zstd_frame = value == 0xFD2FB528u;
  const bool skippable_frame = (value & 0xFFFFFFF0u) == 0x184D2A50u;
  if (n == 4 && (zstd_frame || skippable_frame)) return;
  std::string start;
  for (ssize_t i = 0; i < n; ++i)
    start += magic[i] >= 0x20 && magic[i] < 0x7f ? static_cast<char>(magic[i]) : '?';
  throw engine::DataError(file.path + " is named .zst but is not zstd-compressed (it starts with '" + start +
                          "'); compress it with zstd or drop the .zst from its name");
}

}  // namespace

std::uint64_t JsonlShard::total_bytes(const std::vector<InputFile>& files) {
  std::uint64_t total = 0;
  for (const auto& f : files) total += f.extent();
  return total;
}

JsonlShard::JsonlShard(const std::vector<InputFile>& files, int rank, int size, std::size_t block_bytes)
    : JsonlShard(files, std::vector<ByteRange>{even_share(total_bytes(files), rank, size)}, block_bytes) {}

JsonlShard::JsonlShard(const std::vector<InputFile>& files, const std::vector<ByteRange>& ranges,
                       std::size_t block_bytes)
    : files_(files) {
  if (files_.size() > std::numeric_limits<std::uint32_t>::max()) {
    throw engine::UsageError("too many input files (" + std::to_string(files_.size()) + ")");
  }
  capacity_ = std::max<std::size_t>(block_bytes, 16);
  build_segments(ranges);
}

void JsonlShard::build_segments(const std::vector<ByteRange>& ranges) {
  segments_.clear();
  bool any_zstd = false;
  for (const ByteRange& range : ranges) {
    const std::uint64_t lo = range.begin, hi = range.end;
    std::uint64_t base = 0;
    for (std::uint32_t i = 0; i < files_.size(); ++i) {
      const InputFile& file = files_[i];
      const std::uint64_t s = file.extent();
      if (s > 0 && !file.splittable()) {
        if (lo <= base && base < hi) {
          segments_.push_back({i, 0, std::numeric_limits<std::uint64_t>::max(), true, s});
          any_zstd = true;
        }
      } else if (s > 0) {
        const std::uint64_t b = std::max(lo, base);
        const std::uint64_t e = std::min(hi, base + s);
        if (b < e) {
          segments_.push_back({i, b - base, e - base, file.zstd, e - b});
          any_zstd = any_zstd || file.zstd;
        }
      }
      base += s;
    }
  }
  bytes_total_ = 0;
  for (const auto& seg : segments_) bytes_total_ += seg.weight;
  segment_ = 0;
  segment_open_ = false;
  done_before_ = 0;
  if (!segments_.empty() && buffer_.empty()) buffer_.resize(capacity_ + padding);
  if (any_zstd && zstd_in_.empty()) zstd_in_.resize(ZSTD_DStreamInSize());
}

void JsonlShard::retarget(const std::vector<ByteRange>& ranges) {
  if (zstd_file_ < 0) close_stream();
  build_segments(ranges);
}

JsonlShard::~JsonlShard() {
  if (fd_ >= 0) ::close(fd_);
  if (zstd_ != nullptr) ZSTD_freeDCtx(zstd_);
}

void JsonlShard::open_segment() {
  const Segment& seg = segments_[segment_];
  segment_open_ = true;
  if (seg.zstd) {
    open_zstd_segment();
    return;
  }
  close_stream();
  fd_ = open_input(files_[seg.file].path);
  fill_ = pos_ = scanned_ = 0;
  source_eof_ = false;
  // A range starting mid-file begins one byte early: if that byte is '\n', a line starts at `begin`.
  skipping_ = seg.begin > 0;
  read_offset_ = skipping_ ? seg.begin - 1 : 0;
  buffer_offset_ = read_offset_;
}

std::uint64_t JsonlShard::read_start(const Segment& seg) {
  // As for plain files, reading starts one byte before `begin` to see whether a line starts at `begin`.
  return seg.begin == 0 ? 0 : seg.begin - 1;
}

bool JsonlShard::decoder_lands_on_byte_before(const Segment& seg) const {
  return seg.begin > 0 && buffer_offset_ == seg.begin && have_byte_before_;
}

bool JsonlShard::decoder_kept_for(const Segment& seg) const {
  return files_[seg.file].indexed && zstd_file_ == static_cast<std::int64_t>(seg.file) &&
         (buffer_offset_ <= read_start(seg) || decoder_lands_on_byte_before(seg));
}

ZstdFrameStart JsonlShard::frame_start_before(const InputFile& file, std::uint64_t offset) {
  // Decoding can begin only where a frame begins: the last one at or before `offset`.
  ZstdFrameStart from;
  if (file.indexed) {
    const auto after = std::upper_bound(
        file.frames.begin(), file.frames.end(), offset,
        [](std::uint64_t at, const ZstdFrameStart& frame) { return at < frame.stream_offset; });
    if (after != file.frames.begin()) from = *(after - 1);
  }
  return from;
}

void JsonlShard::start_decoder(const Segment& seg) {
  const InputFile& file = files_[seg.file];
  close_stream();
  fd_ = open_input(file.path);
  if (zstd_ == nullptr) {
    zstd_ = ZSTD_createDCtx();
    if (zstd_ == nullptr) throw engine::InternalError("ZSTD_createDCtx failed");
  }
  ZSTD_DCtx_reset(zstd_, ZSTD_reset_session_only);
  // Frames written with `zstd --long=31` need a 2 GiB window; the decoder's default limit is 128 MiB.
  ZSTD_DCtx_setParameter(zstd_, ZSTD_d_windowLogMax, 31);
  check_zstd_magic(fd_, file);
  const ZstdFrameStart from = frame_start_before(file, read_start(seg));
  zstd_file_ = seg.file;
  zstd_in_pos_ = zstd_in_size_ = 0;
  zstd_last_ret_ = 0;
  read_offset_ = from.compressed_offset;
  buffer_offset_ = from.stream_offset;
  fill_ = pos_ = scanned_ = 0;
  source_eof_ = false;
  have_byte_before_ = false;
}

std::uint64_t JsonlShard::lead_in() const {
  if (segment_open_ || segment_ >= segments_.size() || !segments_[segment_].zstd) return 0;
  const Segment& seg = segments_[segment_];
  const InputFile& file = files_[seg.file];
  if (!file.indexed) return 0;  // read whole, from its start
  const std::uint64_t start = read_start(seg);
  if (!decoder_kept_for(seg)) return start - frame_start_before(file, start).stream_offset;
  // A stream that ended before the range (the file changed since it was indexed) has nothing more to decode:
  // reading the range then finds no lines, as it would without the lead-in.
  const std::uint64_t decoded = buffer_offset_ + fill_;
  return start > decoded && !source_eof_ ? start - decoded : 0;
}

void JsonlShard::decode_lead_in(std::uint64_t max_bytes) {
  if (lead_in() == 0) return;
  const Segment& seg = segments_[segment_];
  if (!decoder_kept_for(seg)) start_decoder(seg);
  // Everything buffered lies before the range: drop it, keeping its last byte as the byte before.
  if (fill_ > 0) {
    byte_before_ = buffer_[fill_ - 1];
    have_byte_before_ = true;
    buffer_offset_ += fill_;
    fill_ = pos_ = scanned_ = 0;
  }
  skip_zstd(std::min(max_bytes, read_start(seg) - buffer_offset_));
}

void JsonlShard::open_zstd_segment() {
  const Segment& seg = segments_[segment_];
  const std::uint64_t start = read_start(seg);
  const bool at_byte_before = decoder_lands_on_byte_before(seg);
  const bool keep = decoder_kept_for(seg);
  if (!keep) start_decoder(seg);
  skipping_ = seg.begin > 0;
  if (at_byte_before && keep && buffer_offset_ > start) {
    // The buffer starts at `begin`: the byte before it says whether a line starts there.
    pos_ = scanned_ = 0;
    skipping_ = byte_before_ != '\n';
    return;
  }
  if (start >= buffer_offset_ + fill_) {
    buffer_offset_ += fill_;
    fill_ = 0;
    skip_zstd(start - buffer_offset_);
    pos_ = 0;
  } else {
    pos_ = static_cast<std::size_t>(start - buffer_offset_);
  }
  scanned_ = pos_;
}

void JsonlShard::skip_zstd(std::uint64_t n) {
  while (n > 0 && !source_eof_) {
    const std::size_t got =
        refill_zstd(buffer_.data(), static_cast<std::size_t>(std::min<std::uint64_t>(n, capacity_)));
    if (got > 0) {
      byte_before_ = buffer_[got - 1];
      have_byte_before_ = true;
    }
    buffer_offset_ += got;
    n -= got;
  }
}

void JsonlShard::close_stream() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  zstd_file_ = -1;
  have_byte_before_ = false;
}

void JsonlShard::close_segment() {
  // A compressed file's decoder stays where it is: the next segment may continue from there.
  if (!segments_[segment_].zstd) close_stream();
  done_before_ += segments_[segment_].weight;
  ++segment_;
  segment_open_ = false;
}

void JsonlShard::rewind() {
  close_stream();
  segment_ = 0;
  segment_open_ = false;
  done_before_ = 0;
  fill_ = pos_ = scanned_ = 0;
}

bool JsonlShard::scan_lines(const std::function<void(const Line&)>& on_line) {
  const Segment& seg = segments_[segment_];
  const char* base = buffer_.data();
  if (skipping_) {
    const auto* nl = static_cast<const char*>(std::memchr(base + scanned_, '\n', fill_ - scanned_));
    if (nl == nullptr) {
      pos_ = scanned_ = fill_;
      // No '\n' in [begin - 1, end - 1): the line that started before this range covers all of it.
      return source_eof_ || buffer_offset_ + fill_ >= seg.end - 1;
    }
    pos_ = scanned_ = static_cast<std::size_t>(nl - base) + 1;
    skipping_ = false;
  }
  const char* padded_end = base + buffer_.size();
  Line line;
  line.file_index = seg.file;
  line.padded_end = padded_end;
  while (true) {
    if (buffer_offset_ + pos_ >= seg.end) return true;  // the next line is the next rank's
    if (pos_ == fill_) return source_eof_;
    const auto* nl = static_cast<const char*>(std::memchr(base + scanned_, '\n', fill_ - scanned_));
    if (nl == nullptr) {
      scanned_ = fill_;
      if (!source_eof_) return false;
      nl = base + fill_;  // the last line has no final newline
    }
    line.byte_offset = buffer_offset_ + pos_;
    line.bytes = std::string_view(base + pos_, static_cast<std::size_t>(nl - (base + pos_)));
    on_line(line);
    pos_ = scanned_ = std::min(fill_, static_cast<std::size_t>(nl - base) + 1);
  }
}

std::size_t JsonlShard::refill(std::size_t want) {
  if (pos_ > 0) {
    byte_before_ = buffer_[pos_ - 1];
    have_byte_before_ = true;
    std::memmove(buffer_.data(), buffer_.data() + pos_, fill_ - pos_);
    buffer_offset_ += pos_;
    fill_ -= pos_;
    scanned_ -= pos_;
    pos_ = 0;
  }
  if (fill_ == capacity_) {  // one line fills the buffer: make room for the rest of it
    capacity_ *= 2;
    buffer_.resize(capacity_ + padding);
  }
  const std::size_t room = std::min(capacity_ - fill_, want);
  char* out = buffer_.data() + fill_;
  const std::size_t n = segments_[segment_].zstd ? refill_zstd(out, room) : refill_plain(out, room);
  fill_ += n;
  return n;
}

std::size_t JsonlShard::refill_plain(char* out, std::size_t want) {
  const InputFile& file = files_[segments_[segment_].file];
  const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(want, file.size - read_offset_));
  if (read_fully(fd_, out, n, read_offset_, file.path) != n) {
    throw engine::DataError(file.path + " is shorter than the " + std::to_string(file.size) +
                            " bytes it had when the job started");
  }
  read_offset_ += n;
  // The recorded size is the file's end, so every rank agrees on the byte space even if the file grows.
  if (read_offset_ == file.size) source_eof_ = true;
  return n;
}

std::size_t JsonlShard::refill_zstd(char* out, std::size_t want) {
  const InputFile& file = files_[segments_[segment_].file];
  ZSTD_outBuffer output{out, want, 0};
  while (output.pos == 0) {
    if (zstd_in_pos_ == zstd_in_size_ && read_offset_ < file.size) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(zstd_in_.size(), file.size - read_offset_));
      if (read_fully(fd_, zstd_in_.data(), n, read_offset_, file.path) != n) {
        throw engine::DataError(file.path + " is shorter than the " + std::to_string(file.size) +
                                " bytes it had when the job started");
      }
      read_offset_ += n;
      zstd_in_pos_ = 0;
      zstd_in_size_ = n;
    }
    ZSTD_inBuffer input{zstd_in_.data(), zstd_in_size_, zstd_in_pos_};
    const std::size_t ret = ZSTD_decompressStream(zstd_, &output, &input);
    const bool progress = input.pos != zstd_in_pos_ || output.pos != 0;
    zstd_in_pos_ = input.pos;
    if (ZSTD_isError(ret)) {
      if (ZSTD_getErrorCode(ret) == ZSTD_error_frameParameter_windowTooLarge) {
        throw engine::DataError(file.path +
                                ": its zstd frame needs a window larger than 2 GiB (the most skein "
                                "decodes); recompress it without --long or with --long=31 at most");
      }
      throw engine::DataError(file.path + ": bad zstd data near decompressed byte " +
                              std::to_string(buffer_offset_ + fill_ + output.pos) +
                              " (in the compressed bytes before byte " + std::to_string(read_offset_) +
                              "): " + ZSTD_getErrorName(ret));
    }
    // An idle call after a finished frame returns a size hint for the next one, not 0: keep the last
    // real answer.
    if (progress) zstd_last_ret_ = ret;
    if (output.pos == 0 && zstd_in_pos_ == zstd_in_size_ && read_offset_ == file.size) {
      if (zstd_last_ret_ != 0)
        throw engine::DataError(file.path +
                                ": truncated zstd stream: the file ends mid-frame, after decompressed byte " +
                                std::to_string(buffer_offset_ + fill_ + output.pos));
      source_eof_ = true;
      break;
    }
  }
  return output.pos;
}

bool JsonlShard::next_chunk(std::size_t max_bytes, const std::function<void(const Line&)>& on_line) {
  max_bytes = std::max<std::size_t>(max_bytes, 1);
  std::size_t produced = 0;
  while (segment_ < segments_.size()) {
    if (!segment_open_) open_segment();
    if (scan_lines(on_line)) {
      close_segment();
      if (produced >= max_bytes) break;
      continue;
    }
    if (produced >= max_bytes) return true;
    produced += refill(std::max(max_bytes - produced, min_read));
  }
  return segment_ < segments_.size();
}

std::uint64_t JsonlShard::bytes_done() const {
  if (segment_ >= segments_.size() || !segment_open_) return done_before_;
  const Segment& seg = segments_[segment_];
  if (!files_[seg.file].splittable()) return done_before_ + std::min(read_offset_, seg.weight);
  const std::uint64_t position = buffer_offset_ + fill_;
  const std::uint64_t progress = position <= seg.begin ? 0 : position - seg.begin;
  return done_before_ + std::min(progress, seg.weight);
}

std::uint64_t JsonlShard::line_number(std::uint32_t file_index, std::uint64_t byte_offset) const {
  if (file_index >= files_.size()) return 0;
  const InputFile& file = files_[file_index];
  int fd = -1;
  ZSTD_DCtx* dctx = nullptr;
  std::uint64_t newlines = 0;
  try {
    fd = open_input(file.path);
    std::vector<char> block(std::size_t{1} << 20);
    auto count = [&](const char* data, std::size_t n, std::uint64_t at) {
      // Count only bytes before `byte_offset`; returns false once past it.
      const std::uint64_t take = at >= byte_offset ? 0 : std::min<std::uint64_t>(n, byte_offset - at);
      newlines += static_cast<std::uint64_t>(std::count(data, data + take, '\n'));
      return at + n < byte_offset;
    };
    if (!file.zstd) {
      for (std::uint64_t at = 0; at < byte_offset && at < file.size;) {
        const std::size_t n = read_fully(fd, block.data(), block.size(), at, file.path);
        if (n == 0 || !count(block.data(), n, at)) break;
        at += n;
      }
    } else {
      dctx = ZSTD_createDCtx();
      std::vector<char> in(ZSTD_DStreamInSize());
      std::uint64_t in_offset = 0;
      std::uint64_t at = 0;
      bool more = true;
      while (more && in_offset < file.size) {
        const std::size_t n = read_fully(fd, in.data(), in.size(), in_offset, file.path);
        if (n == 0) break;
        in_offset += n;
        ZSTD_inBuffer input{in.data(), n, 0};
        bool output_full = false;  // the decoder may hold more output even when the input is used up
        while (more && (input.pos < input.size || output_full)) {
          ZSTD_outBuffer output{block.data(), block.size(), 0};
          const std::size_t ret = ZSTD_decompressStream(dctx, &output, &input);
          if (ZSTD_isError(ret)) throw engine::DataError(ZSTD_getErrorName(ret));
          output_full = output.pos == output.size;
          more = count(block.data(), output.pos, at);
          at += output.pos;
        }
      }
    }
  } catch (const std::exception&) {
    newlines = std::numeric_limits<std::uint64_t>::max();  // unknown
  }
  if (fd >= 0) ::close(fd);
  if (dctx != nullptr) ZSTD_freeDCtx(dctx);
  return newlines == std::numeric_limits<std::uint64_t>::max() ? 0 : newlines + 1;
}

LineFetcher::~LineFetcher() {
  for (const int fd : fds_) {
    if (fd >= 0) ::close(fd);
  }
}

int LineFetcher::fd_of(std::uint32_t file_index) {
  if (fds_.size() <= file_index) fds_.resize(file_index + 1, -1);
  int& fd = fds_[file_index];
  if (fd < 0) {
    fd = ::open(files_.at(file_index).path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      throw engine::DataError("cannot open " + files_[file_index].path + ": " + std::strerror(errno));
  }
  return fd;
}

void LineFetcher::append_line(std::uint32_t file_index, std::uint64_t offset, std::uint64_t end_bound,
                              std::string& out) {
  const InputFile& file = files_.at(file_index);
  if (file.zstd) throw engine::InternalError("LineFetcher: " + file.path + " is compressed");
  const int fd = fd_of(file_index);
  const std::uint64_t limit = end_bound > offset ? std::min(end_bound, file.size) : file.size;
  const std::size_t start = out.size();
  std::uint64_t at = offset;
  // With a bound, one read of exactly the bytes up to it; without, 64 KiB at a time until a '\n'.
  const std::uint64_t step = end_bound > offset ? limit - offset : min_read;
  while (at < limit) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(step, limit - at));
    const std::size_t before = out.size();
    out.resize(before + want);
    const std::size_t got = read_fully(fd, out.data() + before, want, at, file.path);
    out.resize(before + got);
    const void* nl = std::memchr(out.data() + before, '\n', got);
    if (nl != nullptr) {
      out.resize(static_cast<std::size_t>(static_cast<const char*>(nl) - out.data()));
      return;
    }
    if (got < want) break;  // the file ended early
    at += got;
  }
  if (offset + (out.size() - start) == file.size) return;  // the last line, without a final '\n'
  out.resize(start);
  throw engine::DataError(file.path + ": no line ends between byte " + std::to_string(offset) + " and byte " +
                          std::to_string(limit) + " (the file changed while it was read)");
}

}  // namespace skein::io
