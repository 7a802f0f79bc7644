// Lanczos against LAPACK dsyev on a symmetric indefinite matrix, thick restarts, resume from saved state,
// and the stochastic-Lanczos-quadrature rule, at 1-4 ranks (a one-rank run in each process is the
// cross-rank-count reference).
// skein-test-ranks: 1 2 3 4
#include "comm/communicator.hpp"
#include "engine/random.hpp"
#include "solvers/lanczos.hpp"
#include "solvers/lapack.hpp"
#include "solvers/slq.hpp"
#include "solvers/vector_space.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

using skein::comm::Communicator;
using namespace skein::solvers;

namespace {

using Space = DistributedVectorSpace<double>;
using Vec = Space::vector_type;

// Banded symmetric indefinite matrix: diagonal spread over [-10, 10] (denser near 0, sparser at the ends,
// like a Hessian's bulk and outliers) plus random couplings up to distance 3. Column-major.
std::vector<double> test_matrix(int n) {
  std::vector<double> a(static_cast<std::size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i) {
    const double t = 2.0 * i / (n - 1) - 1.0;
    a[static_cast<std::size_t>(i) * n + i] =
        10.0 * t * t * t + 0.3 * skein::engine::standard_normal(1, 1u, i);
    for (int d = 1; d <= 3 && i + d < n; ++d) {
      const double c = 0.5 * skein::engine::standard_normal(1, 2u, static_cast<std::uint64_t>(i) * 4 + d);
      a[static_cast<std::size_t>(i + d) * n + i] = a[static_cast<std::size_t>(i) * n + i + d] = c;
    }
  }
  return a;
}

// y = A x for this rank's rows of a replicated dense matrix (x gathered with allgatherv; tests only).
class DenseOperator {
 public:
  DenseOperator(const Space& space, const std::vector<double>& a) : space_(space), a_(a) {}
  void apply(const Vec& x, const Vec& y) const {
    const auto all = space_.communicator().allgatherv(x);
    const std::int64_t n = space_.global_size();
    auto host_y = Kokkos::create_mirror_view(y);
    for (std::int64_t i = 0; i < space_.local_size(); ++i) {
      const std::int64_t row = space_.global_offset() + i;
      double sum = 0.0;
      for (std::int64_t j = 0; j < n; ++j) sum += a_[static_cast<std::size_t>(j * n + row)] * all(j);
      host_y(i) = sum;
    }
    Kokkos::deep_copy(y, host_y);
  }
  std::vector<double> gather(const Vec& v) const {
    const auto all = space_.communicator().allgatherv(v);
    return std::vector<double>(all.data(), all.data() + all.extent(0));
  }
  Vec scatter(const std::vector<double>& global) const {
    Vec v = space_.create("v");
    auto host = Kokkos::create_mirror_view(v);
    for (std::int64_t i = 0; i < space_.local_size(); ++i) host(i) = global[space_.global_offset() + i];
    Kokkos::deep_copy(v, host);
    return v;
  }

 private:
  Space space_;
  const std::vector<double>& a_;
};

// ||A u - theta u|| with the dense matrix.
double true_residual(const std::vector<double>& a, int n, const std::vector<double>& u, double theta) {
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    double au = 0.0;
    for (int j = 0; j < n; ++j) au += a[static_cast<std::size_t>(j) * n + i] * u[j];
    sum += (au - theta * u[i]) * (au - theta * u[i]);
  }
  return std::sqrt(sum);
}

constexpr int kN = 151;

}  // namespace

TEST(Lanczos, TopAndBottomEigenpairsOfIndefiniteMatrixWithRestarts) {
  Communicator comm(MPI_COMM_WORLD), self(MPI_COMM_SELF);
  const std::vector<double> a = test_matrix(kN);
  const EigenDecomposition exact = symmetric_eigen(kN, a, false);
  ASSERT_LT(exact.values.front(), 0.0);
  ASSERT_GT(exact.values.back(), 0.0);

  const Space space = Space::even(comm, kN), serial = Space::even(self, kN);
  const DenseOperator op(space, a), op1(serial, a);
  LanczosOptions options;
  options.top = 4;
  options.bottom = 3;
  options.max_basis = 20;  // far fewer than convergence needs: restarts are exercised
  options.tol = 1e-10;
  options.seed = 17;
  LanczosEigensolver<Space, DenseOperator> solver(space, op, options);
  const LanczosResult<Vec> result = solver.solve();
  ASSERT_TRUE(result.converged);
  EXPECT_GT(result.restarts, 2);
  ASSERT_EQ(result.top.values.size(), 4u);
  ASSERT_EQ(result.bottom.values.size(), 3u);
  const double scale = std::max(std::abs(exact.values.front()), std::abs(exact.values.back()));
  for (int k = 0; k < 4; ++k) {
    EXPECT_NEAR(result.top.values[k], exact.values[kN - 1 - k], 1e-8 * scale) << "top " << k;
    EXPECT_LE(result.top.residuals[k], options.tol * scale * 1.0001);
    const auto u = op.gather(result.top.vectors[k]);
    EXPECT_LE(true_residual(a, kN, u, result.top.values[k]), 10 * options.tol * scale) << "top " << k;
    EXPECT_NEAR(std::inner_product(u.begin(), u.end(), u.begin(), 0.0), 1.0, 1e-12);
  }
  for (int k = 0; k < 3; ++k) {
    EXPECT_NEAR(result.bottom.values[k], exact.values[k], 1e-8 * scale) << "bottom " << k;
    EXPECT_LE(result.bottom.residuals[k], options.tol * scale * 1.0001);
    const auto u = op.gather(result.bottom.vectors[k]);
    EXPECT_LE(true_residual(a, kN, u, result.bottom.values[k]), 10 * options.tol * scale) << "bottom " << k;
  }
  // Ritz vectors of distinct eigenvalues are orthogonal.
  const auto u0 = op.gather(result.top.vectors[0]), v0 = op.gather(result.bottom.vectors[0]);
  EXPECT_NEAR(std::inner_product(u0.begin(), u0.end(), v0.begin(), 0.0), 0.0, 1e-9);

  // The same run on one rank: same restarts, same values to 1e-10.
  LanczosEigensolver<Space, DenseOperator> solver1(serial, op1, options);
  const LanczosResult<Vec> result1 = solver1.solve();
  EXPECT_EQ(result1.restarts, result.restarts);
  EXPECT_EQ(result1.applications, result.applications);
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(result1.top.values[k], result.top.values[k], 1e-10 * scale);
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(result1.bottom.values[k], result.bottom.values[k], 1e-10 * scale);
  if (comm.rank() == 0) {
    std::printf("[ lanczos ] %d ranks: %d restarts, %d operator applications, m = %d, n = %d\n", comm.size(),
                result.restarts, result.applications, options.max_basis, kN);
  }
}

TEST(Lanczos, OnlyTopOrOnlyBottom) {
  Communicator comm(MPI_COMM_WORLD);
  const std::vector<double> a = test_matrix(kN);
  const EigenDecomposition exact = symmetric_eigen(kN, a, false);
  const Space space = Space::even(comm, kN);
  const DenseOperator op(space, a);
  const double scale = std::max(std::abs(exact.values.front()), std::abs(exact.values.back()));
  for (const bool top : {true, false}) {
    LanczosOptions options;
    (top ? options.top : options.bottom) = 5;
    options.max_basis = 16;
    options.tol = 1e-10;
    options.want_vectors = false;
    LanczosEigensolver<Space, DenseOperator> solver(space, op, options);
    const auto result = solver.solve();
    ASSERT_TRUE(result.converged);
    const auto& pairs = top ? result.top : result.bottom;
    ASSERT_EQ(pairs.values.size(), 5u);
    EXPECT_TRUE(pairs.vectors.empty());
    for (int k = 0; k < 5; ++k)
      EXPECT_NEAR(pairs.values[k], top ? exact.values[kN - 1 - k] : exact.values[k], 1e-8 * scale);
  }
}

TEST(Lanczos, ResumeFromSavedStateGivesTheSameRun) {
  Communicator comm(MPI_COMM_WORLD), self(MPI_COMM_SELF);
  const std::vector<double> a = test_matrix(kN);
  const Space space = Space::even(comm, kN), serial = Space::even(self, kN);
  const DenseOperator op(space, a), op1(serial, a);
  LanczosOptions options;
  options.top = 3;
  options.bottom = 2;
  options.max_basis = 14;
  options.tol = 1e-9;
  options.seed = 3;
  using Solver = LanczosEigensolver<Space, DenseOperator>;
  Solver whole(space, op, options);
  const auto expected = whole.solve();
  ASSERT_TRUE(expected.converged);

  Solver first(space, op, options);
  first.start();
  for (int s = 0; s < 37; ++s) ASSERT_FALSE(first.step());  // mid-cycle, after a restart
  ASSERT_GT(first.state().restarts, 0);
  const LanczosScalars saved = first.state();
  std::vector<std::vector<double>> saved_basis;
  for (int i = 0; i <= saved.size; ++i) saved_basis.push_back(op.gather(first.basis()[i]));

  // Same rank count: identical continuation.
  Solver second(space, op, options);
  std::vector<Vec> basis;
  for (const auto& v : saved_basis) basis.push_back(op.scatter(v));
  second.restore(saved, basis);
  while (!second.step()) {
  }
  EXPECT_EQ(second.result().applications, expected.applications);
  EXPECT_EQ(second.result().top.values, expected.top.values);
  EXPECT_EQ(second.result().bottom.values, expected.bottom.values);

  // One rank: same answer to 1e-10.
  Solver on_one(serial, op1, options);
  std::vector<Vec> basis1;
  for (const auto& v : saved_basis) basis1.push_back(op1.scatter(v));
  on_one.restore(saved, basis1);
  while (!on_one.step()) {
  }
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(on_one.result().top.values[k], expected.top.values[k], 1e-9);
}

TEST(Lanczos, FullTridiagonalisationAndQuadrature) {
  Communicator comm(MPI_COMM_WORLD);
  const int n = 40;
  const std::vector<double> a = test_matrix(n);
  const EigenDecomposition exact = symmetric_eigen(n, a, false);
  const Space space = Space::even(comm, n);
  const DenseOperator op(space, a);
  Vec start = space.create("start");
  space.fill_normal(start, 8, 1u, 0);
  const auto v = op.gather(start);
  const double vv = std::inner_product(v.begin(), v.end(), v.begin(), 0.0);

  // n steps with full reorthogonalisation: T is similar to A.
  std::vector<Vec> basis;
  const LanczosTridiagonal full = lanczos_tridiagonal(space, op, start, n, Reorthogonalization::full, &basis);
  ASSERT_EQ(full.alpha.size(), static_cast<std::size_t>(n));
  ASSERT_EQ(basis.size(), static_cast<std::size_t>(n));
  const EigenDecomposition ritz = tridiagonal_eigen(full.alpha, full.beta, false);
  for (int i = 0; i < n; ++i) EXPECT_NEAR(ritz.values[i], exact.values[i], 1e-9);
  EXPECT_NEAR(dot(space, basis[0], basis[n - 1]), 0.0, 1e-12);

  // Quadrature from 8 steps: weights sum to 1; moments 1 and 2 are exact: v^T A v, v^T A^2 v (unit v).
  for (const auto reorth : {Reorthogonalization::full, Reorthogonalization::none}) {
    const QuadratureRule rule = slq_quadrature(lanczos_tridiagonal(space, op, start, 8, reorth));
    ASSERT_EQ(rule.nodes.size(), 8u);
    double w = 0, m1 = 0, m2 = 0;
    for (std::size_t i = 0; i < rule.nodes.size(); ++i) {
      EXPECT_GE(rule.weights[i], 0.0);
      w += rule.weights[i];
      m1 += rule.weights[i] * rule.nodes[i];
      m2 += rule.weights[i] * rule.nodes[i] * rule.nodes[i];
    }
    double vav = 0, avav = 0;
    for (int i = 0; i < n; ++i) {
      double av = 0;
      for (int j = 0; j < n; ++j) av += a[static_cast<std::size_t>(j) * n + i] * v[j];
      vav += v[i] * av;
      avav += av * av;
    }
    EXPECT_NEAR(w, 1.0, 1e-12);
    EXPECT_NEAR(m1, vav / vv, 1e-10);
    EXPECT_NEAR(m2, avav / vv, 1e-9);

    // The smoothed density integrates to 1 over a grid covering the nodes.
    std::vector<double> grid;
    for (double t = -16.0; t <= 16.0; t += 0.01) grid.push_back(t);
    const std::vector<double> density = gaussian_density({rule, rule}, grid, 0.2);
    double integral = 0.0;
    for (const double d : density) integral += d * 0.01;
    EXPECT_NEAR(integral, 1.0, 1e-6);
  }
}

TEST(Lanczos, BadRequestsAreRejected) {
  Communicator comm(MPI_COMM_WORLD);
  const std::vector<double> a = test_matrix(10);
  const Space space = Space::even(comm, 10);
  const DenseOperator op(space, a);
  LanczosOptions options;
  EXPECT_THROW((LanczosEigensolver<Space, DenseOperator>(space, op, options)), std::invalid_argument);
  options.top = 11;
  EXPECT_THROW((LanczosEigensolver<Space, DenseOperator>(space, op, options)), std::invalid_argument);
  options.top = 6;
  options.max_basis = 7;
  EXPECT_THROW((LanczosEigensolver<Space, DenseOperator>(space, op, options)), std::invalid_argument);
  // A basis as large as the space: one cycle, exact.
  options.top = 2;
  options.bottom = 2;
  options.max_basis = 50;
  LanczosEigensolver<Space, DenseOperator> solver(space, op, options);
  const auto result = solver.solve();
  const EigenDecomposition exact = symmetric_eigen(10, a, false);
  EXPECT_EQ(result.restarts, 0);
  EXPECT_NEAR(result.top.values[0], exact.values[9], 1e-10);
  EXPECT_NEAR(result.bottom.values[1], exact.values[1], 1e-10);
}
