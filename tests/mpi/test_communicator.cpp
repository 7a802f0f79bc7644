// Communicator collectives and error agreement, at 1, 2 and 3 ranks.
#include "comm/view_collectives.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <numeric>
#include <thread>

using skein::comm::Communicator;
using skein::comm::Op;

TEST(Communicator, ScalarCollectives) {
  Communicator comm(MPI_COMM_WORLD);
  const int p = comm.size(), r = comm.rank();
  EXPECT_EQ(comm.allreduce(r + 1, Op::sum), p * (p + 1) / 2);
  EXPECT_EQ(comm.allreduce(r, Op::max), p - 1);
  EXPECT_EQ(comm.allreduce(static_cast<double>(r), Op::min), 0.0);
  EXPECT_EQ(comm.exscan<std::uint64_t>(10), static_cast<std::uint64_t>(10 * r));
  std::string text = r == 0 ? "hello from rank 0" : "";
  comm.bcast(text, 0);
  EXPECT_EQ(text, "hello from rank 0");
}

// The last rank arrives late; nobody may leave before it arrives, and the barrier sleeps rather than spins:
// the early ranks use much less CPU than the wall time they wait.
TEST(Communicator, SleepingBarrierWaitsForTheLastRankWithoutSpinning) {
  Communicator comm(MPI_COMM_WORLD);
  using Clock = std::chrono::steady_clock;
  const double late_seconds = 0.3;
  comm.barrier();
  const auto start = Clock::now();
  std::clock_t cpu_start = std::clock();
  if (comm.rank() == comm.size() - 1)
    std::this_thread::sleep_for(std::chrono::duration<double>(late_seconds));
  comm.sleeping_barrier("test sleeping barrier");
  const double waited = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  EXPECT_GE(waited, comm.size() > 1 ? late_seconds : 0.0);
  if (comm.size() > 1 && comm.rank() != comm.size() - 1) EXPECT_LT(cpu, 0.5 * waited) << "the wait spun";
  comm.sleeping_barrier("test sleeping barrier, again");  // reusable: tags do not leak between calls
}

TEST(Communicator, GathervConcatenatesInRankOrder) {
  Communicator comm(MPI_COMM_WORLD);
  std::vector<int> local(static_cast<std::size_t>(comm.rank()), comm.rank());  // rank r sends r copies of r
  const auto all = comm.allgatherv(local);
  std::vector<int> expected;
  for (int q = 0; q < comm.size(); ++q) expected.insert(expected.end(), static_cast<std::size_t>(q), q);
  EXPECT_EQ(all, expected);
  const auto at_root = comm.gatherv(local, 0);
  EXPECT_EQ(at_root, comm.rank() == 0 ? expected : std::vector<int>{});
}

namespace {
// values(i) = i. A kernel at namespace scope: nvcc refuses device lambdas in a TEST body (a private member).
void fill_with_index(const Kokkos::View<double*>& values) {
  Kokkos::parallel_for(
      "fill", values.extent(0), KOKKOS_LAMBDA(const int i) { values(i) = i; });
}
}  // namespace

TEST(Communicator, KokkosViewCollectives) {
  Communicator comm(MPI_COMM_WORLD);
  Kokkos::View<double*> values("values", 5);
  fill_with_index(values);
  comm.allreduce(values, Op::sum);
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), values);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(host(i), i * comm.size());

  Kokkos::View<std::int64_t*> seeds("seeds", 3);
  if (comm.rank() == comm.size() - 1) Kokkos::deep_copy(seeds, 99);
  comm.bcast(seeds, comm.size() - 1);
  auto seeds_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), seeds);
  EXPECT_EQ(seeds_host(2), 99);

  Kokkos::View<int*> mine("mine", 2);
  Kokkos::deep_copy(mine, comm.rank());
  const auto gathered = comm.allgatherv(mine);
  ASSERT_EQ(gathered.extent(0), static_cast<std::size_t>(2 * comm.size()));
  EXPECT_EQ(gathered(2 * comm.size() - 1), comm.size() - 1);
}

TEST(Communicator, OneRanksErrorReachesEveryRankWithItsMessage) {
  Communicator comm(MPI_COMM_WORLD);
  const int failing = comm.size() - 1;
  try {
    comm.agree([&] {
      if (comm.rank() == failing) throw skein::engine::DataError("corpus.jsonl:7: bad line");
    });
    FAIL() << "agree did not throw";
  } catch (const skein::engine::DataError& e) {
    const std::string expected = comm.size() > 1
                                     ? "rank " + std::to_string(failing) + ": corpus.jsonl:7: bad line"
                                     : "corpus.jsonl:7: bad line";
    EXPECT_EQ(std::string(e.what()), expected);
    EXPECT_TRUE(e.agreed());
    EXPECT_EQ(e.code(), skein::engine::ExitCode::data);
  }
  // The lowest failing rank speaks; other exception types become internal errors.
  try {
    comm.agree([&] {
      if (comm.rank() == 0) throw std::runtime_error("boom");
      throw skein::engine::UsageError("second");
    });
    FAIL() << "agree did not throw";
  } catch (const skein::engine::Error& e) {
    EXPECT_EQ(e.code(), skein::engine::ExitCode::internal);
    EXPECT_NE(std::string(e.what()).find("boom"), std::string::npos);
  }
  // No error: nothing thrown, and the communicator is still usable.
  comm.agree([] {});
  EXPECT_EQ(comm.allreduce(1, Op::sum), comm.size());
}

TEST(Communicator, ExchangeDeliversEveryItemToItsDestinationInOrder) {
  Communicator comm(MPI_COMM_WORLD);
  const int p = comm.size();
  // Each rank sends items {source, i} to rank i % p.
  struct Item {
    int source, index;
    bool operator==(const Item& o) const { return source == o.source && index == o.index; }
  };
  std::vector<Item> items;
  for (int i = 0; i < 10 + comm.rank(); ++i) items.push_back({comm.rank(), i});
  const auto received = comm.exchange(items, [p](const Item& item) { return item.index % p; });
  std::vector<Item> expected;
  for (int source = 0; source < p; ++source) {
    for (int i = 0; i < 10 + source; ++i) {
      if (i % p == comm.rank()) expected.push_back({source, i});
    }
  }
  EXPECT_TRUE(received == expected);
}
