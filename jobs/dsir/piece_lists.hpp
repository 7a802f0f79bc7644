// Every rank's pieces of a pass, kept alike on every rank, and the moves that keep the ranks busy to the
// pass's end: at an agreement, a rank about to run out takes the last pieces of the one with most left.
#pragma once

#include "jobs/dsir/pieces.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace skein::dsir {

class PieceLists {
 public:
  struct Move {
    int from, to;
    std::uint64_t count;  // the last `count` pending pieces of `from`, appended in order to `to`'s list
  };

  PieceLists() = default;
  // lists[r]: rank r's pieces in the order it reads them.
  PieceLists(const Pieces& pieces, std::vector<std::vector<std::uint64_t>> lists)
      : pieces_(&pieces), lists_(std::move(lists)), pending_(lists_.size()) {
    for (std::size_t r = 0; r < lists_.size(); ++r) pending_[r] = lists_[r].size();
  }

  const std::vector<std::vector<std::uint64_t>>& lists() const { return lists_; }
  std::vector<std::uint64_t> pending_of(int rank) const {
    const auto& list = lists_[static_cast<std::size_t>(rank)];
    return {list.end() - static_cast<std::ptrdiff_t>(pending_[static_cast<std::size_t>(rank)]), list.end()};
  }

  // Records how many pieces each rank has not read yet (`pending`, agreed), and moves pieces to a rank that
  // would run out before the next agreement (fewer than `starving_below` pending) from the one with the most
  // estimated cost left (Pieces::read_cost, which does not know how fast a rank is: the thief takes about
  // half, and takes again if it runs out again): from that rank's end, while that lowers the larger of
  // their two costs. A rank's first pending piece never moves (it may be part-decoded), nor does a piece
  // whose entry costs more than reading it (the inside of a single zstd frame: the cuts placed those).
  // Deterministic in its arguments.
  std::vector<Move> balance(const std::vector<std::uint64_t>& pending,
                            const std::vector<std::uint64_t>& starving_below) {
    const std::size_t size = lists_.size();
    pending_ = pending;
    std::vector<double> left(size);  // cost of the pending pieces
    for (std::size_t r = 0; r < size; ++r) {
      for (const auto piece : pending_of(static_cast<int>(r)))
        left[r] += static_cast<double>(pieces_->read_cost(piece));
    }
    std::vector<Move> moves;
    for (std::size_t round = 0; round < size; ++round) {
      std::size_t lo = size;  // the starving rank with the least left
      for (std::size_t r = 0; r < size; ++r) {
        if (pending_[r] < starving_below[r] && (lo == size || left[r] < left[lo])) lo = r;
      }
      const auto hi = static_cast<std::size_t>(std::max_element(left.begin(), left.end()) - left.begin());
      if (lo == size || lo == hi) break;
      const auto& from = lists_[hi];
      double hi_left = left[hi], lo_left = left[lo], read = 0;
      std::uint64_t count = 0;
      for (std::uint64_t k = 1; k < pending_[hi]; ++k) {  // from the back; never the first pending
        const std::uint64_t piece = from[from.size() - k];
        const double read_it = static_cast<double>(pieces_->read_cost(piece));
        const double entry = static_cast<double>(pieces_->entry_cost(piece));
        if (entry > read_it) break;
        const double new_hi = left[hi] - read - read_it;
        const double new_lo = left[lo] + entry + read + read_it;
        if (std::max(new_hi, new_lo) >= std::max(hi_left, lo_left)) break;
        hi_left = new_hi;
        lo_left = new_lo;
        read += read_it;
        count = k;
      }
      if (count == 0) break;
      auto& to = lists_[lo];
      to.insert(to.end(), lists_[hi].end() - static_cast<std::ptrdiff_t>(count), lists_[hi].end());
      lists_[hi].resize(lists_[hi].size() - count);
      pending_[hi] -= count;
      pending_[lo] += count;
      left[hi] = hi_left;
      left[lo] = lo_left;
      moves.push_back({static_cast<int>(hi), static_cast<int>(lo), count});
    }
    return moves;
  }

 private:
  const Pieces* pieces_ = nullptr;
  std::vector<std::vector<std::uint64_t>> lists_;
  std::vector<std::uint64_t> pending_;  // per rank, as of the last balance()
};

}  // namespace skein::dsir
