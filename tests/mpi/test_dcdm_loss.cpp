// dcdm-train's loss ||b - alpha A f||^2, alpha = f.b / (f.A f), against a dense computation with A
// assembled column by column, and its hand-derived gradient dL/df against central finite differences of
// the loss, on a grid with solid and air cells (f nonzero on them: the network's output is), at 1 and 2
// ranks.
// skein-test-ranks: 1 2
#include "comm/communicator.hpp"
#include "engine/random.hpp"
#include "jobs/dcdm_train/loss.hpp"
#include "solvers/poisson_operator.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

using namespace skein;
using solvers::CellType;
using solvers::PoissonField;

namespace {

constexpr std::array<std::int64_t, 3> kGrid{5, 4, 3};

std::int64_t flat(std::int64_t i, std::int64_t j, std::int64_t k) {
  return (i * kGrid[1] + j) * kGrid[2] + k;
}

CellType cell_at(std::int64_t i, std::int64_t j, std::int64_t k) {
  if (i == 2 && j == 1 && k == 1) return CellType::solid;
  if (i == 4 && j == 3) return CellType::air;
  return CellType::fluid;
}

// Global row-major values <-> the owned cells of a field.
void scatter(const comm::CartDecomposition& d, const std::vector<double>& all, const PoissonField& v) {
  auto host = Kokkos::create_mirror_view(v);
  Kokkos::deep_copy(host, 0.0);
  const auto o = d.owned();
  for (std::int64_t i = 0; i < o.extent[0]; ++i)
    for (std::int64_t j = 0; j < o.extent[1]; ++j)
      for (std::int64_t k = 0; k < o.extent[2]; ++k)
        host(i + 1, j + 1, k + 1) = all[flat(o.offset[0] + i, o.offset[1] + j, o.offset[2] + k)];
  Kokkos::deep_copy(v, host);
}

std::vector<double> gather(const comm::CartDecomposition& d, const PoissonField& v) {
  std::vector<double> all(static_cast<std::size_t>(kGrid[0] * kGrid[1] * kGrid[2]), 0.0);
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
  const auto o = d.owned();
  for (std::int64_t i = 0; i < o.extent[0]; ++i)
    for (std::int64_t j = 0; j < o.extent[1]; ++j)
      for (std::int64_t k = 0; k < o.extent[2]; ++k)
        all[flat(o.offset[0] + i, o.offset[1] + j, o.offset[2] + k)] = host(i + 1, j + 1, k + 1);
  d.comm().allreduce_inplace(all.data(), all.size(), comm::Op::sum);
  return all;
}

}  // namespace

TEST(DcdmLoss, EqualsTheDenseLossAndItsGradientIsTheFiniteDifference) {
  comm::Communicator world(MPI_COMM_WORLD);
  const comm::CartDecomposition d(world, kGrid);
  auto cells = comm::make_field<std::uint8_t>(d, 1, "cells");
  {
    auto host = Kokkos::create_mirror_view(cells);
    const auto o = d.owned();
    for (std::int64_t i = 0; i < o.extent[0]; ++i)
      for (std::int64_t j = 0; j < o.extent[1]; ++j)
        for (std::int64_t k = 0; k < o.extent[2]; ++k)
          host(i + 1, j + 1, k + 1) =
              static_cast<std::uint8_t>(cell_at(o.offset[0] + i, o.offset[1] + j, o.offset[2] + k));
    Kokkos::deep_copy(cells, host);
  }
  const solvers::PoissonOperator op(d, cells, CellType::solid);
  const std::size_t n = static_cast<std::size_t>(kGrid[0] * kGrid[1] * kGrid[2]);
  std::vector<bool> fluid(n);
  for (std::int64_t i = 0; i < kGrid[0]; ++i)
    for (std::int64_t j = 0; j < kGrid[1]; ++j)
      for (std::int64_t k = 0; k < kGrid[2]; ++k) fluid[flat(i, j, k)] = cell_at(i, j, k) == CellType::fluid;

  // Dense A, column by column (zero rows and columns on non-fluid cells).
  std::vector<double> dense(n * n, 0.0), unit(n, 0.0);
  PoissonField e = op.make_vector("e"), ae = op.make_vector("ae");
  for (std::size_t c = 0; c < n; ++c) {
    unit.assign(n, 0.0);
    unit[c] = 1.0;
    scatter(d, unit, e);
    op.apply(e, ae);
    const auto column = gather(d, ae);
    for (std::size_t r = 0; r < n; ++r) dense[r * n + c] = column[r];
  }
  // b: unit, zero off the fluid (as training vectors are); f: everywhere nonzero.
  std::vector<double> b(n), f(n);
  double bb = 0;
  for (std::size_t x = 0; x < n; ++x) {
    b[x] = fluid[x] ? engine::standard_normal(3, 1, x) : 0.0;
    f[x] = engine::standard_normal(3, 2, x) + 0.5 * b[x];
    bb += b[x] * b[x];
  }
  for (double& v : b) v /= std::sqrt(bb);
  auto dense_loss = [&](const std::vector<double>& g) {
    std::vector<double> ag(n, 0.0), gm(n);
    for (std::size_t x = 0; x < n; ++x) gm[x] = fluid[x] ? g[x] : 0.0;  // A ignores non-fluid entries
    for (std::size_t r = 0; r < n; ++r)
      for (std::size_t c = 0; c < n; ++c) ag[r] += dense[r * n + c] * gm[c];
    double gag = 0, gb = 0;
    for (std::size_t x = 0; x < n; ++x) {
      gag += gm[x] * ag[x];
      gb += gm[x] * b[x];
    }
    const double alpha = gb / gag;
    double loss = 0;
    for (std::size_t x = 0; x < n; ++x) loss += (b[x] - alpha * ag[x]) * (b[x] - alpha * ag[x]);
    return loss;
  };

  PoissonField bf = op.make_vector("b"), ff = op.make_vector("f"), grad = op.make_vector("dL/df");
  scatter(d, b, bf);
  scatter(d, f, ff);
  dcdm_train::LossWorkspace work(op);
  const double loss = dcdm_train::dcdm_loss(op, bf, ff, grad, work);
  const double expected = dense_loss(f);
  EXPECT_NEAR(loss, expected, 1e-12 * expected);
  EXPECT_GT(loss, 1e-3);  // a nontrivial point
  EXPECT_LT(loss, 1.0);

  const auto g = gather(d, grad);
  const double h = 1e-6;
  double worst = 0, scale = 0;
  for (std::size_t x = 0; x < n; ++x) {
    std::vector<double> plus = f, minus = f;
    plus[x] += h;
    minus[x] -= h;
    const double fd = (dense_loss(plus) - dense_loss(minus)) / (2 * h);
    worst = std::max(worst, std::abs(fd - g[x]));
    scale = std::max(scale, std::abs(fd));
    if (!fluid[x]) EXPECT_EQ(g[x], 0.0) << "cell " << x;
  }
  EXPECT_GT(scale, 1e-3);
  EXPECT_LT(worst, 1e-6 * scale);
}
