// The 7-point pressure-Poisson operator against a host loop over the global grid (mixed cell types, both
// boundary types, grids that do not divide evenly), its null space, and the ghosted vector space; at 1-4
// ranks, so matching the host reference at each rank count is matching across rank counts.
// skein-test-ranks: 1 2 3 4
#include "comm/communicator.hpp"
#include "device_normals.hpp"
#include "solvers/poisson_operator.hpp"
#include "solvers/poisson_space.hpp"
#include "solvers/vector_space.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

using namespace skein;
using solvers::CellType;
using solvers::PoissonField;

namespace {

std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
// Uniform in [-1, 1), keyed by (seed, global cell): the same field at any rank count.
double uniform(std::uint64_t seed, std::uint64_t cell) {
  return static_cast<double>(mix(mix(seed) ^ cell) >> 11) * 0x1.0p-52 - 1.0;
}

// A whole global grid on the host, i fastest-varying last (as the fields).
struct Grid {
  std::array<std::int64_t, 3> n;
  std::int64_t index(std::int64_t i, std::int64_t j, std::int64_t k) const {
    return (i * n[1] + j) * n[2] + k;
  }
  std::int64_t size() const { return n[0] * n[1] * n[2]; }
};

// Fluid 70%, solid 20%, air 10% (or no air), by global cell.
std::vector<std::uint8_t> random_cells(const Grid& g, std::uint64_t seed, bool with_air) {
  std::vector<std::uint8_t> cells(static_cast<std::size_t>(g.size()));
  for (std::int64_t c = 0; c < g.size(); ++c) {
    const double u = 0.5 * (uniform(seed, static_cast<std::uint64_t>(c)) + 1.0);
    cells[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(
        u < 0.7 ? CellType::fluid : (u < 0.9 || !with_air ? CellType::solid : CellType::air));
  }
  return cells;
}

// Owned cells of a width-1 field from a global host array, through a host mirror.
template <class View, class T>
void scatter(const comm::CartDecomposition& d, const Grid& g, const std::vector<T>& global,
             const View& field) {
  auto host = Kokkos::create_mirror_view(field);
  Kokkos::deep_copy(host, field);
  const auto o = d.owned();
  for (std::int64_t i = 0; i < o.extent[0]; ++i)
    for (std::int64_t j = 0; j < o.extent[1]; ++j)
      for (std::int64_t k = 0; k < o.extent[2]; ++k)
        host(i + 1, j + 1, k + 1) =
            global[static_cast<std::size_t>(g.index(o.offset[0] + i, o.offset[1] + j, o.offset[2] + k))];
  Kokkos::deep_copy(field, host);
}

// The reference: y = A x from the definition, looping over the global grid.
std::vector<double> reference_apply(const Grid& g, const std::vector<std::uint8_t>& cells, CellType boundary,
                                    const std::vector<double>& x, std::vector<double>* diagonal = nullptr) {
  std::vector<double> y(x.size(), 0.0);
  if (diagonal) diagonal->assign(x.size(), 0.0);
  const auto type = [&](std::int64_t i, std::int64_t j, std::int64_t k) {
    if (i < 0 || j < 0 || k < 0 || i >= g.n[0] || j >= g.n[1] || k >= g.n[2])
      return static_cast<std::uint8_t>(boundary);
    return cells[static_cast<std::size_t>(g.index(i, j, k))];
  };
  const int offsets[6][3] = {{-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};
  for (std::int64_t i = 0; i < g.n[0]; ++i)
    for (std::int64_t j = 0; j < g.n[1]; ++j)
      for (std::int64_t k = 0; k < g.n[2]; ++k) {
        if (type(i, j, k) != static_cast<std::uint8_t>(CellType::fluid)) continue;
        double diag = 0.0, off = 0.0;
        for (const auto& o : offsets) {
          const auto t = type(i + o[0], j + o[1], k + o[2]);
          if (t != static_cast<std::uint8_t>(CellType::solid)) diag += 1.0;
          if (t == static_cast<std::uint8_t>(CellType::fluid))
            off += x[static_cast<std::size_t>(g.index(i + o[0], j + o[1], k + o[2]))];
        }
        const auto c = static_cast<std::size_t>(g.index(i, j, k));
        y[c] = diag * x[c] - off;
        if (diagonal) (*diagonal)[c] = diag;
      }
  return y;
}

// Largest |field - global| over this rank's owned cells, agreed over ranks.
double max_difference(const comm::CartDecomposition& d, const Grid& g, const PoissonField& field,
                      const std::vector<double>& global) {
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), field);
  const auto o = d.owned();
  double worst = 0.0;
  for (std::int64_t i = 0; i < o.extent[0]; ++i)
    for (std::int64_t j = 0; j < o.extent[1]; ++j)
      for (std::int64_t k = 0; k < o.extent[2]; ++k)
        worst = std::max(worst, std::abs(host(i + 1, j + 1, k + 1) -
                                         global[static_cast<std::size_t>(
                                             g.index(o.offset[0] + i, o.offset[1] + j, o.offset[2] + k))]));
  return d.comm().allreduce(worst, comm::Op::max);
}

solvers::PoissonOperator make_operator(const comm::CartDecomposition& d, const Grid& g,
                                       const std::vector<std::uint8_t>& cells, CellType boundary) {
  auto field = comm::make_field<std::uint8_t>(d, 1, "cells");
  scatter(d, g, cells, field);
  return solvers::PoissonOperator(d, field, boundary);
}

}  // namespace

TEST(PoissonOperator, MatchesHostReferenceOnMixedCells) {
  comm::Communicator comm(MPI_COMM_WORLD);
  for (const auto& n : {std::array<std::int64_t, 3>{13, 9, 7}, std::array<std::int64_t, 3>{8, 8, 8},
                        std::array<std::int64_t, 3>{5, 17, 3}}) {
    for (const CellType boundary : {CellType::air, CellType::solid}) {
      const Grid g{n};
      comm::CartDecomposition d(comm, n);
      const auto cells = random_cells(g, 11 + n[0], true);
      const auto op = make_operator(d, g, cells, boundary);
      // x is nonzero on non-fluid cells too: the operator must ignore it there.
      std::vector<double> x(static_cast<std::size_t>(g.size()));
      for (std::int64_t c = 0; c < g.size(); ++c)
        x[static_cast<std::size_t>(c)] = uniform(5, static_cast<std::uint64_t>(c));
      std::vector<double> diagonal;
      const auto expected = reference_apply(g, cells, boundary, x, &diagonal);

      auto xf = op.make_vector("x"), yf = op.make_vector("y"), df = op.make_vector("d"),
           rf = op.make_vector("r");
      scatter(d, g, x, xf);
      Kokkos::deep_copy(yf, 7.0);  // stale values everywhere: apply must overwrite every owned cell
      op.apply(xf, yf);
      EXPECT_LE(max_difference(d, g, yf, expected), 1e-13) << n[0] << "x" << n[1] << "x" << n[2];
      EXPECT_EQ(max_difference(d, g, xf, x), 0.0) << "apply changed x";
      op.diagonal(df);
      EXPECT_EQ(max_difference(d, g, df, diagonal), 0.0);
      // r = b - A x with b = x
      op.residual(xf, xf, rf);
      std::vector<double> r(x.size(), 0.0);
      for (std::int64_t c = 0; c < g.size(); ++c)
        if (cells[static_cast<std::size_t>(c)] == static_cast<std::uint8_t>(CellType::fluid))
          r[static_cast<std::size_t>(c)] =
              x[static_cast<std::size_t>(c)] - expected[static_cast<std::size_t>(c)];
      EXPECT_LE(max_difference(d, g, rf, r), 1e-13);

      std::int64_t fluid = 0;
      double fluid_sum = 0.0, xy = 0.0;
      for (std::int64_t c = 0; c < g.size(); ++c) {
        xy += x[static_cast<std::size_t>(c)] * expected[static_cast<std::size_t>(c)];
        if (cells[static_cast<std::size_t>(c)] != static_cast<std::uint8_t>(CellType::fluid)) continue;
        ++fluid;
        fluid_sum += x[static_cast<std::size_t>(c)];
      }
      EXPECT_EQ(op.fluid_cells(), fluid);
      EXPECT_FALSE(op.singular());
      EXPECT_NEAR(op.fluid_sum(xf), fluid_sum, 1e-12 * g.size());
      EXPECT_NEAR(op.dot(xf, yf), xy, 1e-12 * g.size());
    }
  }
}

TEST(PoissonOperator, SymmetricOnFluidCells) {
  comm::Communicator comm(MPI_COMM_WORLD);
  const Grid g{{11, 6, 9}};
  comm::CartDecomposition d(comm, g.n);
  const auto op = make_operator(d, g, random_cells(g, 3, true), CellType::solid);
  auto u = op.make_vector("u"), v = op.make_vector("v"), au = op.make_vector("au"), av = op.make_vector("av");
  std::vector<double> uu(static_cast<std::size_t>(g.size())), vv(uu.size());
  for (std::int64_t c = 0; c < g.size(); ++c) {
    uu[static_cast<std::size_t>(c)] = uniform(1, static_cast<std::uint64_t>(c));
    vv[static_cast<std::size_t>(c)] = uniform(2, static_cast<std::uint64_t>(c));
  }
  scatter(d, g, uu, u);
  scatter(d, g, vv, v);
  op.mask(u);
  op.mask(v);
  op.apply(u, au);
  op.apply(v, av);
  EXPECT_NEAR(op.dot(u, av), op.dot(au, v), 1e-12 * std::sqrt(op.dot(u, u) * op.dot(av, av)));
  EXPECT_GT(op.dot(u, au), 0.0);
}

TEST(PoissonOperator, AllNeumannNullSpace) {
  comm::Communicator comm(MPI_COMM_WORLD);
  const Grid g{{9, 10, 7}};
  comm::CartDecomposition d(comm, g.n);
  // Solid outside, no air inside: singular. The solid cells sit on a lattice, so the fluid stays connected.
  std::vector<std::uint8_t> cells(static_cast<std::size_t>(g.size()),
                                  static_cast<std::uint8_t>(CellType::fluid));
  for (std::int64_t i = 1; i < g.n[0]; i += 3)
    for (std::int64_t j = 1; j < g.n[1]; j += 3)
      for (std::int64_t k = 1; k < g.n[2]; k += 3) cells[static_cast<std::size_t>(g.index(i, j, k))] = 1;
  const auto op = make_operator(d, g, cells, CellType::solid);
  EXPECT_TRUE(op.singular());

  auto one = op.make_vector("one"), y = op.make_vector("y"), b = op.make_vector("b");
  Kokkos::deep_copy(one, 1.0);
  op.mask(one);
  op.apply(one, y);
  EXPECT_LT(std::sqrt(op.dot(y, y)), 1e-12);  // A 1 = 0 on the fluid
  EXPECT_NEAR(op.null_space_fraction(one), 1.0, 1e-12);

  // A consistent right-hand side (the range of A) and an inconsistent one (plus a constant).
  std::vector<double> x(static_cast<std::size_t>(g.size()));
  for (std::int64_t c = 0; c < g.size(); ++c)
    x[static_cast<std::size_t>(c)] = uniform(9, static_cast<std::uint64_t>(c));
  auto xf = op.make_vector("x");
  scatter(d, g, x, xf);
  op.apply(xf, b);
  EXPECT_LT(op.null_space_fraction(b), 1e-13);
  const double norm_b = std::sqrt(op.dot(b, b));
  const solvers::PoissonVectorSpace space(op);
  space.axpby(0.2 * norm_b / std::sqrt(static_cast<double>(op.fluid_cells())), one, 1.0, b);
  EXPECT_GT(op.null_space_fraction(b), 0.1);
  op.remove_mean(b);  // the projection makes it consistent again
  EXPECT_LT(op.null_space_fraction(b), 1e-13);
  EXPECT_LT(std::abs(op.fluid_sum(b)), 1e-12 * norm_b * std::sqrt(static_cast<double>(op.fluid_cells())));

  // Any air cell makes it nonsingular.
  cells[static_cast<std::size_t>(g.index(4, 4, 6))] = static_cast<std::uint8_t>(CellType::air);
  EXPECT_FALSE(make_operator(d, g, cells, CellType::solid).singular());
}

TEST(PoissonVectorSpace, ReductionsOverOwnedCellsOnly) {
  comm::Communicator comm(MPI_COMM_WORLD);
  const Grid g{{13, 9, 7}};
  comm::CartDecomposition d(comm, g.n);
  const solvers::PoissonVectorSpace space(d);
  EXPECT_EQ(space.global_size(), g.size());
  auto u = space.create("u"), v = space.create("v"), w = space.create("w");
  std::vector<double> uu(static_cast<std::size_t>(g.size())), vv(uu.size());
  double uv = 0.0, combined = 0.0;
  for (std::int64_t c = 0; c < g.size(); ++c) {
    uu[static_cast<std::size_t>(c)] = uniform(1, static_cast<std::uint64_t>(c));
    vv[static_cast<std::size_t>(c)] = uniform(2, static_cast<std::uint64_t>(c));
    uv += uu[static_cast<std::size_t>(c)] * vv[static_cast<std::size_t>(c)];
  }
  Kokkos::deep_copy(u, 100.0);  // ghosts hold garbage, which reductions must skip
  Kokkos::deep_copy(v, -50.0);
  scatter(d, g, uu, u);
  scatter(d, g, vv, v);
  EXPECT_NEAR(solvers::dot(space, u, v), uv, 1e-12 * g.size());
  const PoissonField* xs[2] = {&u, &v};
  const double coeffs[2] = {2.0, -3.0};
  space.combine(2, xs, coeffs, w);
  std::vector<double> ww(uu.size());
  for (std::size_t c = 0; c < uu.size(); ++c) {
    ww[c] = 2.0 * uu[c] - 3.0 * vv[c];
    combined += ww[c] * ww[c];
  }
  EXPECT_LE(max_difference(d, g, w, ww), 1e-15);
  EXPECT_NEAR(solvers::norm2(space, w), std::sqrt(combined), 1e-12 * std::sqrt(combined));
  // fill_normal depends on the global index only: its norm is the same at any rank count.
  space.fill_normal(u, 42, engine::StreamId(7u), 0);
  const auto normals = skein_test::device_normals(42, engine::StreamId(7u), 0, uu.size());
  EXPECT_EQ(max_difference(d, g, u, normals), 0.0);
}
