// Input file lists: config patterns expanded once by rank 0 and shared, so every rank sees the same files.
#pragma once

#include "comm/communicator.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace skein::io {

// Where a zstd frame starts: a point where decoding can begin mid-file.
struct ZstdFrameStart {
  std::uint64_t compressed_offset = 0;  // in the file
  std::uint64_t stream_offset = 0;      // in the decompressed stream
};

struct InputFile {
  std::string path;        // as matched (not canonicalised), for error messages
  std::uint64_t size = 0;  // bytes on disk (compressed size for .zst)
  bool zstd = false;       // ".jsonl.zst": read through the zstd streaming decoder
  // A .zst file indexed by index_zstd_inputs (io/zstd_index.hpp): its decompressed size and frame starts
  // are known, so it occupies stream_size bytes of a reader's byte space and can be split like a plain
  // file. Unindexed, it occupies `size` bytes and is read whole by one reader.
  bool indexed = false;
  std::uint64_t stream_size = 0;
  std::vector<ZstdFrameStart> frames;  // in order; frames[0] starts at 0, 0

  bool splittable() const { return !zstd || indexed; }
  // Bytes the file occupies in a reader's global byte space (offsets of its lines are below this).
  std::uint64_t extent() const { return zstd && indexed ? stream_size : size; }
};

// What JSONL readers accept; a file ending in ".zst" is read through zstd.
inline const std::vector<std::string> kJsonlExtensions = {".jsonl", ".json", ".jsonl.zst"};

// Collective. Rank 0 expands each pattern with glob(3) (sorted matches; patterns in the given order; a
// file matched twice, by any name, is kept once, at its first place), checks and stats every file, and
// broadcasts the list. Errors throw on every rank with the same message, naming `config_key` and the path:
//   UsageError: no patterns, or a file whose name ends in none of `extensions`;
//   DataError: a pattern that matches nothing, a missing or unreadable file, a directory.
std::vector<InputFile> resolve_inputs(const comm::Communicator& comm,
                                      const std::vector<std::string>& patterns, const std::string& config_key,
                                      const std::vector<std::string>& extensions = kJsonlExtensions);

}  // namespace skein::io
