// solvers/cnn3d distributed: inference on a decomposed 12x10x9 grid (odd extents and odd block offsets, so
// pooling cells straddle ranks) equals the single-rank result, and a training step's gradient summed over
// the ranks equals the single-rank gradient.
// skein-test-ranks: 1 2 3
#include "comm/view_collectives.hpp"
#include "solvers/cnn3d.hpp"

#include "cnn_test_fields.hpp"

#include <gtest/gtest.h>

#include <cmath>

using skein::comm::CartDecomposition;
using skein::comm::Communicator;
using skein::solvers::PoissonField;
using skein::solvers::cnn::DcdmArchitecture;
using skein::solvers::cnn::DcdmNetwork;

namespace {

const std::array<std::int64_t, 3> kGrid{12, 10, 9};

// Max |distributed - whole| over this rank's owned cells, relative to the largest |whole| value.
double owned_difference(const CartDecomposition& d, const PoissonField& part, const PoissonField& whole) {
  auto hp = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), part);
  auto hw = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), whole);
  const auto box = d.owned();
  double worst = 0, scale = 0;
  for (std::size_t x = 0; x < hw.span(); ++x) scale = std::max(scale, std::abs(hw.data()[x]));
  for (std::int64_t i = 0; i < box.extent[0]; ++i)
    for (std::int64_t j = 0; j < box.extent[1]; ++j)
      for (std::int64_t k = 0; k < box.extent[2]; ++k) {
        const double w = hw(box.offset[0] + i + 1, box.offset[1] + j + 1, box.offset[2] + k + 1);
        worst = std::max(worst, std::abs(hp(i + 1, j + 1, k + 1) - w));
      }
  return worst / scale;
}

template <class Scalar>
void compare(const Communicator& world, std::array<int, 3> dims, bool gradient) {
  const CartDecomposition part(world, kGrid, dims);
  SCOPED_TRACE(::testing::Message() << "dims " << part.dims()[0] << "x" << part.dims()[1] << "x"
                                    << part.dims()[2]);
  const Communicator self = world.split(world.rank(), 0);
  const CartDecomposition whole(self, kGrid);
  DcdmArchitecture a;
  a.channels = 4;
  a.fine_pairs_before = 1;
  a.coarse_pairs = 2;
  a.fine_pairs_after = 1;
  DcdmNetwork<Scalar> net_part(a, part), net_whole(a, whole);
  net_part.initialize(21);
  net_whole.initialize(21);
  const PoissonField r_part = skein::test::keyed_field(part, 8), r_whole = skein::test::keyed_field(whole, 8);
  PoissonField q_part = skein::test::zero_field(part), q_whole = skein::test::zero_field(whole);
  if (!gradient) {
    net_part.infer(r_part, q_part);
    net_whole.infer(r_whole, q_whole);
    EXPECT_LT(owned_difference(part, q_part, q_whole), 1e-5);
    return;
  }
  net_part.forward_for_training(r_part, q_part);
  net_whole.forward_for_training(r_whole, q_whole);
  EXPECT_LT(owned_difference(part, q_part, q_whole), 1e-12);
  const PoissonField dq_part = skein::test::keyed_field(part, 9),
                     dq_whole = skein::test::keyed_field(whole, 9);
  Kokkos::View<Scalar*> g_part("g", a.parameter_count()), g_whole("g", a.parameter_count());
  net_part.backward(dq_part, g_part);
  world.allreduce(g_part, skein::comm::Op::sum);
  net_whole.backward(dq_whole, g_whole);
  auto hp = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), g_part);
  auto hw = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), g_whole);
  double scale = 0, worst = 0;
  for (std::size_t x = 0; x < hw.extent(0); ++x) scale = std::max(scale, std::abs(double(hw(x))));
  for (std::size_t x = 0; x < hw.extent(0); ++x) worst = std::max(worst, std::abs(double(hp(x) - hw(x))));
  EXPECT_GT(scale, 0);
  EXPECT_LT(worst / scale, 1e-12) << "largest gradient entry " << scale;
}

}  // namespace

TEST(DcdmNetworkDecomposed, InferenceEqualsSingleRank) {
  const Communicator world(MPI_COMM_WORLD);
  const int p = world.size();
  for (const std::array<int, 3> dims : {std::array<int, 3>{0, 0, 0}, {1, 1, p}, {1, p, 1}, {p, 1, 1}}) {
    compare<float>(world, dims, false);
  }
}

TEST(DcdmNetworkDecomposed, GradientSumsToSingleRank) {
  const Communicator world(MPI_COMM_WORLD);
  const int p = world.size();
  for (const std::array<int, 3> dims : {std::array<int, 3>{0, 0, 0}, {1, 1, p}, {1, p, 1}}) {
    compare<double>(world, dims, true);
  }
}

TEST(DcdmNetworkDecomposed, RankWithoutPooledCellsIsAnAgreedUsageError) {
  const Communicator world(MPI_COMM_WORLD);
  if (world.size() < 3) GTEST_SKIP() << "needs a one-cell block at an odd offset";
  const CartDecomposition d(world, {3, 4, 4}, {3, 1, 1});  // blocks [0,1) [1,2) [2,3): [1,2) pools to nothing
  try {
    DcdmNetwork<float> net(DcdmArchitecture{}, d);
    ADD_FAILURE() << "accepted";
  } catch (const skein::engine::UsageError& e) {
    EXPECT_TRUE(e.agreed());
    EXPECT_NE(std::string(e.what()).find("pooled"), std::string::npos) << e.what();
  }
}
