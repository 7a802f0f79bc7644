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
  // How much faster zstd decodes than the featurizer reads: the cost model of cuts() charges 1 per byte
  // decoded and kDecodeOverFeaturise per byte featurised. Measured (bench/README.md ## dsir-scale,
  // "Cost-balanced cuts", thread CPU time, a 2 GB single-frame gen_pile shard): decoding ~1.0 GB/s,
  // reading + featurising ~0.30 GB/s with the decoding, so featurising alone ~2.5x decoding; earlier, more
  // loaded measurements gave ~3x (700 and 230 MB/s). 3 leans toward the even cut.
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
  // pending.size(). The parts balance their estimated cost (ShareCosts): the largest is the smallest
  // possible, found by a binary search on it with a greedy sweep (each rank in turn takes pieces while its
  // cost stays within the bound); within that bound each cut is placed where its rank's cost first reaches
  // an even share of what is left. Only plain files: the even share (every byte
  // costs the same, so it is within one piece of the best, and it does not move with piece sizes).
  // Deterministic: every rank gets the same cuts from the same `pending`.
  std::vector<std::uint64_t> cuts(const std::vector<std::uint64_t>& pending, int size) const {
    const comm::BlockPartition even(pending.size(), size);
    std::vector<std::uint64_t> cut(static_cast<std::size_t>(size) + 1);
    for (int k = 0; k <= size; ++k) cut[static_cast<std::size_t>(k)] = even.begin(k);
    const ShareCosts costs(*this, pending);
    if (!costs.any_compressed() || size == 1) return cut;
    const std::uint64_t n = pending.size();
    // The smallest bound on a rank's cost that `size` ranks meet. Greedy is optimal because a share's cost
    // never grows when it loses pieces at either end (see ShareCosts).
    auto fits = [&](std::uint64_t bound) {
      std::uint64_t at = 0;
      for (int k = 0; k < size && at < n; ++k) at = costs.reach(at, bound);
      return at == n;
    };
    std::uint64_t low = 0, high = costs.of(0, n);  // fits(high)
    while (low < high) {
      const std::uint64_t mid = low + (high - low) / 2;
      if (fits(mid)) {
        high = mid;
      } else {
        low = mid + 1;
      }
    }
    const std::uint64_t bound = high;
    // first_after[m]: the earliest position from which the last m ranks can cover the rest within `bound`.
    std::vector<std::uint64_t> first_after(static_cast<std::size_t>(size) + 1, n);
    for (int m = 1; m <= size; ++m) {
      first_after[static_cast<std::size_t>(m)] =
          costs.reach_back(first_after[static_cast<std::size_t>(m) - 1], bound);
    }
    cut[0] = 0;
    for (int k = 0; k + 1 < size; ++k) {
      const std::uint64_t begin = cut[static_cast<std::size_t>(k)];
      const std::uint64_t lowest = std::max(begin, first_after[static_cast<std::size_t>(size - 1 - k)]);
      const std::uint64_t highest = costs.reach(begin, bound);
      const std::uint64_t even_share = costs.of(begin, n) / static_cast<std::uint64_t>(size - k);
      // The first end whose share costs at least the even share of what is left, within [lowest, highest].
      std::uint64_t a = lowest, b = highest;
      while (a < b) {
        const std::uint64_t mid = a + (b - a) / 2;
        if (costs.of(begin, mid) >= even_share) {
          b = mid;
        } else {
          a = mid + 1;
        }
      }
      cut[static_cast<std::size_t>(k) + 1] = a;
    }
    cut[static_cast<std::size_t>(size)] = n;
    return cut;
  }
  // Rank `rank` of `size`'s part of `pending`, as positions in it.
  comm::IndexRange share(const std::vector<std::uint64_t>& pending, int rank, int size) const {
    const auto cut = cuts(pending, size);
    return {cut[static_cast<std::size_t>(rank)], cut[static_cast<std::size_t>(rank) + 1]};
  }
  // What reading `piece` costs a reader already at its start (featurising, and decoding if compressed),
  // and what entering it costs a reader that comes from elsewhere (decoding to skip from the last restart
  // point), in the units of cuts().
  std::uint64_t read_cost(std::uint64_t piece) const {
    bool compressed = false;
    return read_cost(range(piece), compressed);
  }
  std::uint64_t entry_cost(std::uint64_t piece) const { return entry_cost_at(range(piece).begin); }

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
  // The estimated cost of reading a run of `pending` (positions [begin, end)) as one rank does, in units of
  // decoding one byte (JsonlShard's way): its first piece's reader starts at the last restart point (frame
  // start) at or before the byte before the piece and decodes up to it, discarding the output (a plain
  // file is entered anywhere); each piece's bytes cost kDecodeOverFeaturise to featurise plus 1 to decode
  // if compressed; between two pending pieces with done ones in between (a resumed pass) the reader keeps
  // its decoder in the same file and decodes through the gap. An unindexed .zst file (read whole in the
  // piece of its first byte) costs its extent at that piece. A share's cost never grows when it loses a
  // piece at either end: entering a file later skips at most what reading the dropped pieces decoded.
  class ShareCosts {
   public:
    ShareCosts(const Pieces& pieces, const std::vector<std::uint64_t>& pending)
        : first_(pending.size()), sum_(pending.size() + 1, 0) {
      for (std::size_t i = 0; i < pending.size(); ++i) {
        const io::ByteRange range = pieces.range(pending[i]);
        const std::uint64_t read = pieces.read_cost(range, any_compressed_);
        const std::uint64_t enter =
            pieces.entry_cost_at(range.begin);  // decoding to skip when a share starts here
        first_[i] = enter + read;
        std::uint64_t link = enter;
        if (i > 0) {
          const io::ByteRange previous = pieces.range(pending[i - 1]);
          const std::size_t f = pieces.file_at(previous.end - 1);
          if (previous.end == range.begin) {
            link = 0;
          } else if (pieces.file_at(range.begin) == f) {
            link = pieces.restart_points_[f].empty() ? 0 : range.begin - previous.end;
          }
        }
        sum_[i + 1] = sum_[i] + (i > 0 ? link : 0) + read;
      }
    }
    bool any_compressed() const { return any_compressed_; }
    // Cost of positions [begin, end) read by one rank (0 when empty).
    std::uint64_t of(std::uint64_t begin, std::uint64_t end) const {
      if (end <= begin) return 0;
      return first_[begin] + sum_[end] - sum_[begin + 1];
    }
    // The largest end such that [begin, end) costs at most `bound` (begin itself when one piece is more).
    std::uint64_t reach(std::uint64_t begin, std::uint64_t bound) const {
      if (begin >= first_.size() || first_[begin] > bound) return begin;
      // of(begin, end) = first_[begin] + sum_[end] - sum_[begin + 1], non-decreasing in end.
      const std::uint64_t limit = bound - first_[begin] + sum_[begin + 1];
      return static_cast<std::uint64_t>(
                 std::upper_bound(sum_.begin() + static_cast<std::ptrdiff_t>(begin) + 1, sum_.end(), limit) -
                 sum_.begin()) -
             1;
    }
    // The smallest begin such that [begin, end) costs at most `bound` (non-increasing in begin).
    std::uint64_t reach_back(std::uint64_t end, std::uint64_t bound) const {
      std::uint64_t a = 0, b = end;
      while (a < b) {
        const std::uint64_t mid = a + (b - a) / 2;
        if (of(mid, end) <= bound) {
          b = mid;
        } else {
          a = mid + 1;
        }
      }
      return a;
    }

   private:
    std::vector<std::uint64_t> first_;  // position i as a share's first: decoding to skip to it + reading it
    std::vector<std::uint64_t> sum_;    // prefix sums of reading + reaching each position from the one before
    bool any_compressed_ = false;
  };

  // Reading the bytes of `range`: featurising each, and decoding each compressed one.
  std::uint64_t read_cost(io::ByteRange range, bool& any_compressed) const {
    std::uint64_t cost = 0;
    for (std::size_t f = file_at(range.begin); f < file_base_.size() && file_base_[f] < range.end; ++f) {
      const std::uint64_t begin = std::max(range.begin, file_base_[f]);
      const std::uint64_t end = std::min(range.end, file_base_[f] + file_extent(f));
      if (end <= begin) continue;
      if (whole_[f]) {  // read whole by the piece of its first byte
        any_compressed = true;
        if (begin == file_base_[f]) cost += file_extent(f) * (kDecodeOverFeaturise + 1);
      } else if (!restart_points_[f].empty()) {
        any_compressed = true;
        cost += (end - begin) * (kDecodeOverFeaturise + 1);
      } else {
        cost += (end - begin) * kDecodeOverFeaturise;
      }
    }
    return cost;
  }
  // Decoding a reader discards to enter the byte space at `at`: from the last restart point at or before
  // the byte before it (the reader looks at that byte to see whether a line starts at `at`).
  std::uint64_t entry_cost_at(std::uint64_t at) const {
    if (at >= total_) return 0;
    const std::size_t f = file_at(at);
    const auto& starts = restart_points_[f];
    const std::uint64_t offset = at - file_base_[f];
    if (starts.empty() || offset == 0) return 0;
    const auto next = std::upper_bound(starts.begin(), starts.end(), offset - 1);
    return offset - *(next - 1);  // starts[0] is 0
  }

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
