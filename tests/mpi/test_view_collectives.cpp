// Movable Communicator and split; allreduce on rank-1 and rank-2 Views and fused arrays; "rank 0 decides";
// non-blocking point-to-point whose Requests keep their Views alive.
// skein-test-ranks: 1 2 3 4
#include "comm/view_collectives.hpp"
#include "comm/request.hpp"

#include <gtest/gtest.h>

#include <array>
#include <stdexcept>
#include <string>
#include <vector>

using skein::comm::Communicator;
using skein::comm::Op;
using skein::comm::Request;

namespace {

// Kernels live at namespace scope (no device lambdas inside TEST bodies).
void fill_vector(const Kokkos::View<double*>& v, int rank) {
  Kokkos::parallel_for(
      "fill_vector", v.extent(0), KOKKOS_LAMBDA(const int i) { v(i) = i + 0.5 * rank; });
}
template <class Layout>
void fill_matrix(const Kokkos::View<double**, Layout>& m, int rank) {
  Kokkos::parallel_for(
      "fill_matrix", Kokkos::MDRangePolicy<Kokkos::Rank<2>>({0, 0}, {m.extent(0), m.extent(1)}),
      KOKKOS_LAMBDA(const int i, const int j) { m(i, j) = 10.0 * i + j + rank; });
}
void fill_ints(const Kokkos::View<std::int64_t*, Kokkos::HostSpace>& v, std::int64_t base) {
  for (std::size_t i = 0; i < v.extent(0); ++i) v(i) = base + static_cast<std::int64_t>(i);
}

struct Choice {
  int steps;
  double tolerance;
  char name[8];
};

}  // namespace

TEST(Communicator, MoveLeavesANullCommunicatorBehind) {
  Communicator a(MPI_COMM_WORLD);
  const MPI_Comm native = a.native();
  Communicator b(std::move(a));
  EXPECT_EQ(a.native(),
            MPI_COMM_NULL);  // NOLINT(bugprone-use-after-move): the moved-from state is the contract
  EXPECT_TRUE(a.is_null());
  EXPECT_EQ(b.native(), native);
  EXPECT_EQ(b.allreduce(1, Op::sum), b.size());
  Communicator c(MPI_COMM_WORLD);
  c = std::move(b);  // frees c's own communicator, takes b's
  EXPECT_EQ(c.native(), native);
  EXPECT_EQ(b.native(), MPI_COMM_NULL);  // NOLINT(bugprone-use-after-move)
  std::vector<Communicator> many;
  for (int i = 0; i < 3; ++i) many.emplace_back(MPI_COMM_WORLD);  // vector growth moves them
  for (const auto& m : many) EXPECT_EQ(m.allreduce(m.rank(), Op::max), m.size() - 1);
}

TEST(Communicator, SplitGroupsRanksByColorOrderedByKey) {
  const Communicator world(MPI_COMM_WORLD);
  const int p = world.size(), r = world.rank();
  // Even and odd ranks, reversed order inside each group.
  const Communicator half = world.split(r % 2, -r);
  const int group_size = (p - r % 2 + 1) / 2;
  EXPECT_EQ(half.size(), group_size);
  EXPECT_EQ(half.rank(), group_size - 1 - r / 2);
  EXPECT_EQ(half.allreduce(r, Op::sum), world.allreduce(r % 2 == 0 ? r : 0, Op::sum) * (r % 2 == 0) +
                                            world.allreduce(r % 2 == 1 ? r : 0, Op::sum) * (r % 2 == 1));
  // A rank that opts out gets a null communicator and still took part.
  const Communicator some = world.split(r == 0 ? Communicator::no_color : 0, r);
  EXPECT_EQ(some.is_null(), r == 0);
  if (!some.is_null()) {
    EXPECT_EQ(some.size(), p - 1);
  }
  // Errors on a split communicator come back as exceptions, not aborts (MPI_ERRORS_RETURN).
  if (!some.is_null()) {
    int value = 1;
    EXPECT_THROW(some.bcast(&value, 1, some.size() + 5), skein::comm::MpiError);
  }
}

TEST(Communicator, AllreduceOnRankOneAndRankTwoViews) {
  const Communicator comm(MPI_COMM_WORLD);
  const int p = comm.size();
  const double rank_sum = p * (p - 1) / 2.0;
  Kokkos::View<double*> v("v", 7);
  fill_vector(v, comm.rank());
  comm.allreduce(v, Op::sum);  // no fence by the caller: allreduce fences
  auto hv = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
  for (int i = 0; i < 7; ++i) EXPECT_DOUBLE_EQ(hv(i), p * i + 0.5 * rank_sum);

  Kokkos::View<double**, Kokkos::LayoutRight> m("m", 3, 4);
  Kokkos::View<double**, Kokkos::LayoutLeft> ml("ml", 4, 3);
  for (int repeat = 0; repeat < 3; ++repeat) {  // reused staging buffers give the same answer
    fill_matrix(m, comm.rank());
    fill_matrix(ml, comm.rank());
    comm.allreduce(m, Op::sum);
    comm.allreduce(ml, Op::max);
    auto hm = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m);
    auto hml = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), ml);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j) EXPECT_DOUBLE_EQ(hm(i, j), p * (10.0 * i + j) + rank_sum);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j) EXPECT_DOUBLE_EQ(hml(i, j), 10.0 * i + j + p - 1);
  }
  // A strided subview is refused rather than reduced wrongly.
  auto column = Kokkos::subview(m, Kokkos::ALL(), 1);
  EXPECT_THROW(comm.allreduce(column, Op::sum), skein::engine::InternalError);
}

TEST(Communicator, FusedArrayAllreduce) {
  const Communicator comm(MPI_COMM_WORLD);
  const int p = comm.size(), r = comm.rank();
  const std::array<double, 3> dots = comm.allreduce(std::array<double, 3>{1.0, 2.0 * r, -1.0 * r}, Op::sum);
  EXPECT_EQ(dots, (std::array<double, 3>{1.0 * p, p * (p - 1.0), -p * (p - 1) / 2.0}));
  const auto biggest = comm.allreduce(std::array<std::int64_t, 2>{r, -r}, Op::max);
  EXPECT_EQ(biggest, (std::array<std::int64_t, 2>{p - 1, 0}));
}

TEST(Communicator, RankZeroDecidesValuesStringsAndVectors) {
  const Communicator comm(MPI_COMM_WORLD);
  int calls = 0;
  const int answer = comm.decide([&] {
    ++calls;
    return 42 + comm.rank();  // rank 0's value wins: only rank 0 runs this
  });
  EXPECT_EQ(answer, 42);
  EXPECT_EQ(comm.allreduce(calls, Op::sum), 1);
  EXPECT_EQ(calls, comm.rank() == 0 ? 1 : 0);

  const Choice choice = comm.decide([] { return Choice{7, 1e-8, "mgpcg"}; });
  EXPECT_EQ(choice.steps, 7);
  EXPECT_EQ(choice.tolerance, 1e-8);
  EXPECT_STREQ(choice.name, "mgpcg");

  const std::string text =
      comm.decide([&] { return std::string(1000, 'x') + " from rank " + std::to_string(comm.rank()); });
  EXPECT_EQ(text, std::string(1000, 'x') + " from rank 0");

  const std::vector<double> list = comm.decide([] { return std::vector<double>{1.5, 2.5, 3.5}; });
  EXPECT_EQ(list, (std::vector<double>{1.5, 2.5, 3.5}));
  const std::vector<int> none = comm.decide([] { return std::vector<int>{}; });
  EXPECT_TRUE(none.empty());

  int side_effects = 0;
  comm.decide([&] { ++side_effects; });  // void: only the error (if any) travels
  EXPECT_EQ(comm.allreduce(side_effects, Op::sum), 1);
}

TEST(Communicator, RankZerosErrorReachesEveryRankTyped) {
  const Communicator comm(MPI_COMM_WORLD);
  const std::string prefix = comm.size() > 1 ? "rank 0: " : "";
  try {
    comm.decide(
        []() -> int { throw skein::engine::DataError("input.h5: /rhs has 3 dims, expected 3-D grid"); });
    ADD_FAILURE() << "decide did not throw";
  } catch (const skein::engine::DataError& e) {
    EXPECT_TRUE(e.agreed());
    EXPECT_EQ(e.code(), skein::engine::ExitCode::data);  // exit code 65 preserved
    EXPECT_EQ(std::string(e.what()), prefix + "input.h5: /rhs has 3 dims, expected 3-D grid");
  }
  try {
    comm.decide([]() -> std::string { throw skein::engine::UsageError("poisson.grid: bad value"); });
    ADD_FAILURE() << "decide did not throw";
  } catch (const skein::engine::UsageError& e) {
    EXPECT_TRUE(e.agreed());
    EXPECT_EQ(e.code(), skein::engine::ExitCode::usage);
  }
  try {
    comm.decide([]() -> std::vector<int> { throw std::runtime_error("disk on fire"); });
    ADD_FAILURE() << "decide did not throw";
  } catch (const skein::engine::Error& e) {
    EXPECT_TRUE(e.agreed());
    EXPECT_EQ(e.code(), skein::engine::ExitCode::internal);
    EXPECT_NE(std::string(e.what()).find("disk on fire"), std::string::npos);
  }
  EXPECT_EQ(comm.allreduce(1, Op::sum), comm.size());  // nobody left behind
}

TEST(Request, KeepsItsViewsAliveUntilWait) {
  const Communicator comm(MPI_COMM_WORLD);
  const int p = comm.size(), r = comm.rank();
  const int next = (r + 1) % p, previous = (r + p - 1) % p;
  // 800 kB: a rendezvous transfer, and an allocation the C library returns to the system when freed, so a
  // send from a freed buffer would fault or deliver garbage.
  constexpr std::size_t n = 100000;
  Kokkos::View<std::int64_t*, Kokkos::HostSpace> incoming("incoming", n);
  Request receive = comm.irecv(incoming, previous, 7);
  EXPECT_EQ(incoming.use_count(), 2);  // ours and the Request's
  Request send;
  {
    Kokkos::View<std::int64_t*, Kokkos::HostSpace> outgoing("outgoing", n);
    fill_ints(outgoing, 1000 * r);
    send = comm.isend(outgoing, next, 7);
    EXPECT_EQ(outgoing.use_count(), 2);
  }  // our only handle on the outgoing data is gone: the Request keeps it
  std::vector<Request> requests;
  requests.push_back(std::move(receive));  // moving hands the ownership over
  requests.push_back(std::move(send));
  EXPECT_FALSE(receive.active());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(requests[0].active());
  skein::comm::wait_all(requests);
  EXPECT_FALSE(requests[0].active());
  EXPECT_EQ(incoming.use_count(), 1);  // released by wait
  long wrong = 0;
  for (std::size_t i = 0; i < n; ++i) wrong += incoming(i) != 1000 * previous + static_cast<std::int64_t>(i);
  EXPECT_EQ(wrong, 0);
}

TEST(Request, DroppedWithoutWaitNeitherHangsNorLosesData) {
  const Communicator comm(MPI_COMM_WORLD);
  const int p = comm.size(), r = comm.rank();
  {
    // A receive nobody will ever match: the destructor cancels it instead of blocking.
    Kokkos::View<double*, Kokkos::HostSpace> never("never", 16);
    Request orphan = comm.irecv(never, r, 12345);
    EXPECT_TRUE(orphan.active());
  }
  // The cancelled receive must not swallow a later message with the same tag (this would hang).
  Kokkos::View<double*, Kokkos::HostSpace> out("out", 16), in("in", 16);
  Kokkos::deep_copy(out, 3.25);
  Request receive = comm.irecv(in, r, 12345);
  Request send = comm.isend(out, r, 12345);
  send.wait();
  receive.wait();
  EXPECT_EQ(in(15), 3.25);

  // A large send dropped before its receive is even posted: it is not cancelled, and its buffer stays
  // valid until MPI is done with it, so the late receiver still gets the data.
  constexpr std::size_t n = 100000;
  {
    Kokkos::View<std::int64_t*, Kokkos::HostSpace> outgoing("outgoing", n);
    fill_ints(outgoing, 5 * r);
    Request dropped = comm.isend(outgoing, (r + 1) % p, 99);
  }
  comm.barrier();
  Kokkos::View<std::int64_t*, Kokkos::HostSpace> late("late", n);
  comm.irecv(late, (r + p - 1) % p, 99).wait();
  EXPECT_EQ(late(n - 1), 5 * ((r + p - 1) % p) + static_cast<std::int64_t>(n - 1));
  EXPECT_EQ(late(0), 5 * ((r + p - 1) % p));
}
