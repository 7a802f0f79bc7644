// DCDM's training data: Ritz values of the Poisson matrix (Lanczos, full reorthogonalisation) against
// the dense eigenvalues from LAPACK, the dropped null space, orthonormal Ritz vectors with small residuals;
// training vectors of unit length, weighted as asked and the same at 1, 2 and 3 ranks.
// skein-test-ranks: 1 2 3
#include "comm/communicator.hpp"
#include "engine/random.hpp"
#include "solvers/dcdm_training_data.hpp"
#include "solvers/lapack.hpp"
#include "solvers/poisson_operator.hpp"
#include "solvers/poisson_space.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>

using namespace skein;
using solvers::CellType;
using solvers::PoissonField;

namespace {

using CellFn = std::function<CellType(std::int64_t, std::int64_t, std::int64_t)>;

struct Grid {
  comm::CartDecomposition decomposition;
  std::unique_ptr<solvers::PoissonOperator> op;
  Grid(const comm::Communicator& comm, std::array<std::int64_t, 3> n, const CellFn& cell, CellType boundary)
      : decomposition(comm, n) {
    auto cells = comm::make_field<std::uint8_t>(decomposition, 1, "cells");
    auto host = Kokkos::create_mirror_view(cells);
    const auto o = decomposition.owned();
    for (std::int64_t i = 0; i < o.extent[0]; ++i)
      for (std::int64_t j = 0; j < o.extent[1]; ++j)
        for (std::int64_t k = 0; k < o.extent[2]; ++k)
          host(i + 1, j + 1, k + 1) =
              static_cast<std::uint8_t>(cell(o.offset[0] + i, o.offset[1] + j, o.offset[2] + k));
    Kokkos::deep_copy(cells, host);
    op = std::make_unique<solvers::PoissonOperator>(decomposition, cells, boundary);
  }
  std::int64_t size() const {
    const auto g = decomposition.global_extent();
    return g[0] * g[1] * g[2];
  }
  // The owned cells of v as a global row-major array, on every rank.
  std::vector<double> gather(const PoissonField& v) const {
    const auto g = decomposition.global_extent();
    std::vector<double> all(static_cast<std::size_t>(size()), 0.0);
    auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
    const auto o = decomposition.owned();
    for (std::int64_t i = 0; i < o.extent[0]; ++i)
      for (std::int64_t j = 0; j < o.extent[1]; ++j)
        for (std::int64_t k = 0; k < o.extent[2]; ++k)
          all[((o.offset[0] + i) * g[1] + o.offset[1] + j) * g[2] + o.offset[2] + k] =
              host(i + 1, j + 1, k + 1);
    decomposition.comm().allreduce_inplace(all.data(), all.size(), comm::Op::sum);
    return all;
  }
  // Unit vector of global cell c.
  void unit(std::int64_t c, const PoissonField& v) const {
    const auto g = decomposition.global_extent();
    const std::int64_t gi = c / (g[1] * g[2]), gj = (c / g[2]) % g[1], gk = c % g[2];
    auto host = Kokkos::create_mirror_view(v);
    Kokkos::deep_copy(host, 0.0);
    const auto o = decomposition.owned();
    const std::int64_t li = gi - o.offset[0], lj = gj - o.offset[1], lk = gk - o.offset[2];
    if (li >= 0 && li < o.extent[0] && lj >= 0 && lj < o.extent[1] && lk >= 0 && lk < o.extent[2])
      host(li + 1, lj + 1, lk + 1) = 1.0;
    Kokkos::deep_copy(v, host);
  }
  // The dense eigenvalues of A on the fluid cells (A applied to unit vectors, then LAPACK).
  std::vector<double> dense_eigenvalues() const {
    const std::int64_t n = size();
    auto e = op->make_vector("e"), ae = op->make_vector("ae");
    std::vector<std::vector<double>> columns;
    std::vector<std::int64_t> fluid;
    const auto types = gather_cells();
    for (std::int64_t c = 0; c < n; ++c) {
      if (types[c] != 0) continue;
      fluid.push_back(c);
      unit(c, e);
      op->apply(e, ae);
      columns.push_back(gather(ae));
    }
    const int m = static_cast<int>(fluid.size());
    std::vector<double> dense(static_cast<std::size_t>(m) * m);
    for (int col = 0; col < m; ++col)
      for (int row = 0; row < m; ++row)
        dense[static_cast<std::size_t>(col) * m + row] = columns[col][fluid[row]];
    return solvers::symmetric_eigen(m, dense, false).values;
  }
  std::vector<double> gather_cells() const {
    auto as_double = op->make_vector("types");
    auto host = Kokkos::create_mirror_view(as_double);
    auto cells = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), op->cells());
    for (std::size_t i = 0; i < host.extent(0); ++i)
      for (std::size_t j = 0; j < host.extent(1); ++j)
        for (std::size_t k = 0; k < host.extent(2); ++k) host(i, j, k) = cells(i, j, k);
    Kokkos::deep_copy(as_double, host);
    return gather(as_double);
  }
};

CellType one_solid(std::int64_t i, std::int64_t j, std::int64_t k) {
  return i == 2 && j == 3 && k == 1 ? CellType::solid : CellType::fluid;
}
CellType all_fluid(std::int64_t, std::int64_t, std::int64_t) {
  return CellType::fluid;
}

void check_basis_against_dense(const Grid& grid, const char* name) {
  const auto dense = grid.dense_eigenvalues();
  std::vector<double> nonzero;
  for (const double v : dense)
    if (v > 1e-10) nonzero.push_back(v);
  const auto basis = solvers::ritz_basis(*grid.op, static_cast<int>(grid.size()), 11);
  ASSERT_EQ(basis.values.size(), nonzero.size()) << name;
  ASSERT_EQ(basis.vectors.size(), nonzero.size()) << name;
  const double largest = nonzero.back();
  for (std::size_t i = 0; i < nonzero.size(); ++i)
    EXPECT_NEAR(basis.values[i], nonzero[i], 1e-10 * largest) << name << " eigenvalue " << i;
  // Orthonormal, with small residuals ||A v - theta v||, and 0 on non-fluid cells (A v is).
  const std::size_t count = basis.vectors.size();
  auto av = grid.op->make_vector("av");
  double worst_gram = 0.0, worst_residual = 0.0;
  for (std::size_t i = 0; i < count; ++i) {
    for (std::size_t j = 0; j <= i; ++j) {
      const double d = grid.op->dot(basis.vectors[i], basis.vectors[j]);
      worst_gram = std::max(worst_gram, std::abs(d - (i == j ? 1.0 : 0.0)));
    }
    grid.op->apply(basis.vectors[i], av);
    solvers::PoissonVectorSpace(*grid.op).axpby(-basis.values[i], basis.vectors[i], 1.0, av);
    worst_residual = std::max(worst_residual, std::sqrt(grid.op->dot(av, av)));
  }
  EXPECT_LE(worst_gram, 1e-10) << name;
  EXPECT_LE(worst_residual, 1e-8 * largest) << name;
}

}  // namespace

TEST(DcdmTrainingData, RitzValuesWithFullStepsAreTheDenseEigenvalues) {
  comm::Communicator world(MPI_COMM_WORLD);
  // Dirichlet (air) outside and one solid cell: nonsingular, 119 unknowns.
  const Grid mixed(world, {6, 5, 4}, one_solid, CellType::air);
  ASSERT_FALSE(mixed.op->singular());
  check_basis_against_dense(mixed, "6x5x4 with a solid cell");
  // All-Neumann box: singular; its constant null vector is dropped, and the box's repeated eigenvalues
  // (e.g. 2 = 2 - 2 cos(3 pi / 6) = 2 - 2 cos(2 pi / 4)) are all found through the restarts.
  const Grid box(world, {6, 5, 4}, all_fluid, CellType::solid);
  ASSERT_TRUE(box.op->singular());
  check_basis_against_dense(box, "all-Neumann 6x5x4");
}

TEST(DcdmTrainingData, FewStepsGiveExtremeEigenvaluesAndNoNullSpace) {
  comm::Communicator world(MPI_COMM_WORLD);
  const Grid box(world, {10, 9, 8}, all_fluid, CellType::solid);
  const auto dense = box.dense_eigenvalues();
  const auto basis = solvers::ritz_basis(*box.op, 60, 3);
  ASSERT_EQ(basis.values.size(), 60u);  // nothing dropped: the start vector lies in range(A)
  EXPECT_TRUE(std::is_sorted(basis.values.begin(), basis.values.end()));
  // The extreme Ritz values converge first: the largest and the smallest nonzero eigenvalue.
  EXPECT_NEAR(basis.values.back(), dense.back(), 1e-8 * dense.back());
  // The low end converges more slowly; by interlacing on range(A) it stays above the smallest nonzero one.
  EXPECT_GE(basis.values.front(), dense[1] * (1 - 1e-10));
  EXPECT_LT(basis.values.front(), 1.05 * dense[1]);
}

TEST(DcdmTrainingData, TrainingVectorsAreUnitWeightedAndRankCountFree) {
  comm::Communicator world(MPI_COMM_WORLD), self(MPI_COMM_SELF);
  const std::array<std::int64_t, 3> n{9, 7, 8};
  const CellType boundary = CellType::solid;
  const int steps = 40, low = 10;
  const double weight = 3.0;
  const std::uint64_t seed = 5;
  const Grid grid(world, n, one_solid, boundary), serial(self, n, one_solid, boundary);
  const auto basis = solvers::ritz_basis(*grid.op, steps, seed);
  const auto serial_basis = solvers::ritz_basis(*serial.op, steps, seed);
  ASSERT_EQ(basis.values.size(), serial_basis.values.size());
  for (std::size_t i = 0; i < basis.values.size(); ++i)
    EXPECT_NEAR(basis.values[i], serial_basis.values[i], 1e-10 * basis.values.back());
  auto b = grid.op->make_vector("b"), b1 = serial.op->make_vector("b1");
  double low_energy = 0.0, high_energy = 0.0;
  const std::size_t count = basis.vectors.size();
  const int samples = 100;
  for (int index = 0; index < samples; ++index) {
    solvers::training_vector(*grid.op, basis, index, low, weight, seed, b);
    EXPECT_NEAR(grid.op->dot(b, b), 1.0, 1e-12);
    if (index < 3) {
      solvers::training_vector(*serial.op, serial_basis, index, low, weight, seed, b1);
      const auto a = grid.gather(b), c = serial.gather(b1);
      double diff = 0.0;
      for (std::size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::abs(a[i] - c[i]));
      EXPECT_LE(diff, 1e-8) << "training vector " << index;
    }
    // Its coordinates in the Ritz basis are the keyed coefficients, normalised.
    std::vector<double> coordinates(count), keyed(count);
    double norm = 0.0;
    for (std::size_t j = 0; j < count; ++j) {
      coordinates[j] = grid.op->dot(basis.vectors[j], b);
      const std::uint64_t id = (static_cast<std::uint64_t>(index) << 32) | j;
      keyed[j] =
          engine::standard_normal(seed, 0x44435456u, id) * (j < static_cast<std::size_t>(low) ? weight : 1.0);
      norm += keyed[j] * keyed[j];
    }
    for (std::size_t j = 0; j < count; ++j) {
      EXPECT_NEAR(coordinates[j], keyed[j] / std::sqrt(norm), 1e-10) << index << " " << j;
      (j < static_cast<std::size_t>(low) ? low_energy : high_energy) += keyed[j] * keyed[j];
    }
  }
  // Energy per Ritz vector before normalisation (which shrinks the samples with much low energy more):
  // low_weight^2 = 9 times more on the low part (1,000 and 3,000 squared normals).
  const double ratio = (low_energy / low) / (high_energy / static_cast<double>(count - low));
  EXPECT_GT(ratio, 0.85 * weight * weight);
  EXPECT_LT(ratio, 1.15 * weight * weight);
  EXPECT_THROW(solvers::training_vector(*grid.op, basis, -1, low, weight, seed, b), std::invalid_argument);
  EXPECT_THROW(solvers::training_vector(*grid.op, basis, 0, low, 0.0, seed, b), std::invalid_argument);
  EXPECT_THROW(solvers::ritz_basis(*grid.op, 0, seed), std::invalid_argument);
}
