// Indexing .jsonl.zst inputs (decompressed size, frame starts) so that readers can split them across ranks.
#pragma once

#include "comm/communicator.hpp"
#include "io/input_files.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace skein::io {

struct ZstdIndex {
  std::uint64_t stream_size = 0;       // decompressed bytes of the whole file
  std::vector<ZstdFrameStart> frames;  // every frame that holds data (skippable frames are left out)
  std::uint64_t decoded = 0;           // decompressed bytes decoded to find the size (undeclared frames)
};

// Reads one file's frame structure. A frame that declares its content size (ZSTD_compress and the zstd CLI
// write it) is stepped over by its block headers without decoding; one that does not (streaming writers)
// is decoded to count its bytes. Throws DataError naming the file for data that is not zstd, is damaged or
// is truncated (with the decompressed offset where the data ends).
ZstdIndex index_zstd_file(const std::string& path, std::uint64_t size);

class ZstdIndexCache;

// What index_zstd_inputs did, the same on every rank.
struct ZstdIndexing {
  std::vector<std::uint64_t>
      decoded;                   // per rank: decompressed bytes it decoded to index (ZstdIndex::decoded)
  std::uint64_t files = 0;       // .zst files indexed
  std::uint64_t from_cache = 0;  // of them, read from the cache
  std::string cache_error;       // why an index could not be kept in the cache ("" if all were)
};

// Collective: indexes every .zst file of `files` (the files shared out over the ranks, results gathered),
// so that each becomes splittable (InputFile::indexed). A file whose frames do not declare their size costs
// its indexing rank a whole decode, unless `cache` (may be null) holds its index from an earlier run; what
// is indexed goes into the cache. Errors are agreed: every rank throws.
ZstdIndexing index_zstd_inputs(const comm::Communicator& comm, std::vector<InputFile>& files,
                               const ZstdIndexCache* cache = nullptr);

}  // namespace skein::io
