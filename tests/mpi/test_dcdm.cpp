// DCDM's iteration with directions other than a network: the identity (it is CG then), a multigrid V-cycle
// (few iterations), random fields (the A-norm error still never grows); all-Neumann problems; resume; the
// same iterations and solution at 1, 2 and 3 ranks as on one rank.
// skein-test-ranks: 1 2 3
#include "comm/communicator.hpp"
#include "solvers/cg.hpp"
#include "solvers/dcdm.hpp"
#include "solvers/multigrid.hpp"
#include "solvers/poisson_operator.hpp"
#include "solvers/poisson_space.hpp"

#include "poisson_test_fields.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>

using namespace skein;
using solvers::CellType;
using solvers::PoissonField;
using Space = solvers::PoissonVectorSpace;
using Dcdm = solvers::DcdmSolver<Space, solvers::PoissonOperator>;

namespace {

using test::fill;
using test::uniform;

using CellFn = std::function<CellType(std::int64_t, std::int64_t, std::int64_t)>;
using ValueFn = std::function<double(std::int64_t, std::int64_t, std::int64_t)>;


// The poisson job's manufactured right-hand side (u = g(x) g(y) g(z), g = e^t sin(pi t), air outside).
double manufactured_rhs(std::int64_t n, std::int64_t i, std::int64_t j, std::int64_t k) {
  const double h = 1.0 / static_cast<double>(n + 1);
  auto f = [h](std::int64_t index, double& g, double& g2) {
    const double t = static_cast<double>(index + 1) * h, e = std::exp(t);
    g = e * std::sin(M_PI * t);
    g2 = e * ((1.0 - M_PI * M_PI) * std::sin(M_PI * t) + 2.0 * M_PI * std::cos(M_PI * t));
  };
  double x, x2, y, y2, z, z2;
  f(i, x, x2);
  f(j, y, y2);
  f(k, z, z2);
  return -h * h * (x2 * y * z + x * y2 * z + x * y * z2);
}

// A grid on a communicator, its operator and right-hand side.
struct Problem {
  comm::CartDecomposition decomposition;
  std::unique_ptr<solvers::PoissonOperator> op;
  std::unique_ptr<Space> space;
  PoissonField b;
  Problem(const comm::Communicator& comm, std::array<std::int64_t, 3> n, const CellFn& cell,
          CellType boundary, const ValueFn& rhs)
      : decomposition(comm, n) {
    auto cells = comm::make_field<std::uint8_t>(decomposition, 1, "cells");
    fill(decomposition, cells,
         [&](auto i, auto j, auto k) { return static_cast<std::uint8_t>(cell(i, j, k)); });
    op = std::make_unique<solvers::PoissonOperator>(decomposition, cells, boundary);
    space = std::make_unique<Space>(*op);
    b = op->make_vector("b");
    fill(decomposition, b, rhs);
    op->mask(b);
    if (op->singular()) op->remove_mean(b);
  }
  // The owned cells of v, as a global row-major array on every rank.
  std::vector<double> gather(const PoissonField& v) const {
    const auto g = decomposition.global_extent();
    std::vector<double> all(static_cast<std::size_t>(g[0] * g[1] * g[2]), 0.0);
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
};

CellType all_fluid(std::int64_t, std::int64_t, std::int64_t) {
  return CellType::fluid;
}
// Solid walls outside, a solid ball inside, no air: all Neumann (singular).
CellType ball(std::int64_t i, std::int64_t j, std::int64_t k) {
  const double x = i - 6.5, y = j - 5.5, z = k - 7.0;
  return x * x + y * y + z * z < 9.0 ? CellType::solid : CellType::fluid;
}

Problem manufactured(const comm::Communicator& comm, std::int64_t n) {
  return Problem(comm, {n, n, n}, all_fluid, CellType::air,
                 [n](auto i, auto j, auto k) { return manufactured_rhs(n, i, j, k); });
}
Problem neumann_ball(const comm::Communicator& comm) {
  return Problem(comm, {14, 11, 15}, ball, CellType::solid,
                 [](auto i, auto j, auto k) { return uniform(5, (i * 11 + j) * 15 + k); });
}

solvers::SolveResult cg(const Problem& p, const PoissonField& x, double tol) {
  Kokkos::deep_copy(x, 0.0);
  solvers::CgSolver<Space, solvers::PoissonOperator> solver(*p.space, *p.op, {tol, 5000},
                                                            solvers::poisson_projector(*p.op));
  return solver.solve(p.b, x);
}

Dcdm::Direction identity(const Space& space) {
  return [space](const PoissonField& r, const PoissonField& q) { space.copy(r, q); };
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}
double max_abs(const std::vector<double>& a) {
  double m = 0.0;
  for (const double v : a) m = std::max(m, std::abs(v));
  return m;
}

}  // namespace

TEST(Dcdm, IdentityDirectionIsCg) {
  comm::Communicator world(MPI_COMM_WORLD);
  for (int which = 0; which < 2; ++which) {
    const Problem p = which == 0 ? manufactured(world, 16) : neumann_ball(world);
    const char* name = which == 0 ? "manufactured 16^3" : "all-Neumann ball";
    auto x_cg = p.op->make_vector("x_cg"), x = p.op->make_vector("x");
    const auto reference = cg(p, x_cg, 1e-10);
    ASSERT_TRUE(reference.converged) << name;
    Dcdm dcdm(*p.space, *p.op, identity(*p.space), {1e-10, 5000}, solvers::dcdm_projector(*p.op));
    const auto result = dcdm.solve(p.b, x);
    EXPECT_TRUE(result.converged) << name;
    EXPECT_FALSE(result.breakdown) << name;
    EXPECT_NEAR(result.iterations, reference.iterations, 1) << name;
    EXPECT_GT(result.iterations, 20) << name;
    ASSERT_EQ(result.residual_history.size(), static_cast<std::size_t>(result.iterations) + 1);
    // The residual histories agree while rounding is small against them.
    for (std::size_t i = 0; i < 15; ++i)
      EXPECT_NEAR(result.residual_history[i], reference.residual_history[i],
                  1e-6 * reference.residual_history[i])
          << name << " iteration " << i;
    const auto a = p.gather(x), c = p.gather(x_cg);
    EXPECT_LE(max_abs_diff(a, c), 1e-7 * max_abs(c)) << name;
    if (p.op->singular()) EXPECT_LE(std::abs(p.op->fluid_sum(x)), 1e-10 * std::sqrt(p.op->dot(x, x)));
    // The reported residual is the true one.
    auto r = p.op->make_vector("r");
    p.op->residual(p.b, x, r);
    EXPECT_NEAR(std::sqrt(p.op->dot(r, r) / p.op->dot(p.b, p.b)), result.relative_residual,
                1e-3 * result.relative_residual);
    if (world.rank() == 0)
      std::printf("%s: DCDM(identity) %d iterations, CG %d\n", name, result.iterations, reference.iterations);
  }
}

TEST(Dcdm, MultigridDirectionConvergesInFewIterations) {
  comm::Communicator world(MPI_COMM_WORLD);
  for (int which = 0; which < 2; ++which) {
    const Problem p = which == 0 ? manufactured(world, 24) : neumann_ball(world);
    const char* name = which == 0 ? "manufactured 24^3" : "all-Neumann ball";
    const solvers::MultigridPreconditioner mg(*p.op);
    auto x = p.op->make_vector("x"), x_cg = p.op->make_vector("x_cg");
    const Dcdm::Direction vcycle = [&mg](const PoissonField& r, const PoissonField& q) { mg.apply(r, q); };
    Dcdm dcdm(*p.space, *p.op, vcycle, {1e-8, 200}, solvers::dcdm_projector(*p.op));
    const auto result = dcdm.solve(p.b, x);
    const auto plain = cg(p, x_cg, 1e-8);
    EXPECT_TRUE(result.converged) << name;
    EXPECT_LE(result.iterations, 14) << name;
    EXPECT_LE(4 * result.iterations, plain.iterations) << name;
    const auto a = p.gather(x), c = p.gather(x_cg);
    EXPECT_LE(max_abs_diff(a, c), 1e-5 * max_abs(c)) << name;
    if (world.rank() == 0)
      std::printf("%s: DCDM(V-cycle) %d iterations, CG %d (tol 1e-8)\n", name, result.iterations,
                  plain.iterations);
  }
}

// Random directions: no convergence to speak of, but each step is an exact line search in the A-norm, so
// the A-norm error ||x - x*||_A never grows (the paper's guarantee for any network).
TEST(Dcdm, RandomDirectionsNeverIncreaseTheEnergyError) {
  comm::Communicator world(MPI_COMM_WORLD);
  for (int which = 0; which < 2; ++which) {
    const Problem p = which == 0 ? manufactured(world, 12) : neumann_ball(world);
    auto exact = p.op->make_vector("exact"), x = p.op->make_vector("x");
    ASSERT_TRUE(cg(p, exact, 1e-14).converged);
    auto e = p.op->make_vector("e"), ae = p.op->make_vector("ae");
    auto energy = [&](const PoissonField& iterate) {
      p.space->copy(iterate, e);
      p.space->axpby(-1.0, exact, 1.0, e);
      p.op->apply(e, ae);
      return p.op->dot(e, ae);
    };
    std::uint64_t draw = 0;
    const Dcdm::Direction random = [&](const PoissonField&, const PoissonField& q) {
      p.space->fill_normal(q, 42, 7u, draw++);
    };
    Dcdm dcdm(*p.space, *p.op, random, {1e-12, 40}, solvers::dcdm_projector(*p.op));
    std::vector<double> energies{energy(x)};
    dcdm.solve(p.b, x, [&](const solvers::IterationInfo&) {
      energies.push_back(energy(dcdm.x()));
      return true;
    });
    ASSERT_EQ(energies.size(), 41u);
    for (std::size_t i = 1; i < energies.size(); ++i)
      EXPECT_LE(energies[i], energies[i - 1] * (1 + 1e-12)) << "iteration " << i;
    // White noise barely helps (its energy sits at the top of A's spectrum), but it does help.
    EXPECT_LT(energies.back(), (1 - 1e-5) * energies.front());
  }
}

TEST(Dcdm, ResumeContinuesExactly) {
  comm::Communicator world(MPI_COMM_WORLD);
  const Problem p = neumann_ball(world);
  const solvers::MultigridPreconditioner mg(*p.op);
  const Dcdm::Direction vcycle = [&mg](const PoissonField& r, const PoissonField& q) { mg.apply(r, q); };
  auto x_full = p.op->make_vector("x_full"), x = p.op->make_vector("x");
  Dcdm full(*p.space, *p.op, vcycle, {1e-10, 200}, solvers::dcdm_projector(*p.op));
  const auto reference = full.solve(p.b, x_full);
  ASSERT_TRUE(reference.converged);
  ASSERT_GT(reference.iterations, 5);

  Dcdm first(*p.space, *p.op, vcycle, {1e-10, 200}, solvers::dcdm_projector(*p.op));
  const auto stopped =
      first.solve(p.b, x, [](const solvers::IterationInfo& info) { return info.iteration < 4; });
  ASSERT_TRUE(stopped.stopped);
  // Save: copies, as a checkpoint would hold them.
  std::vector<PoissonField> saved;
  for (const auto& d : first.directions()) {
    saved.push_back(p.op->make_vector("saved"));
    Kokkos::deep_copy(saved.back(), d);
  }
  ASSERT_EQ(saved.size(), 2u);
  auto x_saved = p.op->make_vector("x_saved");
  Kokkos::deep_copy(x_saved, x);
  const auto scalars = first.scalars();
  const auto history = first.history();

  Dcdm second(*p.space, *p.op, vcycle, {1e-10, 200}, solvers::dcdm_projector(*p.op));
  second.resume(p.b, x_saved, saved, scalars, history);
  const auto resumed = second.run();
  EXPECT_EQ(resumed.iterations, reference.iterations);
  EXPECT_EQ(resumed.residual_history, reference.residual_history);
  EXPECT_EQ(max_abs_diff(p.gather(x_saved), p.gather(x_full)), 0.0);
}

TEST(Dcdm, SameIterationsAndSolutionAtAnyRankCount) {
  comm::Communicator world(MPI_COMM_WORLD), self(MPI_COMM_SELF);
  for (int which = 0; which < 2; ++which) {
    int iterations[2][2];
    std::vector<double> solutions[2][2];
    for (int c = 0; c < 2; ++c) {
      const Problem p =
          which == 0 ? manufactured(c == 0 ? self : world, 13) : neumann_ball(c == 0 ? self : world);
      const solvers::MultigridPreconditioner mg(*p.op);
      const Dcdm::Direction vcycle = [&mg](const PoissonField& r, const PoissonField& q) { mg.apply(r, q); };
      for (int d = 0; d < 2; ++d) {
        auto x = p.op->make_vector("x");
        Dcdm dcdm(*p.space, *p.op, d == 0 ? identity(*p.space) : vcycle, {1e-9, 500},
                  solvers::dcdm_projector(*p.op));
        const auto result = dcdm.solve(p.b, x);
        EXPECT_TRUE(result.converged);
        iterations[c][d] = result.iterations;
        solutions[c][d] = p.gather(x);
      }
    }
    for (int d = 0; d < 2; ++d) {
      EXPECT_EQ(iterations[0][d], iterations[1][d]) << "problem " << which << " direction " << d;
      EXPECT_LE(max_abs_diff(solutions[0][d], solutions[1][d]), 1e-8 * max_abs(solutions[0][d]));
    }
  }
}

TEST(Dcdm, ZeroRightHandSideAndBadArguments) {
  comm::Communicator world(MPI_COMM_WORLD);
  Problem p(world, {6, 5, 4}, all_fluid, CellType::air, [](auto, auto, auto) { return 0.0; });
  auto x = p.op->make_vector("x");
  Kokkos::deep_copy(x, 1.0);
  const auto result = solvers::dcdm_solve(*p.space, *p.op, identity(*p.space), p.b, x, {1e-8, 10},
                                          solvers::dcdm_projector(*p.op));
  EXPECT_TRUE(result.converged);
  EXPECT_EQ(result.iterations, 0);
  EXPECT_EQ(max_abs(p.gather(x)), 0.0);
  EXPECT_THROW(Dcdm(*p.space, *p.op, identity(*p.space), {}, {}, -1), std::invalid_argument);
  EXPECT_THROW(Dcdm(*p.space, *p.op, Dcdm::Direction{}, {}), std::invalid_argument);
  // A direction of zeros is a breakdown, not a NaN.
  Problem q = manufactured(world, 6);
  Dcdm zero(
      *q.space, *q.op, [](const PoissonField&, const PoissonField& out) { Kokkos::deep_copy(out, 0.0); },
      {1e-8, 10}, solvers::dcdm_projector(*q.op));
  auto y = q.op->make_vector("y");
  const auto broken = zero.solve(q.b, y);
  EXPECT_TRUE(broken.breakdown);
  EXPECT_FALSE(broken.converged);
}
