// The one even-share rule: n items split over P parts, part r owning [r*n/P, (r+1)*n/P).
#pragma once

#include "engine/error.hpp"

#include <cstdint>
#include <string>

namespace skein::comm {

// A half-open range of item indices.
struct IndexRange {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  std::uint64_t size() const { return end - begin; }
  bool operator==(const IndexRange& other) const { return begin == other.begin && end == other.end; }
};

// Every part gets floor or ceil of n/P items, in order; parts may be empty when n < P. The products are
// taken in 128 bits so r*n cannot overflow for any 64-bit n.
class BlockPartition {
 public:
  BlockPartition(std::uint64_t n, int parts) : n_(n), parts_(parts) {
    if (parts <= 0) throw engine::InternalError("BlockPartition: " + std::to_string(parts) + " parts");
  }

  std::uint64_t size() const { return n_; }
  int parts() const { return parts_; }

  // First item of `part`; begin(parts()) == size().
  std::uint64_t begin(int part) const {
    check_part(part, parts_);
    return static_cast<std::uint64_t>(wide{n_} * static_cast<unsigned>(part) / static_cast<unsigned>(parts_));
  }
  IndexRange range(int part) const {
    check_part(part, parts_ - 1);
    return {begin(part), begin(part + 1)};
  }
  // The part owning item i: the largest r with r*n/P <= i. Total for any i (i >= size() gives parts()-1),
  // so empty parts never own anything.
  int owner(std::uint64_t i) const {
    if (n_ == 0) return parts_ - 1;
    // r*n/P <= i  <=>  r*n < (i+1)*P  <=>  r <= ((i+1)*P - 1) / n.
    const wide r = ((wide{i} + 1) * static_cast<unsigned>(parts_) - 1) / n_;
    return r >= static_cast<wide>(parts_) ? parts_ - 1 : static_cast<int>(r);
  }

 private:
  using wide = unsigned __int128;
  static void check_part(int part, int last) {
    if (part < 0 || part > last)
      throw engine::InternalError("BlockPartition: no part " + std::to_string(part));
  }

  std::uint64_t n_;
  int parts_;
};

}  // namespace skein::comm
