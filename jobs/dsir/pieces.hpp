// The input's global byte space cut into fixed pieces: the unit of work and of checkpoints. Piece
// boundaries do not depend on the rank count, so a run can resume on any number of ranks. An indexed .zst
// file (io/zstd_index.hpp) occupies its decompressed size, so its pieces are decompressed byte ranges.
#pragma once

#include "io/input_files.hpp"
#include "io/jsonl_reader.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace skein::dsir {

class Pieces {
 public:
  Pieces(const std::vector<io::InputFile>& files, std::uint64_t piece_bytes) : piece_bytes_(piece_bytes) {
    std::uint64_t base = 0;
    for (const auto& file : files) {
      file_base_.push_back(base);
      whole_.push_back(!file.splittable());
      base += file.extent();
    }
    total_ = base;
    count_ = (total_ + piece_bytes_ - 1) / piece_bytes_;
  }

  std::uint64_t count() const { return count_; }
  io::ByteRange range(std::uint64_t piece) const {
    return {piece * piece_bytes_, std::min(total_, (piece + 1) * piece_bytes_)};
  }
  // The piece a line belongs to: the one holding its first byte (an indexed .zst file's lines: their first
  // byte in the decompressed stream; an unindexed one's: the file's first byte).
  std::uint64_t piece_of(std::uint32_t file_index, std::uint64_t byte_offset) const {
    return (file_base_[file_index] + (whole_[file_index] ? 0 : byte_offset)) / piece_bytes_;
  }

 private:
  std::uint64_t piece_bytes_;
  std::uint64_t total_ = 0;
  std::uint64_t count_ = 0;
  std::vector<std::uint64_t> file_base_;
  std::vector<bool> whole_;  // an unindexed .zst file: read whole, in the piece of its first byte
};

}  // namespace skein::dsir
