// Distributed top-k against a serial sort of the same global candidates, with ties, at 1, 2 and 3 ranks.
#include "comm/topk.hpp"
#include "engine/random.hpp"

#include <gtest/gtest.h>

#include <algorithm>

using namespace skein::comm;

namespace {

// The global candidate list, identical on every rank. `distinct_keys` small means many ties.
std::vector<Candidate> global_candidates(std::uint64_t n, std::uint64_t seed, std::uint64_t distinct_keys) {
  std::vector<Candidate> all;
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t bits = skein::engine::random_bits(seed, 2u, i);
    const double key = distinct_keys ? static_cast<double>(bits % distinct_keys) - 3.0
                                     : skein::engine::gumbel(seed, 1u, i);
    all.push_back({key, i * 7 + 3, static_cast<double>(i)});
  }
  return all;
}

void check_selection(std::uint64_t n, std::uint64_t k, std::uint64_t seed, std::uint64_t distinct_keys) {
  Communicator comm(MPI_COMM_WORLD);
  const auto all = global_candidates(n, seed, distinct_keys);
  // Block distribution, as documents are spread over ranks.
  const std::uint64_t begin = n * comm.rank() / comm.size(), end = n * (comm.rank() + 1) / comm.size();
  LocalTopK local(k);
  for (std::uint64_t i = begin; i < end; ++i) local.push(all[i]);
  const auto mine = select_global_topk(comm, local.best(), k);

  std::vector<std::uint64_t> ids;
  for (const auto& c : mine) ids.push_back(c.id);
  auto selected = comm.allgatherv(ids);
  std::sort(selected.begin(), selected.end());

  auto expected_all = all;
  std::sort(expected_all.begin(), expected_all.end(), ranks_before);
  expected_all.resize(std::min<std::uint64_t>(k, n));
  std::vector<std::uint64_t> expected;
  for (const auto& c : expected_all) expected.push_back(c.id);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(selected, expected) << "n=" << n << " k=" << k << " distinct=" << distinct_keys;
}

}  // namespace

TEST(TopK, MatchesSerialSortWithDistinctKeys) {
  for (std::uint64_t seed : {1, 2, 3}) {
    check_selection(1000, 37, seed, 0);
    check_selection(5000, 1, seed, 0);
    check_selection(5000, 4999, seed, 0);
  }
}

TEST(TopK, TiesAreBrokenBySmallerId) {
  for (std::uint64_t seed : {4, 5}) {
    check_selection(1000, 100, seed, 3);  // about 333 candidates per key
    check_selection(1000, 500, seed, 1);  // every key equal
  }
}

TEST(TopK, FewerCandidatesThanKSelectsAll) {
  check_selection(10, 50, 6, 0);
  check_selection(0, 5, 6, 0);
}

TEST(TopK, NegativeAndExtremeKeys) {
  Communicator comm(MPI_COMM_WORLD);
  std::vector<Candidate> local;
  if (comm.rank() == 0) local = {{-1e300, 1, 0}, {-0.0, 2, 0}, {1e-300, 3, 0}};
  if (comm.rank() == comm.size() - 1) local.push_back({-5.0, 4, 0});
  const auto mine = select_global_topk(comm, local, 2);
  std::vector<std::uint64_t> ids;
  for (const auto& c : mine) ids.push_back(c.id);
  auto selected = comm.allgatherv(ids);
  std::sort(selected.begin(), selected.end());
  EXPECT_EQ(selected, (std::vector<std::uint64_t>{2, 3}));
}
