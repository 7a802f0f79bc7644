// Distributed vector operations, CG and PCG against dense LAPACK solves, at 1-4 ranks; the same solve on a
// one-rank communicator inside each process is the cross-rank-count reference.
// skein-test-ranks: 1 2 3 4
#include "comm/communicator.hpp"
#include "device_normals.hpp"
#include "engine/random.hpp"
#include "solvers/cg.hpp"
#include "solvers/lapack.hpp"
#include "solvers/preconditioner.hpp"
#include "solvers/vector_space.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

using skein::comm::Communicator;
using namespace skein::solvers;

namespace {

using Space = DistributedVectorSpace<double>;
using Vec = Space::vector_type;

// A sparse symmetric matrix, replicated (tests only), in CSR with global column indices.
struct Csr {
  int n = 0;
  std::vector<int> row_start{0};
  std::vector<int> column;
  std::vector<double> value;

  std::vector<double> dense() const {  // column-major
    std::vector<double> a(static_cast<std::size_t>(n) * n, 0.0);
    for (int i = 0; i < n; ++i)
      for (int k = row_start[i]; k < row_start[i + 1]; ++k)
        a[static_cast<std::size_t>(column[k]) * n + i] += value[k];
    return a;
  }
};

// 5-point Laplacian on nx x ny cells plus a diagonal shift in [0, shift) keyed by cell index (so Jacobi has
// something to fix). Dirichlet walls; with neumann = true and shift = 0 it is singular (constants).
Csr laplacian_2d(int nx, int ny, double shift, bool neumann) {
  Csr m;
  m.n = nx * ny;
  for (int j = 0; j < ny; ++j) {
    for (int i = 0; i < nx; ++i) {
      const int row = j * nx + i;
      double diagonal = shift * std::pow(skein::engine::uniform_open01(99, 1u, row), 3.0);
      const int neighbours[4][2] = {{i - 1, j}, {i + 1, j}, {i, j - 1}, {i, j + 1}};
      for (const auto& nb : neighbours) {
        const bool inside = nb[0] >= 0 && nb[0] < nx && nb[1] >= 0 && nb[1] < ny;
        if (inside) {
          m.column.push_back(nb[1] * nx + nb[0]);
          m.value.push_back(-1.0);
          diagonal += 1.0;
        } else if (!neumann) {
          diagonal += 1.0;
        }
      }
      m.column.push_back(row);
      m.value.push_back(diagonal);
      m.row_start.push_back(static_cast<int>(m.column.size()));
    }
  }
  return m;
}

// y = A x on this rank's rows; the neighbour exchange is an allgatherv of x (fine for a test).
class CsrOperator {
 public:
  CsrOperator(const Space& space, const Csr& matrix) : space_(space), m_(matrix) {}
  void apply(const Vec& x, const Vec& y) const {
    const auto all = space_.communicator().allgatherv(x);
    auto host_y = Kokkos::create_mirror_view(y);
    for (std::int64_t i = 0; i < space_.local_size(); ++i) {
      const std::int64_t row = space_.global_offset() + i;
      double sum = 0.0;
      for (int k = m_.row_start[row]; k < m_.row_start[row + 1]; ++k) sum += m_.value[k] * all(m_.column[k]);
      host_y(i) = sum;
    }
    Kokkos::deep_copy(y, host_y);
  }
  Vec diagonal() const {
    std::vector<double> d(static_cast<std::size_t>(m_.n));
    for (int row = 0; row < m_.n; ++row)
      for (int k = m_.row_start[row]; k < m_.row_start[row + 1]; ++k)
        if (m_.column[k] == row) d[row] = m_.value[k];
    return scatter(d);
  }
  // This rank's part of a global vector.
  Vec scatter(const std::vector<double>& global) const {
    Vec v = space_.create("v");
    auto host = Kokkos::create_mirror_view(v);
    for (std::int64_t i = 0; i < space_.local_size(); ++i) host(i) = global[space_.global_offset() + i];
    Kokkos::deep_copy(v, host);
    return v;
  }
  std::vector<double> gather(const Vec& v) const {
    const auto all = space_.communicator().allgatherv(v);
    return std::vector<double>(all.data(), all.data() + all.extent(0));
  }

 private:
  Space space_;
  const Csr& m_;
};

std::vector<double> rhs(int n, std::uint64_t seed) {
  std::vector<double> b(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) b[i] = skein::engine::standard_normal(seed, 7u, i);
  return b;
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

// Removes the mean (the null space of an all-Neumann Laplacian).
struct MeanProjector {
  Space space;
  Vec ones;
  void operator()(const Vec& v) const {
    const double mean = dot(space, v, ones) / static_cast<double>(space.global_size());
    space.axpby(-mean, ones, 1.0, v);
  }
};

constexpr int kNx = 13, kNy = 11;  // 143 unknowns: no rank count 2-4 divides it

}  // namespace

TEST(VectorSpace, FusedDotsCombineAndAxpbyMatchHostArithmetic) {
  Communicator comm(MPI_COMM_WORLD);
  const int n = 101;
  const Space space = Space::even(comm, n);
  const Csr none = laplacian_2d(1, 1, 0.0, false);
  const CsrOperator io(space, none);
  std::vector<std::vector<double>> host(11);
  std::vector<Vec> vecs;
  for (std::size_t k = 0; k < host.size(); ++k) {
    host[k] = rhs(n, 100 + k);
    vecs.push_back(io.scatter(host[k]));
  }
  // 11 pairs: two fused kernels, one allreduce.
  std::vector<const Vec*> xs, ys;
  for (std::size_t k = 0; k < vecs.size(); ++k) {
    xs.push_back(&vecs[k]);
    ys.push_back(&vecs[(k + 3) % vecs.size()]);
  }
  std::vector<double> sums(vecs.size());
  space.dots(vecs.size(), xs.data(), ys.data(), sums.data());
  for (std::size_t k = 0; k < vecs.size(); ++k) {
    double expected = 0.0;
    for (int i = 0; i < n; ++i) expected += host[k][i] * host[(k + 3) % vecs.size()][i];
    EXPECT_NEAR(sums[k], expected, 1e-12 * n);
  }
  const auto pair = multi_dot(space, {{&vecs[0], &vecs[0]}, {&vecs[0], &vecs[1]}});
  EXPECT_NEAR(pair[1], dot(space, vecs[0], vecs[1]), 1e-12);
  EXPECT_NEAR(std::sqrt(pair[0]), norm2(space, vecs[0]), 1e-12);

  std::vector<double> coeffs(vecs.size());
  for (std::size_t k = 0; k < coeffs.size(); ++k) coeffs[k] = 0.5 + static_cast<double>(k);
  Vec out = space.create("out");
  space.combine(vecs.size(), xs.data(), coeffs.data(), out);
  space.axpby(2.0, vecs[1], -1.0, vecs[2]);  // vecs[2] = 2 v1 - v2
  space.scale(vecs[3], -3.0);
  const auto got = io.gather(out), v2 = io.gather(vecs[2]), v3 = io.gather(vecs[3]);
  for (int i = 0; i < n; ++i) {
    double expected = 0.0;
    for (std::size_t k = 0; k < host.size(); ++k) expected += coeffs[k] * host[k][i];
    EXPECT_NEAR(got[i], expected, 1e-12);
    EXPECT_NEAR(v2[i], 2.0 * host[1][i] - host[2][i], 1e-15);
    EXPECT_NEAR(v3[i], -3.0 * host[3][i], 1e-15);
  }
}

TEST(VectorSpace, NormalFillDependsOnGlobalIndexOnly) {
  Communicator comm(MPI_COMM_WORLD);
  const int n = 57;
  const Space space = Space::even(comm, n);
  const Csr none = laplacian_2d(1, 1, 0.0, false);
  const CsrOperator io(space, none);
  Vec v = space.create("v");
  space.fill_normal(v, 5, 9u, 2);
  const auto all = io.gather(v);
  const auto expected = skein_test::device_normals(5, 9u, 2ull * n, n);
  for (int i = 0; i < n; ++i) EXPECT_EQ(all[i], expected[i]);
}

TEST(Cg, PlainAndJacobiMatchDenseSolveAndOneRankRun) {
  Communicator comm(MPI_COMM_WORLD), self(MPI_COMM_SELF);
  const Csr matrix = laplacian_2d(kNx, kNy, 40.0, false);
  const int n = matrix.n;
  const std::vector<double> b_host = rhs(n, 3);
  const std::vector<double> reference = solve_spd(n, matrix.dense(), b_host);

  const Space space = Space::even(comm, n), serial = Space::even(self, n);
  const CsrOperator op(space, matrix), op1(serial, matrix);
  const StoppingRule rule{1e-12, 500};

  // Plain CG.
  Vec b = op.scatter(b_host), x = space.create("x");
  const SolveResult plain = cg(space, op, b, x, rule);
  Vec b1 = op1.scatter(b_host), x1 = serial.create("x1");
  const SolveResult plain1 = cg(serial, op1, b1, x1, rule);
  ASSERT_TRUE(plain.converged);
  EXPECT_FALSE(plain.breakdown);
  EXPECT_LE(plain.relative_residual, 1e-12);
  EXPECT_EQ(plain.residual_history.size(), static_cast<std::size_t>(plain.iterations) + 1);
  EXPECT_DOUBLE_EQ(plain.residual_history.front(), 1.0);  // x0 = 0
  EXPECT_EQ(plain.iterations, plain1.iterations);
  const auto x_plain = op.gather(x);
  EXPECT_LE(max_abs_diff(x_plain, reference), 1e-8 * max_abs(reference));
  EXPECT_LE(max_abs_diff(x_plain, op1.gather(x1)), 1e-10 * max_abs(reference));

  // Jacobi-preconditioned.
  const JacobiPreconditioner<Space> jacobi(space, op.diagonal());
  const JacobiPreconditioner<Space> jacobi1(serial, op1.diagonal());
  Vec xj = space.create("xj"), xj1 = serial.create("xj1");
  const SolveResult pre = pcg(space, op, jacobi, b, xj, rule);
  const SolveResult pre1 = pcg(serial, op1, jacobi1, b1, xj1, rule);
  ASSERT_TRUE(pre.converged);
  EXPECT_LE(pre.relative_residual, 1e-12);
  EXPECT_EQ(pre.iterations, pre1.iterations);
  EXPECT_LT(pre.iterations, plain.iterations);  // the shift varies the diagonal 40-fold
  const auto x_pre = op.gather(xj);
  EXPECT_LE(max_abs_diff(x_pre, reference), 1e-8 * max_abs(reference));
  EXPECT_LE(max_abs_diff(x_pre, op1.gather(xj1)), 1e-10 * max_abs(reference));
  // The residual history is what the solver says it is.
  for (std::size_t k = 1; k < pre.residual_history.size(); ++k) EXPECT_GT(pre.residual_history[k], 0.0);
  EXPECT_DOUBLE_EQ(pre.residual_history.back(), pre.relative_residual);
  if (comm.rank() == 0) {
    std::printf("[ cg ] %d ranks: CG %d iterations, PCG-Jacobi %d iterations, n = %d\n", comm.size(),
                plain.iterations, pre.iterations, n);
  }
}

TEST(Cg, ResumeFromSavedStateContinuesExactlyAndOnOneRank) {
  Communicator comm(MPI_COMM_WORLD), self(MPI_COMM_SELF);
  const Csr matrix = laplacian_2d(kNx, kNy, 40.0, false);
  const int n = matrix.n;
  const std::vector<double> b_host = rhs(n, 4);
  const Space space = Space::even(comm, n), serial = Space::even(self, n);
  const CsrOperator op(space, matrix), op1(serial, matrix);
  const JacobiPreconditioner<Space> jacobi(space, op.diagonal());
  const JacobiPreconditioner<Space> jacobi1(serial, op1.diagonal());
  const StoppingRule rule{1e-10, 500};
  using Solver = CgSolver<Space, CsrOperator, JacobiPreconditioner<Space>>;

  Vec b = op.scatter(b_host), x_full = space.create("x_full");
  Solver uninterrupted(space, op, jacobi, rule);
  const SolveResult full = uninterrupted.solve(b, x_full);
  ASSERT_TRUE(full.converged);

  // Stop after 6 iterations through the hook, as a job does to checkpoint.
  Vec x = space.create("x");
  Solver first(space, op, jacobi, rule);
  const SolveResult partial = first.solve(b, x, [](const IterationInfo& info) { return info.iteration < 6; });
  ASSERT_TRUE(partial.stopped);
  ASSERT_EQ(partial.iterations, 6);
  const auto saved_x = op.gather(x), saved_r = op.gather(first.r()), saved_p = op.gather(first.p());
  const CgScalars saved = first.scalars();
  const std::vector<double> saved_history = first.history();

  // Same rank count: a fresh solver resumes bit for bit.
  Vec x_again = op.scatter(saved_x);
  Solver second(space, op, jacobi, rule);
  second.resume(b, x_again, op.scatter(saved_r), op.scatter(saved_p), saved, saved_history);
  const SolveResult resumed = second.run();
  EXPECT_EQ(resumed.iterations, full.iterations);
  EXPECT_EQ(resumed.residual_history, full.residual_history);
  EXPECT_EQ(op.gather(x_again), op.gather(x_full));

  // Another rank count (one rank): same iterations, same answer to 1e-10.
  using Solver1 = CgSolver<Space, CsrOperator, JacobiPreconditioner<Space>>;
  Vec b1 = op1.scatter(b_host), x1 = op1.scatter(saved_x);
  Solver1 one(serial, op1, jacobi1, rule);
  one.resume(b1, x1, op1.scatter(saved_r), op1.scatter(saved_p), saved, saved_history);
  const SolveResult on_one = one.run();
  EXPECT_EQ(on_one.iterations, full.iterations);
  EXPECT_LE(max_abs_diff(op1.gather(x1), op.gather(x_full)), 1e-10 * max_abs(op.gather(x_full)));
}

TEST(Cg, NullSpaceProjectionSolvesAllNeumannProblem) {
  Communicator comm(MPI_COMM_WORLD);
  const Csr matrix = laplacian_2d(kNx, kNy, 0.0, true);  // singular: constants
  const int n = matrix.n;
  std::vector<double> b_host = rhs(n, 5);
  for (double& v : b_host) v += 0.25;  // an inconsistent part the projection must remove
  const Space space = Space::even(comm, n);
  const CsrOperator op(space, matrix);
  Vec ones = space.create("ones");
  space.fill(ones, 1.0);
  const MeanProjector project{space, ones};
  Vec b = op.scatter(b_host), x = space.create("x");
  CgSolver<Space, CsrOperator> solver(space, op, StoppingRule{1e-11, 1000}, project);
  const SolveResult result = solver.solve(b, x);
  ASSERT_TRUE(result.converged);
  EXPECT_FALSE(result.breakdown);

  // Reference: (A + 1 1^T / n) x = P b has the zero-mean solution of the projected system.
  double mean_b = 0.0;
  for (const double v : b_host) mean_b += v / n;
  std::vector<double> projected = b_host;
  for (double& v : projected) v -= mean_b;
  std::vector<double> a = matrix.dense();
  for (double& v : a) v += 1.0 / n;
  const std::vector<double> reference = solve_spd(n, a, projected);
  const auto got = op.gather(x);
  EXPECT_LE(max_abs_diff(got, reference), 1e-8 * max_abs(reference));
  double mean_x = 0.0;
  for (const double v : got) mean_x += v / n;
  EXPECT_NEAR(mean_x, 0.0, 1e-12);
}

TEST(Cg, ZeroRightHandSideAndIndefiniteOperator) {
  Communicator comm(MPI_COMM_WORLD);
  const Csr matrix = laplacian_2d(kNx, kNy, 1.0, false);
  const int n = matrix.n;
  const Space space = Space::even(comm, n);
  const CsrOperator op(space, matrix);
  Vec b = space.create("b"), x = space.create("x");
  space.fill(x, 3.0);
  const SolveResult zero = cg(space, op, b, x, StoppingRule{1e-8, 100});
  EXPECT_TRUE(zero.converged);
  EXPECT_EQ(zero.iterations, 0);
  EXPECT_EQ(max_abs(op.gather(x)), 0.0);

  // -A is negative definite: the first p.Ap is negative, a breakdown, not a silent wrong answer.
  Csr negative = matrix;
  for (double& v : negative.value) v = -v;
  const CsrOperator minus(space, negative);
  b = op.scatter(rhs(n, 6));
  x = space.create("x2");
  const SolveResult bad = cg(space, minus, b, x, StoppingRule{1e-8, 100});
  EXPECT_TRUE(bad.breakdown);
  EXPECT_FALSE(bad.converged);

  // max_iters ends the solve unconverged.
  x = space.create("x3");
  const SolveResult capped = cg(space, op, b, x, StoppingRule{1e-14, 3});
  EXPECT_FALSE(capped.converged);
  EXPECT_EQ(capped.iterations, 3);
}

// With exact sums (comm.reproducible) CG and PCG-Jacobi take the same iterates at any rank count: the
// residual history and the solution are the 1-rank run's bits (143 unknowns split unevenly).
TEST(Cg, ExactSumsGiveTheSameBitsAtAnyRankCount) {
  Communicator comm(MPI_COMM_WORLD), self(MPI_COMM_SELF);
  comm.set_exact_sums(true);
  self.set_exact_sums(true);
  const Csr matrix = laplacian_2d(kNx, kNy, 40.0, false);
  const int n = matrix.n;
  const std::vector<double> b_host = rhs(n, 6);
  const Space space = Space::even(comm, n), serial = Space::even(self, n);
  const CsrOperator op(space, matrix), op1(serial, matrix);
  const JacobiPreconditioner<Space> jacobi(space, op.diagonal());
  const JacobiPreconditioner<Space> jacobi1(serial, op1.diagonal());
  const StoppingRule rule{1e-10, 500};
  using Solver = CgSolver<Space, CsrOperator, JacobiPreconditioner<Space>>;
  Vec b = op.scatter(b_host), x = space.create("x");
  Vec b1 = op1.scatter(b_host), x1 = serial.create("x1");
  Solver here(space, op, jacobi, rule), alone(serial, op1, jacobi1, rule);
  const SolveResult distributed = here.solve(b, x), single = alone.solve(b1, x1);
  ASSERT_TRUE(distributed.converged);
  EXPECT_EQ(distributed.iterations, single.iterations);
  EXPECT_EQ(distributed.residual_history, single.residual_history);
  EXPECT_EQ(op.gather(x), op1.gather(x1));
}
