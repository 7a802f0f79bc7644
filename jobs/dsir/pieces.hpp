// The input's global byte space cut into fixed pieces: the unit of work and of checkpoints. Piece
// boundaries do not depend on the rank count, so a run can resume on any number of ranks. An indexed .zst
// file (io/zstd_index.hpp) occupies its decompressed size, so its pieces are decompressed byte ranges.
#pragma once

#include "comm/block_partition.hpp"
#include "io/input_files.hpp"
#include "io/jsonl_reader.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace skein::dsir {

class Pieces {
 public:
  // How much faster zstd decodes than the featurizer reads (measured ~3x, see the README): a rank that must
  // decode B bytes before its share to skip them loses about as much time as featurising B / 3 bytes.
  static constexpr std::uint64_t kDecodeOverFeaturise = 3;

  Pieces(const std::vector<io::InputFile>& files, std::uint64_t piece_bytes) : piece_bytes_(piece_bytes) {
    std::uint64_t base = 0;
    for (const auto& file : files) {
      file_base_.push_back(base);
      whole_.push_back(!file.splittable());
      std::vector<std::uint64_t> starts;  // where decoding can begin (an indexed .zst file's frames)
      if (file.zstd && file.indexed) {
        for (const auto& frame : file.frames) starts.push_back(frame.stream_offset);
      }
      restart_points_.push_back(std::move(starts));
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

  // Where each of `size` ranks' contiguous parts of `pending` (piece ids, ascending) begin; cuts[size] is
  // pending.size(). The even share, except that a cut which would make a rank decode far into a compressed
  // file only to skip it (a single frame cannot be entered mid-way) moves forward past that file's end (or
  // the next frame start) when the previous rank reads the few pieces left there sooner than the skip would
  // take. Plain files are never moved for: they can be entered anywhere.
  std::vector<std::uint64_t> cuts(const std::vector<std::uint64_t>& pending, int size) const {
    const comm::BlockPartition even(pending.size(), size);
    std::vector<std::uint64_t> cut(static_cast<std::size_t>(size) + 1);
    for (int k = 0; k <= size; ++k) cut[static_cast<std::size_t>(k)] = even.begin(k);
    for (std::size_t k = 1; k + 1 < cut.size(); ++k) {
      const std::uint64_t i = cut[k];
      if (i >= pending.size() || i < cut[k - 1]) continue;
      const std::uint64_t at = range(pending[i]).begin;
      const std::size_t f = file_at(at);
      const auto& starts = restart_points_[f];
      if (starts.empty()) continue;
      const std::uint64_t offset = at - file_base_[f];
      const auto next = std::upper_bound(starts.begin(), starts.end(), offset);
      const std::uint64_t skip = offset - *(next - 1);  // frames[0] starts at 0
      const std::uint64_t resume = next == starts.end() ? file_extent(f) : *next;
      if (skip <= piece_bytes_) continue;
      // The first pending piece that begins at or after the restart point, if the previous rank can take
      // the pieces before it sooner than this rank could skip, and the next rank keeps a share.
      std::uint64_t j = i;
      while (j < pending.size() && range(pending[j]).begin < file_base_[f] + resume) ++j;
      const std::uint64_t moved_bytes = (j - i) * piece_bytes_;
      if (j < cut[k + 1] && moved_bytes * kDecodeOverFeaturise < skip) cut[k] = j;
    }
    return cut;
  }
  // Rank `rank` of `size`'s part of `pending`, as positions in it.
  comm::IndexRange share(const std::vector<std::uint64_t>& pending, int rank, int size) const {
    const auto cut = cuts(pending, size);
    return {cut[static_cast<std::size_t>(rank)], cut[static_cast<std::size_t>(rank) + 1]};
  }
  // Which rank reads each piece when every piece is pending (as in the collect pass).
  class Owners {
   public:
    explicit Owners(std::vector<std::uint64_t> cuts) : cuts_(std::move(cuts)) {}
    int of(std::uint64_t piece) const {
      return static_cast<int>(std::upper_bound(cuts_.begin(), cuts_.end(), piece) - cuts_.begin()) - 1;
    }

   private:
    std::vector<std::uint64_t> cuts_;
  };
  Owners owners(int size) const {
    std::vector<std::uint64_t> all(count_);
    for (std::uint64_t p = 0; p < count_; ++p) all[p] = p;
    return Owners(cuts(all, size));
  }

 private:
  std::size_t file_at(std::uint64_t offset) const {  // the file holding global byte `offset`
    std::size_t f = static_cast<std::size_t>(std::upper_bound(file_base_.begin(), file_base_.end(), offset) -
                                             file_base_.begin()) -
                    1;
    while (f + 1 < file_base_.size() && file_extent(f) == 0) ++f;
    return f;
  }
  std::uint64_t file_extent(std::size_t f) const {
    return (f + 1 < file_base_.size() ? file_base_[f + 1] : total_) - file_base_[f];
  }

  std::uint64_t piece_bytes_;
  std::uint64_t total_ = 0;
  std::uint64_t count_ = 0;
  std::vector<std::uint64_t> file_base_;
  std::vector<bool> whole_;  // an unindexed .zst file: read whole, in the piece of its first byte
  std::vector<std::vector<std::uint64_t>> restart_points_;
};

}  // namespace skein::dsir
