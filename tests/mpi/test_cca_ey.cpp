// Stochastic GEP-EY: its gradient against central finite differences of its loss (PLS, ridge, CCA, mixed
// alphas), the same weights after N steps at 1-3 ranks as on one rank, and convergence on planted data to
// PCC >= 0.95 of the exact solvers with the documented defaults (cosine schedule over the planned steps),
// the schedule itself, and on wide data (p > n) that it beats a constant rate's noise floor. Set
// CCA_EY_SWEEP=1 to print epochs-to-PCC over a grid of schedules, optimizers and learning rates instead of
// asserting (how the constant defaults were chosen; the cosine ones came from cca-synth genotypes through
// the cca job, see solvers/cca_ey.hpp).
// skein-test-ranks: 1 2 3
#include "cca_planted.hpp"
#include "comm/communicator.hpp"
#include "solvers/cca_exact.hpp"
#include "solvers/cca_ey.hpp"
#include "solvers/cca_metrics.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

using skein::comm::Communicator;
using namespace cca_test;
namespace cca = skein::solvers::cca;
using Ey = cca::GepEy<Block, Block>;

namespace {

void check_gradient(double alpha_x, double alpha_y) {
  Communicator comm(MPI_COMM_WORLD);
  PlantedSpec spec;
  spec.n = 60;
  spec.p = 7;
  spec.q = 5;
  const auto data = make_planted(comm, spec);
  cca::EyOptions options;
  options.components = 3;
  options.alpha_x = alpha_x;
  options.alpha_y = alpha_y;
  options.seed = 5;
  Ey ey(comm, *data->x, *data->y, options);
  const auto rows = make_rows({3, 17, 42, 8, 59, 21, 30, 11, 0, 45, 36, 27, 50});  // odd size: unequal halves
  ey.initialize(rows);
  const int k = options.components;
  Matrix gx("gx", data->x->columns(), k), gy("gy", data->y->columns(), k);
  const auto at = ey.loss_and_gradient(rows, gx, gy);
  EXPECT_NEAR(at.objective, -2 * at.trace_c + at.penalty, 1e-12);
  double largest = 0;
  for (std::size_t i = 0; i < gx.extent(0); ++i)
    for (int c = 0; c < k; ++c) largest = std::max(largest, std::abs(gx(i, c)));
  for (std::size_t i = 0; i < gy.extent(0); ++i)
    for (int c = 0; c < k; ++c) largest = std::max(largest, std::abs(gy(i, c)));
  largest = comm.allreduce(largest, skein::comm::Op::max);
  ASSERT_GT(largest, 1e-3);
  Matrix sx("sx", gx.extent(0), k), sy("sy", gy.extent(0), k);
  const double h = 1e-5;
  // Every global weight entry in turn: its owner perturbs it, every rank evaluates.
  for (int view = 0; view < 2; ++view) {
    const std::int64_t width = view == 0 ? spec.p : spec.q;
    const std::int64_t first = view == 0 ? data->first_x : data->first_y;
    const Matrix u = view == 0 ? ey.weights_x() : ey.weights_y();
    const Matrix g = view == 0 ? gx : gy;
    for (std::int64_t global = 0; global < width; ++global)
      for (int c = 0; c < k; ++c) {
        const bool mine = global >= first && global < first + static_cast<std::int64_t>(u.extent(0));
        const std::int64_t r = global - first;
        const double saved = mine ? u(r, c) : 0.0;
        if (mine) u(r, c) = saved + h;
        const double plus = ey.loss_and_gradient(rows, sx, sy).objective;
        if (mine) u(r, c) = saved - h;
        const double minus = ey.loss_and_gradient(rows, sx, sy).objective;
        if (mine) {
          u(r, c) = saved;
          const double fd = (plus - minus) / (2 * h);
          EXPECT_NEAR(g(r, c), fd, 1e-6 * largest) << "view " << view << " row " << global << " column " << c
                                                   << " alphas " << alpha_x << ", " << alpha_y;
        }
      }
  }
}

TEST(GepEyGradient, PlsMatchesFiniteDifferences) {
  check_gradient(1.0, 1.0);
}
TEST(GepEyGradient, RidgeMatchesFiniteDifferences) {
  check_gradient(0.5, 0.5);
}
TEST(GepEyGradient, CcaMatchesFiniteDifferences) {
  check_gradient(0.0, 0.0);
}
TEST(GepEyGradient, MixedAlphasMatchFiniteDifferences) {
  check_gradient(1.0, 0.2);
}

// N steps on `comm` from the same seed; returns nothing, leaves the weights in `ey`.
void train(Ey& ey, std::int64_t n, std::int64_t batch, int epochs, std::uint64_t seed) {
  for (int epoch = 0; epoch < epochs; ++epoch) {
    const auto order = permutation(n, seed, epoch);
    for (std::int64_t b0 = 0; b0 + batch <= n; b0 += batch)
      ey.step(make_rows(std::vector<std::int64_t>(order.begin() + b0, order.begin() + b0 + batch)));
  }
}

void check_rank_independence(cca::Optimizer optimizer, double alpha) {
  Communicator comm(MPI_COMM_WORLD), self(MPI_COMM_SELF);
  PlantedSpec spec;
  spec.n = 400;
  spec.p = 31;
  spec.q = 13;
  cca::EyOptions options;
  options.components = 3;
  options.alpha_x = options.alpha_y = alpha;
  options.optimizer = optimizer;
  options.learning_rate = 0.1;
  options.seed = 9;
  const auto sharded = make_planted(comm, spec);
  const auto whole = make_planted(self, spec);
  Ey a(comm, *sharded->x, *sharded->y, options), b(self, *whole->x, *whole->y, options);
  a.initialize(range_rows(0, 100));
  b.initialize(range_rows(0, 100));
  train(a, spec.n, 50, 3, 4);  // 24 steps
  train(b, spec.n, 50, 3, 4);
  EXPECT_EQ(a.steps(), 24);
  double largest = 0, diff = 0;
  for (std::size_t r = 0; r < a.weights_x().extent(0); ++r)
    for (int c = 0; c < 3; ++c) {
      const double ref = b.weights_x()(sharded->first_x + r, c);
      largest = std::max(largest, std::abs(ref));
      diff = std::max(diff, std::abs(a.weights_x()(r, c) - ref));
      diff = std::max(diff, std::abs(a.first_moment_x()(r, c) - b.first_moment_x()(sharded->first_x + r, c)));
    }
  for (std::size_t r = 0; r < a.weights_y().extent(0); ++r)
    for (int c = 0; c < 3; ++c)
      diff = std::max(diff, std::abs(a.weights_y()(r, c) - b.weights_y()(sharded->first_y + r, c)));
  EXPECT_GT(largest, 0.01);
  EXPECT_LT(diff, 1e-6) << "max |U(P ranks) - U(1 rank)|";
  // The weights moved away from their initial values (the steps did something).
  Ey fresh(self, *whole->x, *whole->y, options);
  fresh.initialize(range_rows(0, 100));
  double moved = 0;
  for (std::int64_t r = 0; r < spec.p; ++r)
    for (int c = 0; c < 3; ++c)
      moved = std::max(moved, std::abs(fresh.weights_x()(r, c) - b.weights_x()(r, c)));
  EXPECT_GT(moved, 1e-3);
}

TEST(GepEyRanks, AdamPlsSameWeightsOnAnyRankCount) {
  check_rank_independence(cca::Optimizer::adam, 1.0);
}
TEST(GepEyRanks, SgdRidgeSameWeightsOnAnyRankCount) {
  check_rank_independence(cca::Optimizer::sgd, 0.5);
}

// A solver rebuilt from saved state (the six matrices, the step count, the learning-rate scales) at
// another rank count continues exactly like the one that kept running.
TEST(GepEyState, ResumeFromSavedStateOnAnotherRankCountContinuesIdentically) {
  Communicator comm(MPI_COMM_WORLD), self(MPI_COMM_SELF);
  PlantedSpec spec;
  spec.n = 400;
  spec.p = 23;
  spec.q = 11;
  const auto sharded = make_planted(comm, spec);
  const auto whole = make_planted(self, spec);
  for (auto optimizer : {cca::Optimizer::adam, cca::Optimizer::sgd}) {
    cca::EyOptions options = cca::default_options(0.3, 0.3);
    options.components = 2;
    options.optimizer = optimizer;
    options.seed = 21;
    options.total_steps = 40;  // 4 epochs of 10: the cosine schedule runs across the resume
    // Reference: one rank, 2 + 2 epochs uninterrupted.
    Ey straight(self, *whole->x, *whole->y, options);
    straight.initialize(range_rows(0, 50));
    train(straight, spec.n, 40, 2, 8);
    // Saved after 2 epochs on one rank; resumed on all ranks from the global arrays.
    Ey first(self, *whole->x, *whole->y, options);
    first.initialize(range_rows(0, 50));
    train(first, spec.n, 40, 2, 8);
    Ey resumed(comm, *sharded->x, *sharded->y, options);
    const Matrix saved[6] = {first.weights_x(),      first.weights_y(),       first.first_moment_x(),
                             first.first_moment_y(), first.second_moment_x(), first.second_moment_y()};
    const Matrix into[6] = {resumed.weights_x(),      resumed.weights_y(),       resumed.first_moment_x(),
                            resumed.first_moment_y(), resumed.second_moment_x(), resumed.second_moment_y()};
    for (int m = 0; m < 6; ++m) {
      const std::int64_t offset = m % 2 == 0 ? sharded->first_x : sharded->first_y;
      for (std::size_t r = 0; r < into[m].extent(0); ++r)
        for (int c = 0; c < 2; ++c) into[m](r, c) = saved[m](offset + r, c);
    }
    resumed.set_steps(first.steps());
    resumed.set_learning_rate_scales(first.learning_rate_scale_x(), first.learning_rate_scale_y());
    // Epochs 2 and 3 of the same permutation stream on both.
    for (int epoch = 2; epoch < 4; ++epoch) {
      const auto order = permutation(spec.n, 8, epoch);
      for (std::int64_t b0 = 0; b0 + 40 <= spec.n; b0 += 40) {
        const auto rows = make_rows(std::vector<std::int64_t>(order.begin() + b0, order.begin() + b0 + 40));
        const auto a = straight.step(rows), b = resumed.step(rows);
        EXPECT_NEAR(a.objective, b.objective, 1e-9 * (1 + std::abs(a.objective)));
      }
    }
    double diff = 0;
    for (std::size_t r = 0; r < resumed.weights_x().extent(0); ++r)
      for (int c = 0; c < 2; ++c)
        diff = std::max(diff,
                        std::abs(resumed.weights_x()(r, c) - straight.weights_x()(sharded->first_x + r, c)));
    EXPECT_LT(diff, 1e-9);
    EXPECT_EQ(resumed.steps(), straight.steps());
  }
}

// The solver on float blocks (what genotype blocks will use) follows the double one closely.
TEST(GepEyState, FloatBlocksFollowDouble) {
  Communicator comm(MPI_COMM_WORLD);
  PlantedSpec spec;
  spec.n = 600;
  spec.p = 40;
  spec.q = 12;
  const auto data = make_planted(comm, spec);
  using FloatMatrix = Kokkos::View<float**, Kokkos::LayoutRight>;
  FloatMatrix fx("fx", data->x_values.extent(0), data->x_values.extent(1)),
      fy("fy", data->y_values.extent(0), data->y_values.extent(1));
  for (std::size_t i = 0; i < fx.extent(0); ++i) {
    for (std::size_t j = 0; j < fx.extent(1); ++j) fx(i, j) = static_cast<float>(data->x_values(i, j));
    for (std::size_t j = 0; j < fy.extent(1); ++j) fy(i, j) = static_cast<float>(data->y_values(i, j));
  }
  using FloatBlock = skein::solvers::DenseFeatureBlock<float>;
  FloatBlock bx(fx, data->first_x, skein::solvers::Standardize::scale),
      by(fy, data->first_y, skein::solvers::Standardize::scale);
  cca::EyOptions options = cca::default_options(1.0, 1.0);
  options.components = 3;
  Ey twin(comm, *data->x, *data->y, options);
  cca::GepEy<FloatBlock, FloatBlock> single(comm, bx, by, options);
  twin.initialize(range_rows(0, 100));
  single.initialize(range_rows(0, 100));
  train(twin, spec.n, 100, 1, 2);
  for (int epoch = 0; epoch < 1; ++epoch) {
    const auto order = permutation(spec.n, 2, epoch);
    for (std::int64_t b0 = 0; b0 + 100 <= spec.n; b0 += 100)
      single.step(make_rows(std::vector<std::int64_t>(order.begin() + b0, order.begin() + b0 + 100)));
  }
  const auto all = range_rows(0, spec.n);
  const auto sd =
      cca::subspace_scores(comm, *data->x, *data->y, twin.weights_x(), twin.weights_y(), all, 1, 1);
  const auto sf = cca::subspace_scores(comm, bx, by, single.weights_x(), single.weights_y(), all, 1, 1);
  EXPECT_NEAR(sf.total_eigenvalue(), sd.total_eigenvalue(), 1e-3 * sd.total_eigenvalue());
  const auto exact = cca::exact_pls(comm, bx, by, 3);
  const auto exact_double = cca::exact_pls(comm, *data->x, *data->y, 3);
  for (int c = 0; c < 3; ++c)
    EXPECT_NEAR(exact.values[c], exact_double.values[c], 1e-4 * exact_double.values[0]);
}

// Canonical rotation of trained (rotated, scaled) EY weights: the rotated projections are unit-variance,
// mutually uncorrelated within a view, and cross-correlated only pairwise by the subspace's canonical
// correlations.
TEST(GepEyState, CanonicalRotationDiagonalisesTheProjections) {
  Communicator comm(MPI_COMM_WORLD);
  PlantedSpec spec;
  spec.n = 800;
  spec.p = 30;
  spec.q = 15;
  const auto data = make_planted(comm, spec);
  cca::EyOptions options = cca::default_options(0.5, 0.5);
  const int k = 3;
  options.components = k;
  Ey ey(comm, *data->x, *data->y, options);
  ey.initialize(range_rows(0, 100));
  train(ey, spec.n, 100, 2, 6);
  const auto all = range_rows(0, spec.n);
  const auto rotation =
      cca::canonical_rotation(comm, *data->x, *data->y, ey.weights_x(), ey.weights_y(), all);
  const auto scores =
      cca::subspace_scores(comm, *data->x, *data->y, ey.weights_x(), ey.weights_y(), all, 0.5, 0.5);
  Matrix wx("wx", data->x->columns(), k), wy("wy", data->y->columns(), k), rx("rx", k, k), ry("ry", k, k);
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) {
      rx(i, j) = rotation.rotation_x[i * k + j];
      ry(i, j) = rotation.rotation_y[i * k + j];
    }
  using skein::solvers::blas::Op;
  skein::solvers::blas::gemm(Op::none, Op::none, 1.0, ey.weights_x(), rx, 0.0, wx);
  skein::solvers::blas::gemm(Op::none, Op::none, 1.0, ey.weights_y(), ry, 0.0, wy);
  const auto cov = cca::projection_covariance(comm, *data->x, *data->y, wx, wy, all);
  for (int i = 0; i < 2 * k; ++i)
    for (int j = 0; j < 2 * k; ++j) {
      double expect = i == j ? 1.0 : 0.0;
      if (i == j + k || j == i + k) expect = rotation.correlations[std::min(i, j)];
      EXPECT_NEAR(cov[i * 2 * k + j], expect, 1e-9) << i << ", " << j;
    }
  for (int c = 0; c < k; ++c) {
    EXPECT_NEAR(rotation.correlations[c], scores.correlations[c], 1e-12);
    EXPECT_GT(rotation.correlations[c], 0.3);
  }
}

// The learning-rate schedule: warm-up, cosine to final_fraction at total_steps, constant without a plan.
TEST(GepEySchedule, WarmupThenCosineToFinalFraction) {
  cca::EyOptions o = cca::default_options(1.0, 1.0);
  EXPECT_EQ(o.schedule, cca::Schedule::cosine);
  EXPECT_EQ(cca::schedule_factor(o, 0), 1.0);  // total_steps unknown: constant
  EXPECT_EQ(cca::schedule_factor(o, 12345), 1.0);
  o.total_steps = 200;  // warm-up 10 steps
  o.warmup_fraction = 0.05;
  o.final_fraction = 0.1;
  EXPECT_NEAR(cca::schedule_factor(o, 0), 0.1, 1e-15);
  EXPECT_NEAR(cca::schedule_factor(o, 4), 0.5, 1e-15);
  EXPECT_NEAR(cca::schedule_factor(o, 10), 1.0, 1e-15);
  EXPECT_NEAR(cca::schedule_factor(o, 105), 0.55, 1e-12);  // half-way through the decay
  EXPECT_NEAR(cca::schedule_factor(o, 200), 0.1, 1e-15);
  EXPECT_NEAR(cca::schedule_factor(o, 1000), 0.1, 1e-15);
  for (std::int64_t t = 11; t < 200; ++t)
    EXPECT_LE(cca::schedule_factor(o, t), cca::schedule_factor(o, t - 1)) << t;
  o.total_steps = 1;  // degenerate plans stay finite
  EXPECT_NEAR(cca::schedule_factor(o, 0), 1.0, 1e-15);
  o.schedule = cca::Schedule::constant;
  o.total_steps = 200;
  EXPECT_EQ(cca::schedule_factor(o, 0), 1.0);
  EXPECT_EQ(cca::schedule_factor(o, 150), 1.0);
}

// Training on planted data: PCC (sum of the learned subspace's restricted-GEP eigenvalues over the exact
// top-k sum, on the training rows) after each quarter epoch.
struct Convergence {
  double epochs_to_target = -1;  // first quarter epoch with PCC >= target, -1 if never
  double final_pcc = 0;
  double seconds = 0;
};

Convergence converge(const Communicator& comm, const PlantedViews& data, cca::EyOptions options,
                     std::int64_t batch, int max_epochs, double target, double truth) {
  Convergence out;
  const auto start = std::chrono::steady_clock::now();
  const std::int64_t n = data.spec.n;
  const auto all = range_rows(0, n);
  const auto first = permutation(n, 77, 0);
  const std::int64_t per_epoch = n / batch;
  options.total_steps = per_epoch * max_epochs;  // the planned run, as the job passes it
  Ey ey(comm, *data.x, *data.y, options);
  ey.initialize(make_rows(std::vector<std::int64_t>(first.begin(), first.begin() + batch)));
  const std::int64_t quarter = std::max<std::int64_t>(1, per_epoch / 4);
  std::int64_t steps = 0;
  for (int epoch = 0; epoch < max_epochs; ++epoch) {
    const auto order = permutation(n, 78, epoch);
    for (std::int64_t s = 0; s < per_epoch; ++s) {
      try {
        ey.step(
            make_rows(std::vector<std::int64_t>(order.begin() + s * batch, order.begin() + (s + 1) * batch)));
      } catch (const skein::engine::DataError&) {
        out.final_pcc = std::nan("");
        return out;
      }
      if (false)
        ey.step(
            make_rows(std::vector<std::int64_t>(order.begin() + s * batch, order.begin() + (s + 1) * batch)));
      ++steps;
      if (steps % quarter == 0 || s + 1 == per_epoch) {
        const auto scores = cca::subspace_scores(comm, *data.x, *data.y, ey.weights_x(), ey.weights_y(), all,
                                                 options.alpha_x, options.alpha_y);
        out.final_pcc = scores.total_eigenvalue() / truth;
        if (!std::isfinite(out.final_pcc)) return out;
        if (out.epochs_to_target < 0 && out.final_pcc >= target) {
          out.epochs_to_target = static_cast<double>(steps) / per_epoch;
          out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          return out;
        }
      }
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

PlantedSpec convergence_spec() {
  PlantedSpec spec;
  spec.n = 5000;
  spec.p = 300;
  spec.q = 60;
  spec.latent = 5;
  spec.strength = 0.4;
  spec.noise = 1.0;
  if (const char* p = std::getenv("CCA_EY_SWEEP_P")) spec.p = std::atol(p);  // sweeps at other widths
  return spec;
}

double truth_sum(const Communicator& comm, const PlantedViews& data, double alpha, int k) {
  const auto exact =
      alpha == 1.0 ? cca::exact_pls(comm, *data.x, *data.y, k)
                   : cca::dense_cca(comm, *data.x, *data.y, k, alpha, alpha, range_rows(0, data.spec.n));
  double sum = 0;
  for (double v : exact.values) sum += v;
  if (std::getenv("CCA_EY_SWEEP") != nullptr && comm.rank() == 0) {
    std::printf("SWEEP truth alpha %.2f:", alpha);
    for (double v : exact.values) std::printf(" %.4f", v);
    std::printf("\n");
  }
  return sum;
}

void sweep_or_check(double alpha, std::int64_t batch, int max_epochs) {
  Communicator comm(MPI_COMM_WORLD);
  const auto data = make_planted(comm, convergence_spec());
  const int k = 5;
  const double truth = truth_sum(comm, *data, alpha, k);
  cca::EyOptions options;
  options.components = k;
  options.alpha_x = options.alpha_y = alpha;
  options.seed = 3;
  if (std::getenv("CCA_EY_SWEEP") != nullptr) {
    for (auto schedule : {cca::Schedule::constant, cca::Schedule::cosine})
    for (auto optimizer : {cca::Optimizer::sgd, cca::Optimizer::adam})
      for (double lr : {0.3, 1e-1, 3e-2}) {
        options.schedule = schedule;
        options.optimizer = optimizer;
        options.learning_rate = lr;
        for (std::int64_t b : {std::int64_t(100), std::int64_t(500)}) {
          const auto c = converge(comm, *data, options, b, max_epochs, 0.95, truth);
          if (comm.rank() == 0)
            std::printf(
                "SWEEP alpha %.2f %s %s lr %g batch %ld: epochs to PCC 0.95 %.2f, last PCC %.4f, %.2f s\n",
                alpha, schedule == cca::Schedule::cosine ? "cosine" : "constant",
                optimizer == cca::Optimizer::sgd ? "sgd" : "adam", lr, static_cast<long>(b),
                c.epochs_to_target, c.final_pcc, c.seconds);
        }
      }
    return;
  }
  const cca::EyOptions defaults =
      cca::default_options(alpha, alpha, cca::Optimizer::adam, convergence_spec().n / batch * max_epochs);
  options.optimizer = defaults.optimizer;
  options.learning_rate = defaults.learning_rate;
  options.momentum = defaults.momentum;
  options.schedule = defaults.schedule;
  options.warmup_fraction = defaults.warmup_fraction;
  options.final_fraction = defaults.final_fraction;
  const auto c = converge(comm, *data, options, batch, max_epochs, 0.95, truth);
  if (comm.rank() == 0)
    std::printf("alpha %.2f batch %ld lr %g: PCC 0.95 after %.2f epochs (%.2f s), PCC %.4f\n", alpha,
                static_cast<long>(batch), options.learning_rate, c.epochs_to_target, c.seconds, c.final_pcc);
  EXPECT_GE(c.epochs_to_target, 0) << "PCC reached only " << c.final_pcc;
}

TEST(GepEyConvergence, PlsReachesPcc95) {
  sweep_or_check(1.0, 100, 5);
}
TEST(GepEyConvergence, RidgeReachesPcc95) {
  sweep_or_check(0.5, 100, 5);
}
TEST(GepEyConvergence, CcaReachesPcc95) {
  sweep_or_check(0.0, 100, 5);
}

// Wide data (p > n, weak loadings: the genotype regime): a constant Adam rate stalls at a noise floor,
// the default cosine schedule over the planned steps removes it. PLS, k = 3, batch 50, 5 epochs.
TEST(GepEyConvergence, WidePlsCosineBeatsConstantNoiseFloor) {
  Communicator comm(MPI_COMM_WORLD);
  PlantedSpec spec;
  spec.n = 1500;
  spec.p = 3000;
  spec.q = 20;
  spec.latent = 3;
  spec.strength = 0.15;
  spec.noise = 1.0;
  const auto data = make_planted(comm, spec);
  const int k = 3, epochs = 5;
  const std::int64_t batch = 50;
  const auto exact = cca::exact_pls(comm, *data->x, *data->y, k);
  double truth = 0;
  for (double v : exact.values) truth += v;
  cca::EyOptions options = cca::default_options(1.0, 1.0, cca::Optimizer::adam, spec.n / batch * epochs);
  options.components = k;
  options.seed = 3;
  const auto cosine = converge(comm, *data, options, batch, epochs, 2.0, truth);  // target 2: run all epochs
  options.schedule = cca::Schedule::constant;
  const auto constant = converge(comm, *data, options, batch, epochs, 2.0, truth);
  if (comm.rank() == 0)
    std::printf("wide PLS n %ld p %ld: PCC after %d epochs: cosine %.4f, constant %.4f\n",
                static_cast<long>(spec.n), static_cast<long>(spec.p), epochs, cosine.final_pcc,
                constant.final_pcc);
  EXPECT_GE(cosine.final_pcc, 0.95);
  EXPECT_GT(cosine.final_pcc, constant.final_pcc);
}

// Opt-in timing (CCA_EY_BENCH=1): n = 10,000, p = 20,000, q = 100, float blocks, k = 5: seconds for the
// exact PLS pass and per GEP-EY epoch at batch 100, and the PCC reached after each epoch.
TEST(GepEyBench, WideFloatEpochAndExactPls) {
  if (std::getenv("CCA_EY_BENCH") == nullptr) GTEST_SKIP() << "set CCA_EY_BENCH=1 to time";
  Communicator comm(MPI_COMM_WORLD);
  PlantedSpec spec;
  spec.n = 10000;
  spec.p = 20000;
  spec.q = 100;
  spec.strength = 0.2;
  const auto rx = skein::comm::BlockPartition(spec.p, comm.size()).range(comm.rank());
  const auto ry = skein::comm::BlockPartition(spec.q, comm.size()).range(comm.rank());
  using FloatMatrix = Kokkos::View<float**, Kokkos::LayoutRight>;
  FloatMatrix fx("fx", spec.n, rx.size()), fy("fy", spec.n, ry.size());
  for (std::int64_t i = 0; i < spec.n; ++i) {
    for (std::size_t j = 0; j < rx.size(); ++j)
      fx(i, j) = static_cast<float>(planted_value(spec, 0, i, rx.begin + j));
    for (std::size_t j = 0; j < ry.size(); ++j)
      fy(i, j) = static_cast<float>(planted_value(spec, 1, i, ry.begin + j));
  }
  using FloatBlock = skein::solvers::DenseFeatureBlock<float>;
  FloatBlock bx(fx, rx.begin, skein::solvers::Standardize::center),
      by(fy, ry.begin, skein::solvers::Standardize::scale);
  const int k = 5;
  auto clock = [] { return std::chrono::steady_clock::now(); };
  auto t0 = clock();
  const auto exact = cca::exact_pls(comm, bx, by, k);
  const double exact_s = std::chrono::duration<double>(clock() - t0).count();
  double truth = 0;
  for (double v : exact.values) truth += v;
  cca::EyOptions options = cca::default_options(1.0, 1.0);
  options.components = k;
  cca::GepEy<FloatBlock, FloatBlock> ey(comm, bx, by, options);
  ey.initialize(range_rows(0, 100));
  const auto all = range_rows(0, spec.n);
  for (int epoch = 0; epoch < 3; ++epoch) {
    const auto order = permutation(spec.n, 5, epoch);
    t0 = clock();
    for (std::int64_t b0 = 0; b0 + 100 <= spec.n; b0 += 100)
      ey.step(make_rows(std::vector<std::int64_t>(order.begin() + b0, order.begin() + b0 + 100)));
    const double epoch_s = std::chrono::duration<double>(clock() - t0).count();
    const auto scores = cca::subspace_scores(comm, bx, by, ey.weights_x(), ey.weights_y(), all, 1, 1);
    if (comm.rank() == 0)
      std::printf("BENCH ranks %d: exact PLS %.2f s; epoch %d %.2f s, PCC %.4f\n", comm.size(), exact_s,
                  epoch + 1, epoch_s, scores.total_eigenvalue() / truth);
  }
}

}  // namespace
