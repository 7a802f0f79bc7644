#include "io/zstd_index.hpp"

#include "engine/error.hpp"
#include "io/zstd_index_cache.hpp"

#include <fcntl.h>
#include <unistd.h>
// ZSTD_getFrameHeader (a frame's declared size, header size and checksum flag) is in zstd's "experimental"
// section, unchanged since 1.3 and exported by the shared library.
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace skein::io {

namespace {

constexpr std::uint32_t kFrameMagic = 0xFD2FB528u;
constexpr std::uint32_t kSkippableMask = 0xFFFFFFF0u;
constexpr std::uint32_t kSkippableMagic = 0x184D2A50u;

class File {
 public:
  File(const std::string& path, std::uint64_t size) : path_(path), size_(size) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw engine::DataError("cannot open " + path + ": " + std::strerror(errno));
  }
  ~File() { ::close(fd_); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // Up to `n` bytes at `offset` (fewer at the end of the file as it was when the job started).
  std::size_t read(void* out, std::size_t n, std::uint64_t offset) const {
    if (offset >= size_) return 0;
    n = static_cast<std::size_t>(std::min<std::uint64_t>(n, size_ - offset));
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r =
          ::pread(fd_, static_cast<char*>(out) + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        throw engine::DataError("cannot read " + path_ + " at byte " + std::to_string(offset + got) + ": " +
                                std::strerror(errno));
      }
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    return got;
  }
  const std::string& path() const { return path_; }
  std::uint64_t size() const { return size_; }

 private:
  std::string path_;
  std::uint64_t size_;
  int fd_ = -1;
};

std::uint32_t le32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

struct FrameExtent {
  std::uint64_t compressed = 0;    // bytes of the frame in the file
  std::uint64_t decompressed = 0;  // bytes it decodes to
};

// Decodes the frame at `offset` (whose output starts at `stream_offset`) to learn its sizes; the errors
// name the decompressed offset where the data stops making sense.
FrameExtent decode_frame(const File& file, std::uint64_t offset, std::uint64_t stream_offset) {
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> dctx(ZSTD_createDCtx(), &ZSTD_freeDCtx);
  if (!dctx) throw engine::InternalError("ZSTD_createDCtx failed");
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, 31);
  std::vector<char> in(ZSTD_DStreamInSize()), out(ZSTD_DStreamOutSize());
  FrameExtent extent;
  std::uint64_t at = offset;
  while (true) {
    const std::size_t n = file.read(in.data(), in.size(), at);
    if (n == 0) {
      throw engine::DataError(
          file.path() + ": truncated zstd stream: the file ends mid-frame, after decompressed byte " +
          std::to_string(stream_offset + extent.decompressed) + " (the frame starts at byte " +
          std::to_string(offset) + " of " + std::to_string(file.size()) + " compressed bytes)");
    }
    ZSTD_inBuffer input{in.data(), n, 0};
    bool output_full = false;  // the decoder may hold more output even when the input is used up
    while (input.pos < input.size || output_full) {
      ZSTD_outBuffer output{out.data(), out.size(), 0};
      const std::size_t ret = ZSTD_decompressStream(dctx.get(), &output, &input);
      if (ZSTD_isError(ret)) {
        throw engine::DataError(file.path() + ": bad zstd data near decompressed byte " +
                                std::to_string(stream_offset + extent.decompressed) + " (compressed bytes " +
                                std::to_string(at) + ".." + std::to_string(at + n) +
                                "): " + ZSTD_getErrorName(ret));
      }
      extent.decompressed += output.pos;
      if (ret == 0) {  // the frame ended (and is flushed): the decoder stops at its last byte
        extent.compressed = at + input.pos - offset;
        return extent;
      }
      output_full = output.pos == output.size;
    }
    at += n;
  }
}

// Steps over the blocks of the frame at `offset` by their headers; false if they run past the end of the
// file or are malformed (then decode_frame says exactly what is wrong).
bool walk_blocks(const File& file, std::uint64_t offset, std::size_t header_size, bool checksum,
                 std::uint64_t& compressed) {
  std::uint64_t at = offset + header_size;
  while (true) {
    unsigned char h[3];
    if (file.read(h, 3, at) != 3) return false;
    const std::uint32_t header = static_cast<std::uint32_t>(h[0]) | static_cast<std::uint32_t>(h[1]) << 8 |
                                 static_cast<std::uint32_t>(h[2]) << 16;
    const bool last = (header & 1u) != 0;
    const std::uint32_t type = (header >> 1) & 3u;
    const std::uint32_t block_size = header >> 3;
    if (type == 3) return false;             // reserved
    at += 3 + (type == 1 ? 1 : block_size);  // an RLE block stores one byte
    if (at > file.size()) return false;
    if (last) break;
  }
  if (checksum) at += 4;
  if (at > file.size()) return false;
  compressed = at - offset;
  return true;
}

}  // namespace

ZstdIndex index_zstd_file(const std::string& path, std::uint64_t size) {
  const File file(path, size);
  ZstdIndex index;
  std::uint64_t at = 0;
  while (at < size) {
    unsigned char head[ZSTD_FRAMEHEADERSIZE_MAX] = {};
    const std::size_t n = file.read(head, sizeof head, at);
    const std::uint32_t magic = n >= 4 ? le32(head) : 0;
    if (n >= 4 && (magic & kSkippableMask) == kSkippableMagic) {
      if (n < 8 || at + 8 + le32(head + 4) > size) {
        throw engine::DataError(
            path + ": truncated zstd stream: a skippable frame at byte " + std::to_string(at) +
            " runs past the end of the file, after decompressed byte " + std::to_string(index.stream_size));
      }
      at += 8 + le32(head + 4);
      continue;
    }
    if (n < 4 || magic != kFrameMagic) {
      if (at == 0) {
        std::string start;
        for (std::size_t i = 0; i < std::min<std::size_t>(n, 4); ++i)
          start += head[i] >= 0x20 && head[i] < 0x7f ? static_cast<char>(head[i]) : '?';
        throw engine::DataError(path + " is named .zst but is not zstd-compressed (it starts with '" + start +
                                "'); compress it with zstd or drop the .zst from its name");
      }
      throw engine::DataError(path + ": bad zstd data: no frame starts at compressed byte " +
                              std::to_string(at) + " (after decompressed byte " +
                              std::to_string(index.stream_size) + ")");
    }
    index.frames.push_back({at, index.stream_size});
    ZSTD_frameHeader header{};
    const std::size_t header_status = ZSTD_getFrameHeader(&header, head, n);  // > 0: header cut short
    FrameExtent extent;
    if (header_status != 0 || header.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN ||
        !walk_blocks(file, at, header.headerSize, header.checksumFlag != 0, extent.compressed)) {
      extent = decode_frame(file, at, index.stream_size);
      index.decoded += extent.decompressed;
    } else {
      extent.decompressed = header.frameContentSize;
    }
    if (extent.decompressed == 0) index.frames.pop_back();  // nothing starts there
    at += extent.compressed;
    index.stream_size += extent.decompressed;
  }
  if (index.frames.empty()) index.frames.push_back({0, 0});
  return index;
}

ZstdIndexing index_zstd_inputs(const comm::Communicator& comm, std::vector<InputFile>& files,
                               const ZstdIndexCache* cache) {
  ZstdIndexing result;
  result.decoded.assign(static_cast<std::size_t>(comm.size()), 0);
  std::vector<std::size_t> zstd_files;
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (files[i].zstd && !files[i].indexed) zstd_files.push_back(i);
  }
  if (zstd_files.empty()) return result;
  // Rank r indexes every size-th file; each record: file, stream size, bytes decoded, whether from the
  // cache, frame count, then the frame pairs.
  std::vector<std::uint64_t> mine;
  int code = 0;
  std::string message, cache_error;
  try {
    for (std::size_t j = static_cast<std::size_t>(comm.rank()); j < zstd_files.size();
         j += static_cast<std::size_t>(comm.size())) {
      const InputFile& file = files[zstd_files[j]];
      bool cached = false;
      std::string store_error;
      const ZstdIndex index =
          cache != nullptr ? cache->index(file, cached, store_error) : index_zstd_file(file.path, file.size);
      if (cache_error.empty()) cache_error = store_error;
      mine.push_back(zstd_files[j]);
      mine.push_back(index.stream_size);
      mine.push_back(index.decoded);
      mine.push_back(cached ? 1 : 0);
      mine.push_back(index.frames.size());
      for (const auto& frame : index.frames) {
        mine.push_back(frame.compressed_offset);
        mine.push_back(frame.stream_offset);
      }
    }
  } catch (const engine::Error& e) {
    code = static_cast<int>(e.code());
    message = e.what();
  } catch (const std::exception& e) {
    code = static_cast<int>(engine::ExitCode::internal);
    message = std::string("internal error: ") + e.what();
  }
  // Ranks with fewer (or no) files to index wait here for the others without polling.
  comm.sleeping_barrier("indexing .jsonl.zst inputs");
  // The lowest failing rank's error, on every rank, without a "rank R:" prefix: the problem is the input's.
  const std::vector<int> codes = comm.allgather(code);
  for (int r = 0; r < comm.size(); ++r) {
    if (codes[static_cast<std::size_t>(r)] == 0) continue;
    comm.bcast(message, r);
    engine::throw_agreed_error(static_cast<engine::ExitCode>(codes[static_cast<std::size_t>(r)]), message);
  }
  const std::vector<std::uint64_t> all = comm.allgatherv(mine);
  std::vector<int> indexed_by(files.size(), 0);
  for (std::size_t j = 0; j < zstd_files.size(); ++j)
    indexed_by[zstd_files[j]] = static_cast<int>(j % static_cast<std::size_t>(comm.size()));
  for (std::size_t pos = 0; pos < all.size();) {
    InputFile& file = files.at(all[pos]);
    file.stream_size = all[pos + 1];
    result.decoded[static_cast<std::size_t>(indexed_by[all[pos]])] += all[pos + 2];
    ++result.files;
    result.from_cache += all[pos + 3];
    const std::uint64_t count = all[pos + 4];
    pos += 5;
    file.frames.clear();
    for (std::uint64_t k = 0; k < count; ++k, pos += 2) file.frames.push_back({all[pos], all[pos + 1]});
    file.indexed = true;
  }
  // The lowest rank's failure to write the cache, if any (a warning for the job to give once).
  const std::vector<int> failed = comm.allgather(cache_error.empty() ? 0 : 1);
  for (int r = 0; r < comm.size(); ++r) {
    if (failed[static_cast<std::size_t>(r)] == 0) continue;
    comm.bcast(cache_error, r);
    result.cache_error = cache_error;
    break;
  }
  return result;
}

}  // namespace skein::io
