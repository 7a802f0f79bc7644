// The input's global byte space cut into fixed pieces: the unit of work and of checkpoints. Piece
// boundaries do not depend on the rank count, so a run can resume on any number of ranks.
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
      zstd_.push_back(file.zstd);
      base += file.size;
    }
    total_ = base;
    count_ = (total_ + piece_bytes_ - 1) / piece_bytes_;
  }

  std::uint64_t count() const { return count_; }
  io::ByteRange range(std::uint64_t piece) const {
    return {piece * piece_bytes_, std::min(total_, (piece + 1) * piece_bytes_)};
  }
  // The piece a line belongs to: the one holding its first byte (a .zst file's lines: its first byte).
  std::uint64_t piece_of(std::uint32_t file_index, std::uint64_t byte_offset) const {
    return (file_base_[file_index] + (zstd_[file_index] ? 0 : byte_offset)) / piece_bytes_;
  }

  // Rank r of P gets the r-th contiguous share of `pending` (sorted): [r*m/P, (r+1)*m/P).
  static std::vector<std::uint64_t> share(const std::vector<std::uint64_t>& pending, int rank, int size) {
    const std::size_t m = pending.size();
    const std::size_t begin = m * static_cast<std::size_t>(rank) / static_cast<std::size_t>(size);
    const std::size_t end = m * static_cast<std::size_t>(rank + 1) / static_cast<std::size_t>(size);
    return std::vector<std::uint64_t>(pending.begin() + static_cast<std::ptrdiff_t>(begin),
                                      pending.begin() + static_cast<std::ptrdiff_t>(end));
  }
  // The rank whose share of all pieces holds `piece`.
  static int owner(std::uint64_t piece, std::uint64_t count, int size) {
    // Inverse of share() over [0, count): the largest r with r*count/size <= piece.
    int r = static_cast<int>((piece + 1) * static_cast<std::uint64_t>(size) / std::max<std::uint64_t>(count, 1));
    while (r > 0 && static_cast<std::uint64_t>(r) * count / static_cast<std::uint64_t>(size) > piece) --r;
    while (r + 1 < size && static_cast<std::uint64_t>(r + 1) * count / static_cast<std::uint64_t>(size) <= piece) ++r;
    return std::min(r, size - 1);
  }

 private:
  std::uint64_t piece_bytes_;
  std::uint64_t total_ = 0;
  std::uint64_t count_ = 0;
  std::vector<std::uint64_t> file_base_;
  std::vector<bool> zstd_;
};

}  // namespace skein::dsir
