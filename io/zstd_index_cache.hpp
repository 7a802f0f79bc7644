// Indexes of .jsonl.zst files kept in a directory between runs, so a file is decoded to index it only once.
#pragma once

#include "io/input_files.hpp"
#include "io/zstd_index.hpp"

#include <string>

namespace skein::io {

// One small text file per input, named by a hash of the input's real path. An entry records the input's
// size, modification time and head_tail_hash, and is used only while all three still match: a file changed
// since is indexed again (and its entry replaced). Entries are written under a temporary name and renamed,
// so concurrent runs (a Slurm array over the same corpus) never read a half-written one. The cache only
// saves time: an entry that cannot be read or parsed is a miss, and a failure to write one is reported,
// not thrown. Deleting the directory at any time is safe.
class ZstdIndexCache {
 public:
  explicit ZstdIndexCache(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }

  // The index of `file` as the cache holds it, if the entry matches the file as it is now.
  bool load(const InputFile& file, ZstdIndex& index) const;
  // Keeps `index` for `file` (creating the directory); "" when done, else why not.
  std::string store(const InputFile& file, const ZstdIndex& index) const;

 private:
  // The entry's path and the facts about `file` it must match ("" path: the file cannot be cached).
  struct Key {
    std::string entry;
    std::string real_path;
    std::string stamp;  // "size mtime_s mtime_ns head_tail_hash"
  };
  Key key_of(const InputFile& file) const;

  std::string dir_;
};

}  // namespace skein::io
