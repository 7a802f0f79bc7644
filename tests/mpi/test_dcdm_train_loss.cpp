// jobs/dcdm_train/loss: DCDM's loss ||b - alpha A f||^2 (alpha = f.b / f.A f) equals its definition, and its
// hand-derived gradient with respect to f matches central finite differences, along random directions and
// single cells, on a grid with a solid obstacle and air outside; f = 0 gives ||b||^2 and a zero gradient.
// The same at 1 and 2 ranks (the loss is collective on the operator's decomposition).
// skein-test-ranks: 1 2
#include "comm/cartesian.hpp"
#include "comm/communicator.hpp"
#include "jobs/dcdm_train/loss.hpp"
#include "solvers/poisson_operator.hpp"

#include "poisson_test_fields.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>

using namespace skein;
using solvers::CellType;
using solvers::PoissonField;

namespace {

using test::fill;
using test::uniform;

// out = x + s * d on every cell. A kernel at namespace scope: nvcc refuses device lambdas in protected or
// private member functions (the fixture's).
void axpy_into(const PoissonField& out, const PoissonField& x, double s, const PoissonField& d) {
  Kokkos::parallel_for(
      "shift", Kokkos::RangePolicy<>(0, out.span()),
      KOKKOS_LAMBDA(const std::int64_t e) { out.data()[e] = x.data()[e] + s * d.data()[e]; });
  Kokkos::fence();
}

class DcdmLossTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cells = comm::make_field<std::uint8_t>(decomposition, 1, "cells");
    // A solid 2x2x2 block inside; air (Dirichlet) outside the grid: A is SPD on the fluid cells.
    fill(decomposition, cells, [](std::int64_t i, std::int64_t j, std::int64_t k) {
      const bool solid = i >= 2 && i < 4 && j >= 1 && j < 3 && k >= 2 && k < 4;
      return static_cast<std::uint8_t>(solid ? CellType::solid : CellType::fluid);
    });
    op = std::make_unique<solvers::PoissonOperator>(decomposition, cells, CellType::air);
    work = std::make_unique<dcdm_train::LossWorkspace>(*op);
    b = random_field(1);
    f = random_field(2);
    gradient = op->make_vector("gradient");
  }
  PoissonField random_field(std::uint64_t seed) const {
    PoissonField v = op->make_vector("v");
    const auto g = decomposition.global_extent();
    fill(decomposition, v, [&](std::int64_t i, std::int64_t j, std::int64_t k) {
      return uniform(seed, static_cast<std::uint64_t>((i * g[1] + j) * g[2] + k));
    });
    op->mask(v);
    return v;
  }
  // x + s * d on every cell.
  PoissonField shifted(const PoissonField& x, double s, const PoissonField& d) const {
    PoissonField out = op->make_vector("shifted");
    axpy_into(out, x, s, d);
    return out;
  }
  double loss_at(const PoissonField& x) {
    PoissonField scratch = op->make_vector("scratch");
    return dcdm_train::dcdm_loss(*op, b, x, scratch, *work);
  }
  // Central difference of the loss along d against gradient . d.
  void expect_directional_derivative(const PoissonField& d) {
    const double h = 1e-5;
    const double numeric = (loss_at(shifted(f, h, d)) - loss_at(shifted(f, -h, d))) / (2 * h);
    const double analytic = op->dot(gradient, d);
    EXPECT_NEAR(analytic, numeric, 1e-6 * (1.0 + std::abs(numeric)));
  }

  comm::Communicator world{MPI_COMM_WORLD};
  comm::CartDecomposition decomposition{world, {6, 5, 4}};
  std::unique_ptr<solvers::PoissonOperator> op;
  std::unique_ptr<dcdm_train::LossWorkspace> work;
  PoissonField b, f, gradient;
};

TEST_F(DcdmLossTest, LossIsItsDefinition) {
  const double loss = dcdm_train::dcdm_loss(*op, b, f, gradient, *work);
  PoissonField af = op->make_vector("af");
  op->apply(f, af);
  const double alpha = op->dot(f, b) / op->dot(f, af);
  const PoissonField residual = shifted(b, -alpha, af);
  op->mask(residual);
  EXPECT_NEAR(loss, op->dot(residual, residual), 1e-12 * op->dot(b, b));
  // Scale invariance: f and 3 f give the same loss (alpha absorbs the scale).
  PoissonField f3 = shifted(f, 2.0, f);
  EXPECT_NEAR(loss_at(f3), loss, 1e-12 * loss);
}

TEST_F(DcdmLossTest, GradientMatchesCentralDifferences) {
  dcdm_train::dcdm_loss(*op, b, f, gradient, *work);
  for (std::uint64_t seed = 10; seed < 14; ++seed) expect_directional_derivative(random_field(seed));
  // Single cells: an interior fluid cell, one beside the obstacle, one on the domain boundary.
  for (const auto& cell : {std::array<std::int64_t, 3>{1, 2, 1}, std::array<std::int64_t, 3>{4, 1, 2},
                           std::array<std::int64_t, 3>{5, 4, 3}}) {
    PoissonField d = op->make_vector("unit");
    fill(decomposition, d, [&](std::int64_t i, std::int64_t j, std::int64_t k) {
      return i == cell[0] && j == cell[1] && k == cell[2] ? 1.0 : 0.0;
    });
    expect_directional_derivative(d);
  }
  // Solid cells get a zero gradient (f there is ignored).
  PoissonField solid = op->make_vector("solid");
  fill(decomposition, solid, [](std::int64_t i, std::int64_t j, std::int64_t k) {
    return i >= 2 && i < 4 && j >= 1 && j < 3 && k >= 2 && k < 4 ? 1.0 : 0.0;
  });
  EXPECT_EQ(op->dot(gradient, solid), 0.0);
}

TEST_F(DcdmLossTest, ZeroOutputGivesTheRightHandSideNormAndNoGradient) {
  PoissonField zero = op->make_vector("zero");
  Kokkos::deep_copy(gradient, 1.0);
  const double loss = dcdm_train::dcdm_loss(*op, b, zero, gradient, *work);
  EXPECT_DOUBLE_EQ(loss, op->dot(b, b));
  EXPECT_EQ(op->dot(gradient, gradient), 0.0);
}

}  // namespace
