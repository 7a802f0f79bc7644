// The hessian job's numerics on a ~2,000-parameter MLP with its samples sharded over 1-3 ranks: the dense
// Hessian from d data-parallel HVPs against LAPACK (Lanczos top and bottom 10), the Hutchinson trace, the
// SLQ quadrature moments, the Gauss-Newton matrix being positive semi-definite, float32 against float64,
// and every product equal to one computed by a single rank on all the samples.
// skein-test-ranks: 1 2 3
#include "comm/block_partition.hpp"
#include "comm/communicator.hpp"
#include "engine/random.hpp"
#include "jobs/hessian/loss_model.hpp"
#include "solvers/lanczos.hpp"
#include "solvers/lapack.hpp"
#include "solvers/nn.hpp"
#include "solvers/slq.hpp"
#include "solvers/trace_estimator.hpp"
#include "solvers/vector_space.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <vector>

using skein::comm::Communicator;
using skein::hessian::CurvatureOperator;
using skein::hessian::DataParallelLoss;
using skein::hessian::OperatorKind;
namespace nn = skein::solvers::nn;
namespace solvers = skein::solvers;

namespace {

constexpr std::int64_t kSamples = 90;
const std::vector<int> kLayers = {16, 32, 32, 10};  // 1,930 parameters

// Samples and weights keyed by global index, so every rank count sees the same problem.
double feature(std::int64_t row, std::int64_t column) {
  return skein::engine::standard_normal(7, 1u, static_cast<std::uint64_t>(row * 1000 + column));
}
int label(std::int64_t row) {
  return static_cast<int>(skein::engine::random_bits(7, 2u, static_cast<std::uint64_t>(row)) % 10);
}

nn::MlpShape shape() {
  nn::MlpShape s;
  s.layer_sizes = kLayers;
  s.activation = nn::Activation::tanh;
  s.loss = nn::Loss::cross_entropy;
  return s;
}

template <class Scalar>
nn::Batch<Scalar> make_batch(std::int64_t first, std::int64_t rows) {
  const std::int64_t d = kLayers.front();
  Kokkos::View<Scalar**, Kokkos::LayoutRight> x("x", rows, d);
  Kokkos::View<int*> labels("labels", rows);
  auto hx = Kokkos::create_mirror_view(x);
  auto hl = Kokkos::create_mirror_view(labels);
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t j = 0; j < d; ++j) hx(i, j) = static_cast<Scalar>(feature(first + i, j));
    hl(i) = label(first + i);
  }
  Kokkos::deep_copy(x, hx);
  Kokkos::deep_copy(labels, hl);
  nn::Batch<Scalar> batch;
  batch.x = x;
  batch.labels = labels;
  return batch;
}

// The curvature problem on one communicator: `comm` shards the samples, vectors live on a self communicator.
template <class Scalar>
struct Problem {
  using Space = solvers::DistributedVectorSpace<Scalar>;
  using Vec = typename Space::vector_type;
  Communicator self;
  std::unique_ptr<Space> space;
  std::unique_ptr<DataParallelLoss<Scalar>> loss;
  Vec params;
  std::unique_ptr<CurvatureOperator<Scalar>> op;

  Problem(const Communicator& comm, OperatorKind kind) : self(comm.split(comm.rank(), 0)) {
    const auto range = skein::comm::BlockPartition(kSamples, comm.size()).range(comm.rank());
    const std::int64_t p = shape().parameter_count();
    space = std::make_unique<Space>(self, p, 0, p);
    // Chunks of 16 rows: the chunked accumulation is part of what is compared.
    loss = std::make_unique<DataParallelLoss<Scalar>>(
        comm, shape(),
        make_batch<Scalar>(static_cast<std::int64_t>(range.begin), static_cast<std::int64_t>(range.size())),
        kSamples, 16);
    params = space->create("params");
    auto host = Kokkos::create_mirror_view(params);
    for (std::int64_t i = 0; i < p; ++i)
      host(i) = static_cast<Scalar>(0.4 * skein::engine::standard_normal(7, 3u, i));
    Kokkos::deep_copy(params, host);
    op = std::make_unique<CurvatureOperator<Scalar>>(*loss, params, kind);
  }

  std::vector<double> host(const Vec& v) const {
    auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
    return std::vector<double>(h.data(), h.data() + h.extent(0));
  }

  // Column-major dense matrix from d products with unit vectors.
  std::vector<double> dense() const {
    const std::int64_t p = space->global_size();
    std::vector<double> matrix(static_cast<std::size_t>(p * p));
    Vec e = space->create("e"), column = space->create("column");
    auto he = Kokkos::create_mirror_view(e);
    for (std::int64_t j = 0; j < p; ++j) {
      Kokkos::deep_copy(he, Scalar(0));
      he(j) = Scalar(1);
      Kokkos::deep_copy(e, he);
      op->apply(e, column);
      const auto c = host(column);
      std::copy(c.begin(), c.end(), matrix.begin() + j * p);
    }
    return matrix;
  }
};

struct DenseSpectrum {
  std::int64_t p = 0;
  std::vector<double> matrix;  // column-major
  std::vector<double> values;  // ascending
  double scale = 0;
};

const DenseSpectrum& dense_hessian() {
  static const DenseSpectrum spectrum = [] {
    Communicator comm(MPI_COMM_WORLD);
    Problem<double> problem(comm, OperatorKind::hessian);
    DenseSpectrum s;
    s.p = problem.space->global_size();
    s.matrix = problem.dense();
    s.values = solvers::symmetric_eigen(static_cast<int>(s.p), s.matrix, false).values;
    s.scale = std::max(std::abs(s.values.front()), std::abs(s.values.back()));
    return s;
  }();
  return spectrum;
}

TEST(HessianSpectrum, DenseHessianIsSymmetricIndefiniteAndMatchesOneRankOnAllSamples) {
  const DenseSpectrum& h = dense_hessian();
  double asymmetry = 0;
  for (std::int64_t i = 0; i < h.p; ++i)
    for (std::int64_t j = 0; j < i; ++j)
      asymmetry = std::max(asymmetry, std::abs(h.matrix[i * h.p + j] - h.matrix[j * h.p + i]));
  EXPECT_LT(asymmetry, 1e-12 * h.scale);
  EXPECT_LT(h.values.front(), -1e-3 * h.scale) << "a random tanh network's Hessian has negative curvature";
  EXPECT_GT(h.values.back(), 0.0);

  // The same products by this rank alone over all samples: the sharded sum must agree to rounding.
  Communicator comm(MPI_COMM_WORLD), self(MPI_COMM_SELF);
  Problem<double> sharded(comm, OperatorKind::hessian);
  Problem<double> alone(self, OperatorKind::hessian);
  auto v = sharded.space->create("v"), hv = sharded.space->create("hv"),
       hv_alone = sharded.space->create("hv1");
  sharded.space->fill_normal(v, 3, 9u, 0);
  sharded.op->apply(v, hv);
  alone.op->apply(v, hv_alone);
  const auto a = sharded.host(hv), b = sharded.host(hv_alone);
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    norm = std::max(norm, std::abs(b[i]));
  }
  EXPECT_LT(diff, 1e-13 * norm);
}

TEST(HessianSpectrum, LanczosTopAndBottomTenMatchLapack) {
  const DenseSpectrum& h = dense_hessian();
  Communicator comm(MPI_COMM_WORLD);
  Problem<double> problem(comm, OperatorKind::hessian);
  solvers::LanczosOptions options;
  options.top = 10;
  options.bottom = 10;
  options.max_basis = 60;
  options.tol = 1e-10;
  options.want_vectors = true;
  options.seed = 5;
  solvers::LanczosEigensolver<Problem<double>::Space, CurvatureOperator<double>> solver(*problem.space,
                                                                                        *problem.op, options);
  const auto result = solver.solve();
  ASSERT_TRUE(result.converged);
  ASSERT_EQ(result.top.values.size(), 10u);
  ASSERT_EQ(result.bottom.values.size(), 10u);
  // Relative to the spectral radius: the bottom of a Hessian spectrum crosses zero.
  for (int i = 0; i < 10; ++i) {
    EXPECT_NEAR(result.top.values[i], h.values[h.p - 1 - i], 1e-8 * h.scale) << "top " << i;
    EXPECT_NEAR(result.bottom.values[i], h.values[i], 1e-8 * h.scale) << "bottom " << i;
  }
  // The Ritz vector of the top value satisfies H u = theta u (residual checked with the dense matrix).
  const auto u = problem.host(result.top.vectors[0]);
  double residual = 0;
  for (std::int64_t i = 0; i < h.p; ++i) {
    double hu = 0;
    for (std::int64_t j = 0; j < h.p; ++j) hu += h.matrix[j * h.p + i] * u[j];
    residual += (hu - result.top.values[0] * u[i]) * (hu - result.top.values[0] * u[i]);
  }
  EXPECT_LT(std::sqrt(residual), 1e-8 * h.scale);
}

// With a basis larger than convergence needs, Lanczos stops at the first product where the wanted pairs
// meet the tolerance (no restart, fewer products than the basis holds), and the residual estimates it
// stopped on are honest: the dense matrix gives the same residuals.
TEST(HessianSpectrum, LanczosStopsMidCycleOnHonestResiduals) {
  const DenseSpectrum& h = dense_hessian();
  Communicator comm(MPI_COMM_WORLD);
  Problem<double> problem(comm, OperatorKind::hessian);
  solvers::LanczosOptions options;
  options.top = 5;
  options.max_basis = 400;
  options.tol = 1e-8;
  options.want_vectors = true;
  options.seed = 9;
  solvers::LanczosEigensolver<Problem<double>::Space, CurvatureOperator<double>> solver(*problem.space,
                                                                                        *problem.op, options);
  const auto result = solver.solve();
  ASSERT_TRUE(result.converged);
  EXPECT_EQ(result.restarts, 0);
  EXPECT_LT(result.applications, options.max_basis);
  for (int k = 0; k < 5; ++k) {
    EXPECT_NEAR(result.top.values[k], h.values[h.p - 1 - k], 1e-7 * h.scale) << "top " << k;
    EXPECT_LE(result.top.residuals[k], options.tol * h.scale * 1.01) << "top " << k;
    const auto u = problem.host(result.top.vectors[k]);
    double residual = 0;
    for (std::int64_t i = 0; i < h.p; ++i) {
      double hu = 0;
      for (std::int64_t j = 0; j < h.p; ++j) hu += h.matrix[j * h.p + i] * u[j];
      residual += (hu - result.top.values[k] * u[i]) * (hu - result.top.values[k] * u[i]);
    }
    EXPECT_LT(std::sqrt(residual), 10 * options.tol * h.scale) << "top " << k;
  }
  if (comm.rank() == 0)
    std::printf("[ lanczos ] top 5 to tol %g: %d products, basis up to %d, parameters %lld\n", options.tol,
                result.applications, options.max_basis, static_cast<long long>(h.p));
}

TEST(HessianSpectrum, HutchinsonTraceWithinThreeStandardErrors) {
  const DenseSpectrum& h = dense_hessian();
  double exact = 0;
  for (std::int64_t i = 0; i < h.p; ++i) exact += h.matrix[i * h.p + i];
  Communicator comm(MPI_COMM_WORLD);
  Problem<double> problem(comm, OperatorKind::hessian);
  auto z = problem.space->create("z"), hz = problem.space->create("hz");
  solvers::TraceEstimate estimate;
  for (int s = 0; s < 100; ++s)
    estimate.add(solvers::hutchinson_sample(*problem.space, *problem.op, 11, 3u, s, z, hz));
  EXPECT_EQ(estimate.samples, 100);
  EXPECT_GT(estimate.standard_error(), 0.0);
  EXPECT_LT(std::abs(estimate.mean - exact), 3 * estimate.standard_error())
      << "estimate " << estimate.mean << " +- " << estimate.standard_error() << ", exact " << exact;
}

// Gauss quadrature with m nodes is exact for polynomials of degree < 2m: each rule's first and second
// moments equal z^T H z / z^T z and z^T H^2 z / z^T z of its start vector; the density integrates to 1.
TEST(HessianSpectrum, SlqRulesReproduceMomentsAndTheDensityIntegratesToOne) {
  const DenseSpectrum& h = dense_hessian();
  Communicator comm(MPI_COMM_WORLD);
  Problem<double> problem(comm, OperatorKind::hessian);
  auto z = problem.space->create("z");
  std::vector<solvers::QuadratureRule> rules;
  double lo = 1e300, hi = -1e300;
  for (int v = 0; v < 4; ++v) {
    problem.space->fill_rademacher(z, 13, 4u, v);
    const auto t = solvers::lanczos_tridiagonal(*problem.space, *problem.op, z, 30);
    rules.push_back(solvers::slq_quadrature(t));
    const auto zh = problem.host(z);
    std::vector<double> hz(h.p, 0.0);
    for (std::int64_t j = 0; j < h.p; ++j)
      for (std::int64_t i = 0; i < h.p; ++i) hz[i] += h.matrix[j * h.p + i] * zh[j];
    double m1 = 0, m2 = 0;
    for (std::int64_t i = 0; i < h.p; ++i) {
      m1 += zh[i] * hz[i];
      m2 += hz[i] * hz[i];
    }
    m1 /= static_cast<double>(h.p);
    m2 /= static_cast<double>(h.p);
    double q0 = 0, q1 = 0, q2 = 0;
    for (std::size_t k = 0; k < rules.back().nodes.size(); ++k) {
      const double w = rules.back().weights[k], x = rules.back().nodes[k];
      q0 += w;
      q1 += w * x;
      q2 += w * x * x;
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
    EXPECT_NEAR(q0, 1.0, 1e-12);
    EXPECT_NEAR(q1, m1, 1e-9 * h.scale);
    EXPECT_NEAR(q2, m2, 1e-9 * h.scale * h.scale);
  }
  // Nodes lie inside the spectrum; the density on a covering grid integrates to 1.
  EXPECT_GE(lo, h.values.front() - 1e-8 * h.scale);
  EXPECT_LE(hi, h.values.back() + 1e-8 * h.scale);
  const double sigma = 0.02 * h.scale;
  std::vector<double> grid(4001);
  for (std::size_t i = 0; i < grid.size(); ++i)
    grid[i] = lo - 8 * sigma + (hi - lo + 16 * sigma) * i / 4000.0;
  const auto density = solvers::gaussian_density(rules, grid, sigma);
  double integral = 0;
  for (std::size_t i = 1; i < grid.size(); ++i)
    integral += 0.5 * (density[i] + density[i - 1]) * (grid[i] - grid[i - 1]);
  EXPECT_NEAR(integral, 1.0, 1e-6);
}

TEST(HessianSpectrum, GaussNewtonIsPositiveSemidefinite) {
  Communicator comm(MPI_COMM_WORLD);
  Problem<double> problem(comm, OperatorKind::ggn);
  const auto g = problem.dense();
  const auto values =
      solvers::symmetric_eigen(static_cast<int>(problem.space->global_size()), g, false).values;
  EXPECT_GT(values.back(), 0.0);
  EXPECT_GT(values.front(), -1e-10 * values.back()) << "J^T H_out J with a convex loss is PSD";
}

TEST(HessianSpectrum, Float32TopEigenvaluesWithinSinglePrecision) {
  const DenseSpectrum& h = dense_hessian();
  Communicator comm(MPI_COMM_WORLD);
  Problem<float> problem(comm, OperatorKind::hessian);
  solvers::LanczosOptions options;
  options.top = 3;
  options.max_basis = 30;
  options.tol = 1e-5;
  options.want_vectors = false;
  solvers::LanczosEigensolver<Problem<float>::Space, CurvatureOperator<float>> solver(*problem.space,
                                                                                      *problem.op, options);
  const auto result = solver.solve();
  ASSERT_EQ(result.top.values.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(result.top.values[i], h.values[h.p - 1 - i], 1e-4 * h.scale);
}

}  // namespace
