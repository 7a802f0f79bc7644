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

  // The index of `file`: the cache's entry if it matches the file as it is now (`from_cache`), else
  // index_zstd_file's, which is then kept (creating the directory); `store_error` says why it could not be
  // ("" when it was, or when the entry was used). Throws what index_zstd_file throws.
  ZstdIndex index(const InputFile& file, bool& from_cache, std::string& store_error) const;

 private:
  // The entry's path and the facts about `file` it must match ("" path: the file cannot be cached).
  struct Key {
    std::string entry;
    std::string real_path;
    std::string stamp;  // "size mtime_s mtime_ns head_tail_hash"
  };
  Key key_of(const InputFile& file) const;
  bool load(const Key& key, const InputFile& file, ZstdIndex& index) const;
  std::string store(const Key& key, const ZstdIndex& index) const;  // "" when done, else why not

  std::string dir_;
};

}  // namespace skein::io
