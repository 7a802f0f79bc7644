// solvers/cnn3d: the paper's parameter counts, the convolution kernel against a naive loop (float and
// double, compiled and run-time channel counts), every parameter block's gradient through every layer type
// (conv, ReLU, residual add, pool, upsample + skip, 1x1x1 output) against central finite differences in
// double, and inference equal to the training forward. One rank (a decomposition is needed; no MPI traffic).
// skein-test-ranks: 1
#include "cnn_test_fields.hpp"
#include "solvers/adam.hpp"
#include "solvers/cnn3d.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

using skein::comm::CartDecomposition;
using skein::comm::Communicator;
using skein::solvers::PoissonField;
using skein::solvers::cnn::DcdmArchitecture;
using skein::solvers::cnn::DcdmNetwork;

namespace {

DcdmArchitecture arch(int c, int before, int coarse, int after) {
  DcdmArchitecture a;
  a.channels = c;
  a.fine_pairs_before = before;
  a.coarse_pairs = coarse;
  a.fine_pairs_after = after;
  return a;
}

double sum_product(const PoissonField& a, const PoissonField& b) {
  auto ha = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), a);
  auto hb = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), b);
  double s = 0;
  for (std::size_t i = 1; i + 1 < ha.extent(0); ++i)
    for (std::size_t j = 1; j + 1 < ha.extent(1); ++j)
      for (std::size_t k = 1; k + 1 < ha.extent(2); ++k) s += ha(i, j, k) * hb(i, j, k);
  return s;
}

template <class Scalar>
void naive_conv_check(int ci, int co, bool relu, double tolerance) {
  const std::int64_t n0 = 5, n1 = 4, n2 = 11;
  Kokkos::View<Scalar****, Kokkos::LayoutRight> in("in", n0 + 2, n1 + 2, n2 + 2, ci),
      out("out", n0 + 2, n1 + 2, n2 + 2, co);
  Kokkos::View<Scalar*> w("w", 27 * ci * co), b("b", co);
  auto hin = Kokkos::create_mirror_view(in);
  auto hw = Kokkos::create_mirror_view(w);
  auto hb = Kokkos::create_mirror_view(b);
  std::uint64_t id = 0;
  for (std::int64_t i = 1; i <= n0; ++i)
    for (std::int64_t j = 1; j <= n1; ++j)
      for (std::int64_t k = 1; k <= n2; ++k)
        for (int c = 0; c < ci; ++c)
          hin(i, j, k, c) = static_cast<Scalar>(skein::engine::standard_normal(1, 2u, id++));
  for (std::size_t x = 0; x < hw.extent(0); ++x)
    hw(x) = static_cast<Scalar>(skein::engine::standard_normal(1, 3u, x));
  for (int o = 0; o < co; ++o) hb(o) = static_cast<Scalar>(skein::engine::standard_normal(1, 4u, o));
  Kokkos::deep_copy(in, hin);
  Kokkos::deep_copy(w, hw);
  Kokkos::deep_copy(b, hb);
  skein::solvers::cnn::conv3x3x3<Scalar>(in, w, b, relu, out);
  auto hout = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), out);
  double worst = 0;
  for (std::int64_t i = 1; i <= n0; ++i)
    for (std::int64_t j = 1; j <= n1; ++j)
      for (std::int64_t k = 1; k <= n2; ++k)
        for (int o = 0; o < co; ++o) {
          double s = hb(o);
          for (int c = 0; c < ci; ++c)
            for (int a = 0; a < 3; ++a)
              for (int bb = 0; bb < 3; ++bb)
                for (int d = 0; d < 3; ++d)
                  s += double(hw(((o * ci + c) * 3 + a) * 9 + bb * 3 + d)) *
                       double(hin(i + a - 1, j + bb - 1, k + d - 1, c));
          if (relu) s = std::max(s, 0.0);
          worst = std::max(worst, std::abs(s - double(hout(i, j, k, o))));
          // Ghosts are never written.
        }
  EXPECT_LT(worst, tolerance) << "ci " << ci << " co " << co;
  EXPECT_EQ(hout(0, 0, 0, 0), Scalar(0));
  EXPECT_EQ(hout(n0 + 1, 2, 2, co - 1), Scalar(0));
}

// Central differences of L(theta) = sum_i dq_i f(r)_i for `per_block` entries of every parameter block.
void check_gradient(const DcdmArchitecture& a, std::array<std::int64_t, 3> grid) {
  SCOPED_TRACE(::testing::Message() << "channels " << a.channels << " pairs " << a.fine_pairs_before << ","
                                    << a.coarse_pairs << "," << a.fine_pairs_after << " grid " << grid[0]
                                    << "x" << grid[1] << "x" << grid[2]);
  const Communicator world(MPI_COMM_WORLD);
  const CartDecomposition d(world, grid);
  DcdmNetwork<double> net(a, d);
  net.initialize(11);
  // Non-zero biases, so every ReLU has both signs in play and bias gradients are not trivially zero.
  auto params = net.parameters();
  auto hp = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), params);
  for (std::size_t x = 0; x < hp.extent(0); ++x) hp(x) += 0.05 * skein::engine::standard_normal(5, 6u, x);
  Kokkos::deep_copy(params, hp);

  const PoissonField r = skein::test::keyed_field(d, 1);
  const PoissonField dq = skein::test::keyed_field(d, 2);
  const PoissonField q = skein::test::zero_field(d);
  net.forward_for_training(r, q);
  Kokkos::View<double*> grad("grad", a.parameter_count());
  net.backward(dq, grad);
  auto hg = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), grad);

  std::vector<std::int64_t> probe;
  for (int l = 0; l < a.conv_count(); ++l) {
    const std::int64_t w = a.conv_weight_offset(l), b = a.conv_bias_offset(l);
    for (std::int64_t x : {w, w + 13, b - 1, b, b + a.channels - 1}) probe.push_back(x);
  }
  probe.push_back(a.output_weight_offset());
  probe.push_back(a.output_bias_offset());
  const double h = 1e-6;
  int checked = 0;
  for (const std::int64_t x : probe) {
    const double saved = hp(x);
    auto loss_at = [&](double value) {
      hp(x) = value;
      Kokkos::deep_copy(params, hp);
      net.infer(r, q);
      return sum_product(q, dq);
    };
    const double up = loss_at(saved + h), down = loss_at(saved - h);
    hp(x) = saved;
    Kokkos::deep_copy(params, hp);
    const double fd = (up - down) / (2 * h);
    EXPECT_NEAR(hg(x), fd, 1e-6 * std::max(1.0, std::abs(fd))) << "parameter " << x;
    checked += std::abs(fd) > 1e-8;
  }
  EXPECT_GT(checked, static_cast<int>(probe.size()) / 3) << "probed gradients should mostly be non-zero";
}

}  // namespace

TEST(DcdmArchitecture, ParameterCountsOfThePaper) {
  EXPECT_EQ(DcdmArchitecture{}.parameter_count(), 97457);
  EXPECT_EQ(DcdmArchitecture{}.conv_count(), 15);
  EXPECT_EQ(arch(16, 2, 5, 3).parameter_count(), 152881);
  EXPECT_EQ(arch(16, 2, 5, 3).conv_count(), 23);
  EXPECT_EQ(arch(4, 0, 0, 0).parameter_count(), (27 * 4 + 4) + 2 * (27 * 16 + 4) + 5);
  EXPECT_THROW(arch(0, 1, 1, 1).validate(), std::invalid_argument);
  EXPECT_THROW(arch(16, -1, 1, 1).validate(), std::invalid_argument);
}

TEST(DcdmConv, MatchesNaiveLoop) {
  naive_conv_check<float>(16, 16, true, 1e-4);
  naive_conv_check<float>(1, 16, false, 1e-5);
  naive_conv_check<double>(3, 5, true, 1e-12);
  naive_conv_check<double>(8, 8, false, 1e-12);
  naive_conv_check<double>(32, 32, false, 1e-11);
}

TEST(DcdmNetwork, GradientMatchesFiniteDifferences) {
  check_gradient(arch(2, 0, 0, 0), {4, 4, 4});
  check_gradient(arch(3, 1, 1, 1), {5, 4, 3});  // odd extents: partial pooling cells, cropped upsampling
  check_gradient(arch(4, 1, 2, 1), {3, 1, 6});  // a one-cell axis
}

TEST(DcdmNetwork, InferenceEqualsTrainingForward) {
  const Communicator world(MPI_COMM_WORLD);
  const CartDecomposition d(world, {7, 6, 5});
  DcdmNetwork<float> net(DcdmArchitecture{}, d);
  net.initialize(3);
  const PoissonField r = skein::test::keyed_field(d, 4);
  PoissonField q1 = skein::test::zero_field(d), q2 = skein::test::zero_field(d);
  net.infer(r, q1);
  net.forward_for_training(r, q2);
  net.infer(r, q1);  // again, after the training fields exist
  auto h1 = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), q1);
  auto h2 = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), q2);
  double norm = 0;
  for (std::size_t x = 0; x < h1.span(); ++x) {
    EXPECT_EQ(h1.data()[x], h2.data()[x]);
    norm += h1.data()[x] * h1.data()[x];
  }
  EXPECT_GT(norm, 0);
}

TEST(DcdmNetwork, InitializationIsGlorotUniformWithZeroBiases) {
  const Communicator world(MPI_COMM_WORLD);
  const CartDecomposition d(world, {4, 4, 4});
  const DcdmArchitecture a;
  DcdmNetwork<float> net(a, d);
  net.initialize(9);
  auto hp = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), net.parameters());
  const double limit = std::sqrt(6.0 / (27.0 * 16 + 27.0 * 16));
  double max_abs = 0;
  for (std::int64_t x = a.conv_weight_offset(3); x < a.conv_bias_offset(3); ++x)
    max_abs = std::max(max_abs, std::abs(double(hp(x))));
  EXPECT_LE(max_abs, limit);
  EXPECT_GT(max_abs, 0.9 * limit);
  for (int o = 0; o < 16; ++o) EXPECT_EQ(hp(a.conv_bias_offset(3) + o), 0.0f);
  EXPECT_EQ(hp(a.output_bias_offset()), 0.0f);
}

TEST(Adam, MatchesTheTextbookUpdate) {
  skein::solvers::Adam<double> adam(2, {0.1, 0.9, 0.999, 1e-8});
  Kokkos::View<double*> p("p", 2), g("g", 2);
  auto hp = Kokkos::create_mirror_view(p);
  auto hg = Kokkos::create_mirror_view(g);
  hp(0) = 1.0;
  hp(1) = -2.0;
  Kokkos::deep_copy(p, hp);
  double m0 = 0, v0 = 0, x0 = 1.0;
  for (int t = 1; t <= 3; ++t) {
    const double grad0 = 2 * x0 + t;  // some gradient sequence
    hg(0) = grad0;
    hg(1) = 0.5;
    Kokkos::deep_copy(g, hg);
    adam.step(p, g);
    m0 = 0.9 * m0 + 0.1 * grad0;
    v0 = 0.999 * v0 + 0.001 * grad0 * grad0;
    x0 -= 0.1 * (m0 / (1 - std::pow(0.9, t))) / (std::sqrt(v0 / (1 - std::pow(0.999, t))) + 1e-8);
  }
  Kokkos::deep_copy(hp, p);
  EXPECT_NEAR(hp(0), x0, 1e-12);
  EXPECT_NEAR(hp(1), -2.0 - 3 * 0.1, 1e-6);  // a constant gradient moves by lr per step
  EXPECT_EQ(adam.step_count(), 3);
}
