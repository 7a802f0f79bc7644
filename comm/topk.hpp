// Distributed top-k: the k best (largest key, then smallest id) candidates over all ranks, in O(k) memory.
#pragma once

#include "comm/communicator.hpp"

#include <cstdint>
#include <vector>

namespace skein::comm {

// `id` is a global identity (unique over all ranks); it breaks ties, so the result never depends on the rank
// count. `value` is carried along (e.g. a document's log weight when `key` holds added noise).
struct Candidate {
  double key;
  std::uint64_t id;
  double value;
};

// True when `a` ranks before `b`: larger key, then smaller id.
inline bool ranks_before(const Candidate& a, const Candidate& b) {
  return a.key > b.key || (a.key == b.key && a.id < b.id);
}

// The best k candidates one rank has seen, kept in a buffer pruned to k whenever it reaches 2k, so pushes
// cost amortised O(1) and memory stays O(k).
class LocalTopK {
 public:
  explicit LocalTopK(std::uint64_t k) : k_(k) {}
  void push(const Candidate& candidate);
  // The best min(k, seen) candidates, best first.
  std::vector<Candidate> best() const;
  std::uint64_t k() const { return k_; }
  // Replaces the content (used when restoring saved state).
  void assign(std::vector<Candidate> candidates);

 private:
  void prune();
  std::uint64_t k_;
  std::vector<Candidate> buffer_;
};

// Collective. `local` holds this rank's candidates (any number, e.g. LocalTopK::best()). Returns the ones
// among them that belong to the global top k, best first. Keys must not be NaN. Finds the k-th best by
// bisection on its bit pattern (one small allreduce per bit), so no candidate list is ever gathered.
std::vector<Candidate> select_global_topk(const Communicator& comm, std::vector<Candidate> local,
                                          std::uint64_t k);

}  // namespace skein::comm
