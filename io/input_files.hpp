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
  std::vector<ZstdFrameStart>
      frames;  // in order; frames[0] at stream offset 0 (a skippable frame may precede it)

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

// FNV-1a of the first and last 64 KiB of `path` (all of it when it is smaller than 128 KiB), `size` bytes
// long: what input_identities records of each file. Throws DataError naming an unreadable file.
std::uint64_t head_tail_hash(const std::string& path, std::uint64_t size);

// What a checkpoint records of its input files, so that a resume on inputs changed since is refused rather
// than mixing old and new data: per file, its size and a hash of its first and last 64 KiB (a truncated,
// appended or rewritten file differs). Not its mtime: inputs copied to a scratch file system before a
// resume keep their bytes, not their times. Flattened as [size, hash] per file, in the list's order.
// Collective: rank 0 reads the files, every rank gets the result (agreed DataError naming an unreadable
// file).
std::vector<std::uint64_t> input_identities(const comm::Communicator& comm,
                                            const std::vector<InputFile>& files);

// Throws DataError (agreed: every rank passes the same arguments) naming the first of `files` whose identity
// differs from the one `recorded` at the checkpoint, or saying the number of files changed. `now` is
// input_identities(files); `keys` names the config keys the files come from.
void check_inputs_unchanged(const std::vector<InputFile>& files, const std::vector<std::uint64_t>& now,
                            const std::vector<std::uint64_t>& recorded, const std::string& keys);

}  // namespace skein::io
