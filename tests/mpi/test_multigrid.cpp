// Geometric multigrid V-cycle: symmetric and positive definite, MG-PCG iterations flat in the grid size and
// several times fewer than CG's, all-Neumann problems, O(h^2) manufactured error; at 1-4 ranks.
// skein-test-ranks: 1 2 3 4
#include "comm/communicator.hpp"
#include "engine/error.hpp"
#include "solvers/cg.hpp"
#include "solvers/multigrid.hpp"
#include "solvers/poisson_operator.hpp"
#include "solvers/poisson_space.hpp"

#include "poisson_test_fields.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>

using namespace skein;
using solvers::CellType;
using solvers::PoissonField;

namespace {

using Policy3 = Kokkos::MDRangePolicy<Kokkos::Rank<3>, Kokkos::IndexType<int>>;

using test::fill;
using test::uniform;

using GlobalFn = std::function<double(std::int64_t, std::int64_t, std::int64_t)>;
using CellFn = std::function<CellType(std::int64_t, std::int64_t, std::int64_t)>;


// A grid, its operator and a right-hand side.
struct Problem {
  comm::Communicator comm{MPI_COMM_WORLD};
  comm::CartDecomposition decomposition;
  std::unique_ptr<solvers::PoissonOperator> op;
  PoissonField b;
  Problem(std::array<std::int64_t, 3> n, const CellFn& cell, CellType boundary) : decomposition(comm, n) {
    auto cells = comm::make_field<std::uint8_t>(decomposition, 1, "cells");
    fill(decomposition, cells,
         [&](auto i, auto j, auto k) { return static_cast<std::uint8_t>(cell(i, j, k)); });
    op = std::make_unique<solvers::PoissonOperator>(decomposition, cells, boundary);
    b = op->make_vector("b");
  }
};

CellType all_fluid(std::int64_t, std::int64_t, std::int64_t) {
  return CellType::fluid;
}

// The smoke problem's geometry: a box with solid (Neumann) walls outside, an air opening in the middle of
// the top face, two solid spheres; sizes scale with n so the problem is the same at every resolution.
CellFn smoke_cells(std::int64_t n) {
  return [n](std::int64_t i, std::int64_t j, std::int64_t k) {
    const double h = 1.0 / static_cast<double>(n);
    const double x = (i + 0.5) * h, y = (j + 0.5) * h, z = (k + 0.5) * h;
    if (k == n - 1 && std::abs(x - 0.5) < 0.25 && std::abs(y - 0.5) < 0.25) return CellType::air;
    const double s1 = (x - 0.35) * (x - 0.35) + (y - 0.4) * (y - 0.4) + (z - 0.35) * (z - 0.35);
    const double s2 = (x - 0.7) * (x - 0.7) + (y - 0.6) * (y - 0.6) + (z - 0.6) * (z - 0.6);
    if (s1 < 0.15 * 0.15 || s2 < 0.12 * 0.12) return CellType::solid;
    return CellType::fluid;
  };
}

// CG or MG-PCG from x = 0 with the all-Neumann projection when the operator needs it.
solvers::SolveResult solve(const solvers::PoissonOperator& A, const solvers::MultigridPreconditioner* M,
                           const PoissonField& b, const PoissonField& x, double tol, int max_iters) {
  const solvers::PoissonVectorSpace space(A);
  const solvers::StoppingRule rule{tol, max_iters};
  space.fill(x, 0.0);
  if (M) {
    solvers::CgSolver<solvers::PoissonVectorSpace, solvers::PoissonOperator, solvers::MultigridPreconditioner>
        cg(space, A, *M, rule, solvers::poisson_projector(A));
    return cg.solve(b, x);
  }
  solvers::CgSolver<solvers::PoissonVectorSpace, solvers::PoissonOperator> cg(space, A, rule,
                                                                              solvers::poisson_projector(A));
  return cg.solve(b, x);
}

// The manufactured solution u = g(x) g(y) g(z), g(t) = e^t sin(pi t), zero on the walls (outside = air),
// x_i = (i + 1) h, h = 1 / (n + 1); b = h^2 (-laplace u) for the unscaled matrix, with
// g''(t) = e^t ((1 - pi^2) sin(pi t) + 2 pi cos(pi t)). The poisson job's problem=manufactured on a cube.
// (Not sin sin sin: that is A's lowest eigenvector, on which CG converges in one iteration.)
struct Factor {
  double g, g2;
};
Factor manufactured_factor(std::int64_t index, double h) {
  const double t = static_cast<double>(index + 1) * h, pi = M_PI;
  const double e = std::exp(t), s = std::sin(pi * t), c = std::cos(pi * t);
  return {e * s, e * ((1.0 - pi * pi) * s + 2.0 * pi * c)};
}

double manufactured_rhs(std::int64_t n, std::int64_t i, std::int64_t j, std::int64_t k) {
  const double h = 1.0 / static_cast<double>(n + 1);
  const Factor x = manufactured_factor(i, h), y = manufactured_factor(j, h), z = manufactured_factor(k, h);
  return -h * h * (x.g2 * y.g * z.g + x.g * y.g2 * z.g + x.g * y.g * z.g2);
}

double max_manufactured_error(const Problem& problem, const PoissonField& x, std::int64_t n) {
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), x);
  const auto owned = problem.decomposition.owned();
  const double h = 1.0 / static_cast<double>(n + 1);
  double error = 0.0;
  for (std::int64_t i = 0; i < owned.extent[0]; ++i)
    for (std::int64_t j = 0; j < owned.extent[1]; ++j)
      for (std::int64_t k = 0; k < owned.extent[2]; ++k) {
        const auto gi = owned.offset[0] + i, gj = owned.offset[1] + j, gk = owned.offset[2] + k;
        const double exact =
            manufactured_factor(gi, h).g * manufactured_factor(gj, h).g * manufactured_factor(gk, h).g;
        error = std::max(error, std::abs(host(i + 1, j + 1, k + 1) - exact));
      }
  return problem.comm.allreduce(error, comm::Op::max);
}

// Random u, v on the fluid cells; checks <u, M v> = <M u, v> and <u, M u> > 0.
void check_symmetric_positive(const solvers::PoissonOperator& op, const solvers::MultigridOptions& options,
                              const std::string& what) {
  const solvers::MultigridPreconditioner mg(op, options);
  const auto& d = op.decomposition();
  auto u = op.make_vector("u"), v = op.make_vector("v"), mu = op.make_vector("mu"), mv = op.make_vector("mv");
  const auto g = d.global_extent();
  for (std::uint64_t trial = 0; trial < 3; ++trial) {
    fill(d, u, [&](auto i, auto j, auto k) { return uniform(2 * trial, (i * g[1] + j) * g[2] + k); });
    fill(d, v, [&](auto i, auto j, auto k) { return uniform(2 * trial + 1, (i * g[1] + j) * g[2] + k); });
    op.mask(u);
    op.mask(v);
    mg.apply(u, mu);
    mg.apply(v, mv);
    const double umv = op.dot(u, mv), muv = op.dot(mu, v);
    const double scale = std::sqrt(op.dot(u, u) * op.dot(mv, mv));
    EXPECT_LE(std::abs(umv - muv), 1e-10 * scale) << what << ": <u, Mv> = " << umv << ", <Mu, v> = " << muv;
    EXPECT_GT(op.dot(u, mu), 0.0) << what;
    EXPECT_GT(op.dot(v, mv), 0.0) << what;
  }
}

// Iterations of MG-PCG (and CG when asked) at each size; prints them on rank 0.
struct Counts {
  std::vector<int> mg, cg;
};
Counts iteration_counts(const std::string& name, const std::vector<std::int64_t>& sizes,
                        const std::function<CellFn(std::int64_t)>& cells, CellType boundary,
                        const solvers::MultigridOptions& options, bool with_cg) {
  Counts counts;
  for (const auto n : sizes) {
    Problem problem({n, n, n}, cells(n), boundary);
    fill(problem.decomposition, problem.b,
         [&](auto i, auto j, auto k) { return uniform(7, (i * n + j) * n + k); });
    problem.op->mask(problem.b);
    const solvers::MultigridPreconditioner mg(*problem.op, options);
    auto x = problem.op->make_vector("x");
    const auto t0 = std::chrono::steady_clock::now();
    const auto result = solve(*problem.op, &mg, problem.b, x, 1e-8, 200);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_TRUE(result.converged) << name << " n=" << n;
    counts.mg.push_back(result.iterations);
    std::string line = name + " " + std::to_string(n) + "^3, " + std::to_string(mg.levels()) + " levels, " +
                       solvers::to_string(options.smoother) + ": MG-PCG " +
                       std::to_string(result.iterations) + " iterations (" + std::to_string(seconds) + " s)";
    if (with_cg) {
      const auto plain = solve(*problem.op, nullptr, problem.b, x, 1e-8, 5000);
      EXPECT_TRUE(plain.converged);
      counts.cg.push_back(plain.iterations);
      line += ", CG " + std::to_string(plain.iterations);
    }
    if (problem.comm.rank() == 0) std::printf("%s\n", line.c_str());
  }
  return counts;
}

}  // namespace

TEST(Multigrid, VCycleIsSymmetricPositiveDefinite) {
  comm::Communicator comm(MPI_COMM_WORLD);
  // Mixed cells (13x9x7 does not divide evenly over 2-4 ranks), both boundaries, both smoothers; and an
  // all-Neumann problem (singular A: M must still be SPD).
  const auto mixed = [](std::int64_t i, std::int64_t j, std::int64_t k) {
    const double u = 0.5 * (uniform(17, (i * 9 + j) * 7 + k) + 1.0);
    return u < 0.75 ? CellType::fluid : (u < 0.95 ? CellType::solid : CellType::air);
  };
  for (const CellType boundary : {CellType::air, CellType::solid}) {
    Problem problem({13, 9, 7}, mixed, boundary);
    for (const auto smoother :
         {solvers::MultigridSmoother::rbgs, solvers::MultigridSmoother::damped_jacobi}) {
      solvers::MultigridOptions options;
      options.smoother = smoother;
      check_symmetric_positive(*problem.op, options, "mixed 13x9x7 " + solvers::to_string(smoother));
      options.pre_smooth = options.post_smooth = 1;
      options.levels = 2;
      check_symmetric_positive(*problem.op, options, "mixed 13x9x7, 2 levels, (1,1)");
    }
  }
  Problem smoke({16, 16, 16}, smoke_cells(16), CellType::solid);
  check_symmetric_positive(*smoke.op, {}, "smoke 16^3");
  EXPECT_GT(solvers::MultigridPreconditioner(*smoke.op).memory_bytes(),
            smoke.decomposition.owned().cells() * 8u);
  Problem neumann({12, 10, 16}, all_fluid, CellType::solid);
  ASSERT_TRUE(neumann.op->singular());
  check_symmetric_positive(*neumann.op, {}, "all-Neumann 12x10x16");
}

TEST(Multigrid, IterationsFlatAndFewerThanCg) {
  const solvers::MultigridOptions rbgs;
  // The sizes: 32^3, 64^3, 128^3 (about 2 s at 1 rank).
  const auto box = iteration_counts(
      "box", {32, 64, 128}, [](std::int64_t) { return CellFn(all_fluid); }, CellType::air, rbgs, false);
  const auto smoke = iteration_counts("smoke", {32, 64, 128}, smoke_cells, CellType::solid, rbgs, false);
  for (const auto* counts : {&box, &smoke})
    for (std::size_t s = 1; s < counts->mg.size(); ++s) EXPECT_LE(counts->mg[s], 1.3 * counts->mg[0]);
  EXPECT_LE(box.mg.back(), 10);
  EXPECT_LE(smoke.mg.back(), 12);

  solvers::MultigridOptions jacobi;
  jacobi.smoother = solvers::MultigridSmoother::damped_jacobi;
  const auto box_jacobi = iteration_counts(
      "box", {16, 32}, [](std::int64_t) { return CellFn(all_fluid); }, CellType::air, jacobi, true);
  const auto smoke_cg = iteration_counts("smoke", {32}, smoke_cells, CellType::solid, rbgs, true);
  EXPECT_LE(box_jacobi.mg[1], 1.3 * box_jacobi.mg[0]);
  EXPECT_LE(4 * box_jacobi.mg[1], box_jacobi.cg[1]);
  EXPECT_LE(4 * smoke_cg.mg[0], smoke_cg.cg[0]);
}

TEST(Multigrid, ManufacturedSolutionIsSecondOrder) {
  std::vector<double> errors;
  std::vector<int> mg_iterations, cg_iterations;
  for (const std::int64_t n : {12, 24, 48}) {
    Problem problem({n, n, n}, all_fluid, CellType::air);
    fill(problem.decomposition, problem.b,
         [&](auto i, auto j, auto k) { return manufactured_rhs(n, i, j, k); });
    const solvers::MultigridPreconditioner mg(*problem.op);
    auto x = problem.op->make_vector("x");
    const auto result = solve(*problem.op, &mg, problem.b, x, 1e-10, 100);
    EXPECT_TRUE(result.converged);
    errors.push_back(max_manufactured_error(problem, x, n));
    mg_iterations.push_back(result.iterations);
    // Plain CG reaches the same discrete solution, in many more iterations.
    const auto plain = solve(*problem.op, nullptr, problem.b, x, 1e-10, 5000);
    EXPECT_TRUE(plain.converged);
    cg_iterations.push_back(plain.iterations);
    EXPECT_NEAR(max_manufactured_error(problem, x, n), errors.back(), 1e-5 * errors.back());
    if (problem.comm.rank() == 0)
      std::printf("manufactured %ld^3: max error %.3e, MG-PCG %d iterations, CG %d (to 1e-10)\n",
                  static_cast<long>(n), errors.back(), result.iterations, plain.iterations);
  }
  // h = 1/(n+1) roughly halves each time: the error should fall by about 4 (exactly ((2n+1)/(n+1))^2 ~ 3.8).
  // MG-PCG stays flat (+30% at most) from 24^3 to 48^3 (12^3 has fewer levels and needs 8) and takes
  // several times fewer iterations than CG at every size (measured: 8, 10, 11 against 49, 98, 197).
  for (std::size_t s = 1; s < errors.size(); ++s) {
    EXPECT_GT(errors[s - 1] / errors[s], 3.4);
    EXPECT_LT(errors[s - 1] / errors[s], 4.4);
    EXPECT_LE(4 * mg_iterations[s], cg_iterations[s]);
  }
  EXPECT_LE(mg_iterations[2], 1.3 * mg_iterations[1]);
  EXPECT_LE(4 * mg_iterations[0], cg_iterations[0]);
  EXPECT_GT(cg_iterations[0], 20);  // not an eigenvector of A: CG does not stop after one iteration
}

TEST(Multigrid, AllNeumannConsistentConvergesInconsistentDetected) {
  const std::int64_t n = 20;
  // Solid walls outside and a solid sphere inside, no air: singular.
  const auto cells = [](std::int64_t i, std::int64_t j, std::int64_t k) {
    const double x = i - 9.5, y = j - 8.5, z = k - 10.5;
    return x * x + y * y + z * z < 16.0 ? CellType::solid : CellType::fluid;
  };
  Problem problem({n, n, n}, cells, CellType::solid);
  ASSERT_TRUE(problem.op->singular());
  fill(problem.decomposition, problem.b,
       [&](auto i, auto j, auto k) { return uniform(3, (i * n + j) * n + k) + 0.5; });
  problem.op->mask(problem.b);
  // Inconsistent as given (mean 0.5): detected.
  EXPECT_GT(problem.op->null_space_fraction(problem.b), 0.1);
  // Consistent once projected: converges, and the answer has zero mean and solves A x = b.
  problem.op->remove_mean(problem.b);
  EXPECT_LT(problem.op->null_space_fraction(problem.b), 1e-12);
  const solvers::MultigridPreconditioner mg(*problem.op);
  auto x = problem.op->make_vector("x"), r = problem.op->make_vector("r");
  const auto result = solve(*problem.op, &mg, problem.b, x, 1e-10, 100);
  EXPECT_TRUE(result.converged);
  EXPECT_LE(result.iterations, 15);
  problem.op->residual(problem.b, x, r);
  EXPECT_LE(std::sqrt(problem.op->dot(r, r)), 1e-9 * std::sqrt(problem.op->dot(problem.b, problem.b)));
  EXPECT_LT(std::abs(problem.op->fluid_sum(x)), 1e-9 * std::sqrt(problem.op->dot(x, x)));
}

TEST(Multigrid, SolutionsAgreeAcrossRankCounts) {
  // The same odd-sized mixed problem on this run's ranks and on one rank inside each process.
  const std::array<std::int64_t, 3> n{13, 9, 7};
  const auto cells = [](std::int64_t i, std::int64_t j, std::int64_t k) {
    const double u = 0.5 * (uniform(23, (i * 9 + j) * 7 + k) + 1.0);
    return k == 6 && u < 0.5 ? CellType::air : (u < 0.2 ? CellType::solid : CellType::fluid);
  };
  comm::Communicator world(MPI_COMM_WORLD), self(MPI_COMM_SELF);
  std::vector<double> serial;
  {
    comm::CartDecomposition d(self, n);
    auto field = comm::make_field<std::uint8_t>(d, 1, "cells");
    fill(d, field, [&](auto i, auto j, auto k) { return static_cast<std::uint8_t>(cells(i, j, k)); });
    const solvers::PoissonOperator op(d, field, CellType::solid);
    auto b = op.make_vector("b"), x = op.make_vector("x");
    fill(d, b, [&](auto i, auto j, auto k) { return uniform(4, (i * n[1] + j) * n[2] + k); });
    op.mask(b);
    const solvers::MultigridPreconditioner mg(op);
    EXPECT_TRUE(solve(op, &mg, b, x, 1e-13, 200).converged);
    auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), x);
    for (std::int64_t i = 0; i < n[0]; ++i)
      for (std::int64_t j = 0; j < n[1]; ++j)
        for (std::int64_t k = 0; k < n[2]; ++k) serial.push_back(host(i + 1, j + 1, k + 1));
  }
  Problem problem(n, cells, CellType::solid);
  fill(problem.decomposition, problem.b,
       [&](auto i, auto j, auto k) { return uniform(4, (i * n[1] + j) * n[2] + k); });
  problem.op->mask(problem.b);
  const solvers::MultigridPreconditioner mg(*problem.op);
  auto x = problem.op->make_vector("x");
  EXPECT_TRUE(solve(*problem.op, &mg, problem.b, x, 1e-13, 200).converged);
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), x);
  const auto o = problem.decomposition.owned();
  double worst = 0.0;
  for (std::int64_t i = 0; i < o.extent[0]; ++i)
    for (std::int64_t j = 0; j < o.extent[1]; ++j)
      for (std::int64_t k = 0; k < o.extent[2]; ++k) {
        const auto c =
            static_cast<std::size_t>(((o.offset[0] + i) * n[1] + o.offset[1] + j) * n[2] + o.offset[2] + k);
        worst = std::max(worst, std::abs(host(i + 1, j + 1, k + 1) - serial[c]));
      }
  EXPECT_LE(world.allreduce(worst, comm::Op::max), 1e-10);
}

TEST(Multigrid, OptionsAreValidated) {
  Problem problem({8, 8, 8}, all_fluid, CellType::air);
  solvers::MultigridOptions options;
  options.pre_smooth = 2;
  options.post_smooth = 1;
  EXPECT_THROW(solvers::MultigridPreconditioner(*problem.op, options), engine::UsageError);
  options.post_smooth = 2;
  options.levels = 40;
  EXPECT_THROW(solvers::MultigridPreconditioner(*problem.op, options), engine::UsageError);
  EXPECT_THROW(solvers::parse_multigrid_smoother("sor"), engine::UsageError);
  EXPECT_EQ(solvers::parse_multigrid_smoother("damped-jacobi"), solvers::MultigridSmoother::damped_jacobi);
}
