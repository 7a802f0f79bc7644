#include "comm/topk.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace skein::comm {

void LocalTopK::push(const Candidate& candidate) {
  if (k_ == 0) return;
  buffer_.push_back(candidate);
  if (buffer_.size() >= 2 * k_ + 16) prune();
}

void LocalTopK::prune() {
  if (buffer_.size() <= k_) return;
  std::nth_element(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(k_), buffer_.end(), ranks_before);
  buffer_.resize(k_);
}

std::vector<Candidate> LocalTopK::best() const {
  std::vector<Candidate> result = buffer_;
  if (result.size() > k_) {
    std::nth_element(result.begin(), result.begin() + static_cast<std::ptrdiff_t>(k_), result.end(), ranks_before);
    result.resize(k_);
  }
  std::sort(result.begin(), result.end(), ranks_before);
  return result;
}

void LocalTopK::assign(std::vector<Candidate> candidates) {
  buffer_ = std::move(candidates);
  prune();
}

namespace {

// Maps a double to an unsigned integer with the same order (for non-NaN values).
std::uint64_t ordered_bits(double key) {
  std::uint64_t bits;
  std::memcpy(&bits, &key, sizeof bits);
  return (bits & 0x8000000000000000ull) ? ~bits : bits | 0x8000000000000000ull;
}

// Largest t in [0, 2^64) with count(t) >= k, where count is non-increasing in t and count(0) >= k.
template <class CountAtLeast>
std::uint64_t bisect_largest(const Communicator& comm, std::uint64_t k, CountAtLeast local_count_at_least) {
  std::uint64_t lo = 0, hi = ~0ull;
  while (lo < hi) {
    const std::uint64_t mid = lo + (hi - lo) / 2 + 1;
    const std::uint64_t count = comm.allreduce<std::uint64_t>(local_count_at_least(mid), Op::sum);
    if (count >= k) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

}  // namespace

std::vector<Candidate> select_global_topk(const Communicator& comm, std::vector<Candidate> local,
                                          std::uint64_t k) {
  for (const auto& c : local) {
    if (std::isnan(c.key)) throw engine::InternalError("top-k: NaN key for id " + std::to_string(c.id));
  }
  std::sort(local.begin(), local.end(), ranks_before);
  if (local.size() > k) local.resize(k);
  const std::uint64_t total = comm.allreduce<std::uint64_t>(local.size(), Op::sum);
  if (total <= k) return local;
  if (k == 0) return {};

  // Stage 1: the k-th best key (as ordered bits). `local` is sorted by descending key.
  auto count_key_at_least = [&](std::uint64_t threshold) -> std::uint64_t {
    const auto end = std::partition_point(local.begin(), local.end(),
                                          [&](const Candidate& c) { return ordered_bits(c.key) >= threshold; });
    return static_cast<std::uint64_t>(end - local.begin());
  };
  const std::uint64_t kth_key = bisect_largest(comm, k, count_key_at_least);
  const std::uint64_t above =
      comm.allreduce<std::uint64_t>(kth_key == ~0ull ? 0 : count_key_at_least(kth_key + 1), Op::sum);

  // Stage 2: among candidates whose key equals the k-th key, the (k - above) smallest ids win. Within equal
  // keys `local` is sorted by ascending id, so ~id is descending and the same bisection applies.
  const auto tie_begin = std::partition_point(local.begin(), local.end(),
                                              [&](const Candidate& c) { return ordered_bits(c.key) > kth_key; });
  const auto tie_end = std::partition_point(tie_begin, local.end(),
                                            [&](const Candidate& c) { return ordered_bits(c.key) >= kth_key; });
  auto count_ties_at_least = [&](std::uint64_t threshold) -> std::uint64_t {
    const auto end = std::partition_point(tie_begin, tie_end, [&](const Candidate& c) { return ~c.id >= threshold; });
    return static_cast<std::uint64_t>(end - tie_begin);
  };
  const std::uint64_t needed = k - above;
  const std::uint64_t last_inverted_id = bisect_largest(comm, needed, count_ties_at_least);

  std::vector<Candidate> selected(local.begin(), tie_begin);
  for (auto it = tie_begin; it != tie_end && ~it->id >= last_inverted_id; ++it) selected.push_back(*it);
  return selected;
}

}  // namespace skein::comm
