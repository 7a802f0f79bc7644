// Stochastic GEP-EY (Chapman, Wells, Lawry Aguila, ICLR 2024) for two feature-sharded views: PLS
// (alpha = 1), ridge CCA (0 < alpha < 1) and CCA (alpha = 0) by minibatch SGD-with-momentum or Adam.
#pragma once

#include "comm/communicator.hpp"
#include "engine/error.hpp"
#include "engine/random.hpp"
#include "solvers/cca_groups.hpp"
#include "solvers/dense_blas.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace skein::solvers::cca {

// The method. For two views x, y with weights U_x (p x k), U_y (q x k) and minibatch projections
// Z_i = X̄_i U_i (X̄ the batch-centred rows; M rows):
//
//   C   = Cov(Z_x, Z_y) + Cov(Z_y, Z_x)                          (i != j terms only: the paper's form,
//                                                                  GEP eigenvalues +-rho; not cca_zoo's
//                                                                  all-pairs variant with 1 + rho)
//   V_a = sum_i alpha_i U_i^T U_i + (1 - alpha_i) Var(Z_i)      (Cov, Var with divisor M - 1)
//   L   = -2 tr C[batch] + <V_a[half 1], V_a[half 2]>_F
//
// V and V' come from the two halves of the minibatch (rows[0, M/2) and rows[M/2, M)), which makes the
// estimate of the population loss unbiased; C uses the whole batch. When both alphas are 1 (PLS) V does
// not depend on data and V = V' (no split). The population minimisers are U = W_k Lambda_k^{1/2} O with
// (W, Lambda) the top-k pairs of the GEP (A, B_alpha), A = [[0, S_xy], [S_yx, 0]], B_alpha =
// blockdiag(alpha_i I + (1 - alpha_i) S_ii), O any rotation; the minimum is -sum lambda_k^2.
//
// The gradient is exact for the estimate (checked against finite differences in tests/mpi/test_cca_ey):
//
//   dL/dU_i = X_i[batch]^T G_i + 2 alpha_i U_i (V + V'),
//   G_i(r)  = -4/(M-1) Z_j(r) + 2 (1 - alpha_i) Z_i^h(r) V^{other half} / (M_h - 1)
//
// with Z centred over the batch in the first term and over row r's half h in the second; every column of
// G_i then has zero mean over each centring set, so X^T G = X̄^T G and blocks do plain products.
//
// Communication per step: ONE allreduce of b x 2k + 2 k^2 values (the partial projections of both views
// and the partial Gram matrices U_i^T U_i). The gradient blocks are then exact on every rank (each rank
// owns its rows of U_x, U_y) and the optimizer needs no communication, so the only effect of the rank
// count is the summation order of the allreduce.
//
// Initialisation: U_i(j, c) = engine::standard_normal(seed, stream, 2 (g k + c) + i) for global row g of
// view i (0 = x, 1 = y), then each column scaled to unit B_alpha-norm on the initialisation batch:
// alpha ||u||^2 + (1 - alpha) Var(X̄ u) = 1 (unit norm for PLS, unit projection variance for CCA: cca_zoo's
// "random" initialiser for both; one allreduce). Rank-count independent.
//
// Optimizers, elementwise on each rank's block (the state is block-shaped like U):
//   sgd:  m = momentum m + g;  U -= lr m                 (PyTorch's heavy ball, dampening 0)
//   adam: m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  U -= lr m^/(sqrt(v^) + eps), bias-corrected.
//
// Learning-rate scale (relative_learning_rate, the default), so that one learning rate suits data of any
// width and conditioning; measured once by initialize() on its batch and kept in the state:
//   sgd:  scale_i = 1 / (sigma_1 + alpha_i + (1 - alpha_i) lambda_i), sigma_1 the top singular value of the
//         batch cross-covariance S_xy and lambda_i the top eigenvalue of the batch covariance S_ii (20 power
//         iterations each through multiply / transpose_multiply, one allreduce of b or 1 values each, from
//         a start vector keyed by (seed ^ constant, stream, global index)): the curvature of the loss is of
//         that order, so the same relative lr (0.03 PLS, 0.1 ridge / CCA; 0.3 diverges at batch 100) works
//         at p = 300 and p = 3000;
//   adam: scale_i = the RMS of U_i's entries after initialisation (~ 1/sqrt(p_i) for PLS): Adam moves every
//         weight by ~lr * scale_i per step, i.e. by a fraction lr of a typical initial weight.
//
// Learning-rate schedule (EyOptions::schedule, default cosine; schedule_factor below): step t uses
// learning_rate * schedule_factor(t) * scale_i, a linear warm-up over the first 5% of the planned steps
// (total_steps, the caller's epochs x steps per epoch) and then a cosine decay to 10% of the peak at
// total_steps. A constant rate leaves a noise floor proportional to it: Adam normalises every coordinate,
// so with p > n (genotypes) or weak signals the p - k noise directions keep moving by ~lr per step and
// the PCC stalls (0.46-0.70 at relative rate 0.3, 0.90 at 0.1 on planted genotypes, k = 3, batch 100),
// while a lower constant rate is slow at the start. The decay removes that floor within the planned run
// (0.93-0.98 after 5 epochs on the same data, PLS and ridge; the table at default_options below). The factor
// is a function of the step count only: steps() is its whole state, so a checkpoint needs nothing new and any
// rank count gets the same rate. Without total_steps (0) the rate is constant.

enum class Optimizer { sgd, adam };

// Learning-rate schedule (schedule_factor below): constant, or a linear warm-up over warmup_fraction of the
// planned steps followed by a cosine decay to final_fraction of the peak at total_steps.
enum class Schedule { constant, cosine };

// Options; default_options(alpha_x, alpha_y) below gives the measured defaults per method.
struct EyOptions {
  int components = 10;
  double alpha_x = 1.0;  // 1 PLS, 0 CCA, between ridge
  double alpha_y = 1.0;
  Optimizer optimizer = Optimizer::adam;
  double learning_rate = 0.1;  // relative unless relative_learning_rate is false
  double momentum = 0.9;       // sgd
  double beta1 = 0.9;          // adam
  double beta2 = 0.999;        // adam
  double epsilon = 1e-8;       // adam
  // true: learning_rate is relative (see "Learning-rate scale" above): the step each view takes is
  // learning_rate * learning_rate_scale_i, the scale measured by initialize(). false: absolute.
  bool relative_learning_rate = true;
  // The schedule over the planned run: cosine needs total_steps (the job's epochs x steps per epoch);
  // with total_steps = 0 (unknown) the learning rate stays constant whatever the schedule. It is a pure
  // function of the step count, so steps() is all the state it needs (checkpoints need nothing new).
  Schedule schedule = Schedule::cosine;
  std::int64_t total_steps = 0;   // planned optimizer steps; 0: unknown (constant rate)
  double warmup_fraction = 0.05;  // cosine: linear warm-up over this share of total_steps
  double final_fraction = 0.1;    // cosine: the factor reached at total_steps (and kept beyond it)
  std::uint64_t seed = 0;
  engine::StreamId stream = 0u;  // the initial weights' stream (the minibatch permutation is the caller's)
};

// The defaults for a method (alphas) and a planned run of total_steps optimizer steps (the job's epochs x
// steps per epoch; 0: unknown). With a plan: Adam, cosine schedule (5% warm-up, decay to 10% of the peak),
// peak relative rate 0.3 for PLS and 0.2 for ridge CCA and CCA; sgd (momentum 0.9) 0.03 PLS, 0.1 otherwise
// under the same schedule. Without one (total_steps = 0): the constant rates measured first, 0.3 PLS and
// 0.1 otherwise for Adam (sgd as above).
//
// Constant rates, measured on dense planted data with n > p (tests/mpi/test_cca_ey.cpp, CCA_EY_SWEEP=1:
// n = 5000, q = 60, 5 components, relative rates 3e-3..1 for sgd and adam, batches 100 and 500): epochs to
// PCC 0.95 at batch 100 were, at p = 300 / p = 3000: PLS adam 0.3: 1.2 / 1.4 (sgd 0.03: 1.2 / 1.0);
// ridge (alpha 0.5) adam 0.1: 1.0 / 2.6 (sgd 0.1: 1.0 / 3.8); CCA adam 0.1: 1.9 at p = 300. sgd diverges
// at relative rates >= 0.3 with batch 100. But on planted genotypes (cca-synth, p > n or weak signal) a
// constant Adam rate stalls at a noise floor: PLS 0.3 gave training PCC 0.46-0.70 after 5 epochs at
// batch 100 (k = 3 and 10), ridge 0.1 0.80-0.84.
//
// Cosine (median of 3 seeds, training PCC after 5 epochs, cca-synth data; constant -> cosine):
//   n = 3000, p = 4000, k = 3, batch 100, PLS: 0.70 -> 0.96;  k = 10: 0.63 -> 0.94
//   n = 10000, p = 2000 (rho 0.6, 0.5, 0.4), k = 3, batch 100, PLS: 0.46 -> 0.97;  batch 500: 0.84 -> 0.96
//     ridge (alpha 0.5, peak 0.2, 2 seeds): batch 100 0.81 -> 0.98; batch 500 0.93 -> 0.95;
//     batch 500, k = 10: 0.92 -> 0.90 (peak 0.1 gave 0.70 there: hence 0.2)
//   n = 5000, p = 30000, q = 82, k = 10, batch 100, PLS (1 seed): 0.55 -> 0.94
//   n = 2000, p = 20000, k = 3, batch 100, PLS: 0.93 -> 0.93
//   sgd 0.03, n = 3000, p = 4000, k = 3, batch 100, PLS (2 seeds): 0.77 -> 0.95
// Runs of fewer than ~50 planned steps are limited by the distance the weights must travel, not by noise,
// and the decay costs there (n = 3000, p = 4000, batch 500, 30 steps: 0.91 -> 0.86; n = 5000, p = 30000,
// k = 10, batch 500, 45 steps: 0.93 -> 0.85): plan more epochs, a smaller batch, or Schedule::constant.
// Components, seed and stream stay at EyOptions' defaults.
inline double default_learning_rate(double alpha_x, double alpha_y, Optimizer optimizer,
                                    std::int64_t total_steps = 0) {
  const bool pls = alpha_x == 1.0 && alpha_y == 1.0;
  if (optimizer == Optimizer::adam) return pls ? 0.3 : (total_steps > 0 ? 0.2 : 0.1);
  return pls ? 0.03 : 0.1;
}

inline EyOptions default_options(double alpha_x, double alpha_y, Optimizer optimizer = Optimizer::adam,
                                 std::int64_t total_steps = 0) {
  EyOptions o;
  o.alpha_x = alpha_x;
  o.alpha_y = alpha_y;
  o.optimizer = optimizer;
  o.learning_rate = default_learning_rate(alpha_x, alpha_y, optimizer, total_steps);
  o.momentum = 0.9;
  o.relative_learning_rate = true;
  o.schedule = Schedule::cosine;
  o.total_steps = total_steps;
  o.warmup_fraction = 0.05;
  o.final_fraction = 0.1;
  return o;
}

// The factor on learning_rate for step t (0-based: the t-th call of step() since initialize()). Cosine
// with T = total_steps > 0 and W = floor(warmup_fraction T) warm-up steps:
//   t < W:       (t + 1) / W
//   otherwise:   f + (1 - f) (1 + cos(pi min(1, (t - W) / (T - W)))) / 2,   f = final_fraction
// (1 at the end of the warm-up, f from step T on). Constant, or total_steps = 0: 1.
inline double schedule_factor(const EyOptions& o, std::int64_t t) {
  if (o.schedule == Schedule::constant || o.total_steps <= 0) return 1.0;
  const std::int64_t total = o.total_steps;
  const auto warmup = std::min<std::int64_t>(
      total - 1, static_cast<std::int64_t>(std::floor(std::max(0.0, o.warmup_fraction) * total)));
  if (t < warmup) return static_cast<double>(t + 1) / static_cast<double>(warmup);
  const double x = std::min(1.0, static_cast<double>(t - warmup) / static_cast<double>(total - warmup));
  return o.final_fraction + (1 - o.final_fraction) * 0.5 * (1 + std::cos(3.14159265358979323846 * x));
}

// One step's minibatch estimates (on every rank the same values).
struct EyStep {
  double objective = 0;  // L = -2 tr C + <V, V'>
  double trace_c = 0;    // tr C (twice the summed cross-covariances of the projection pairs)
  double penalty = 0;    // <V, V'>
};

namespace detail {

template <class Matrix>
struct MomentumUpdate {
  Matrix u, m, g;
  double lr, momentum;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i, const std::int64_t j) const {
    using S = typename Matrix::non_const_value_type;
    m(i, j) = static_cast<S>(momentum * m(i, j) + g(i, j));
    u(i, j) -= static_cast<S>(lr * m(i, j));
  }
};

template <class Matrix>
struct AdamUpdate {
  Matrix u, m, v, g;
  double lr, beta1, beta2, epsilon, correction1, correction2;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i, const std::int64_t j) const {
    using S = typename Matrix::non_const_value_type;
    const double gij = g(i, j);
    const double mi = beta1 * m(i, j) + (1 - beta1) * gij;
    const double vi = beta2 * v(i, j) + (1 - beta2) * gij * gij;
    m(i, j) = static_cast<S>(mi);
    v(i, j) = static_cast<S>(vi);
    u(i, j) -= static_cast<S>(lr * (mi / correction1) / (engine::portable_sqrt(vi / correction2) + epsilon));
  }
};

template <class Matrix>
struct NormalFill {
  Matrix u;
  std::uint64_t seed;
  engine::StreamId stream;
  std::int64_t first_row, k, view;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i, const std::int64_t c) const {
    const std::uint64_t id = static_cast<std::uint64_t>(2 * ((first_row + i) * k + c) + view);
    u(i, c) = static_cast<typename Matrix::non_const_value_type>(engine::standard_normal(seed, stream, id));
  }
};

// Centres the columns of rows [begin, end) of a row-major host array [rows x k] over those rows.
inline void centre_rows(std::vector<double>& z, std::int64_t k, std::int64_t begin, std::int64_t end) {
  if (end <= begin) return;
  for (std::int64_t c = 0; c < k; ++c) {
    double s = 0;
    for (std::int64_t r = begin; r < end; ++r) s += z[r * k + c];
    const double mean = s / static_cast<double>(end - begin);
    for (std::int64_t r = begin; r < end; ++r) z[r * k + c] -= mean;
  }
}

// out (k x k, row-major) += scale * A[begin:end]^T B[begin:end] for row-major [rows x k] arrays.
inline void add_cross(const std::vector<double>& a, const std::vector<double>& b, std::int64_t k,
                      std::int64_t begin, std::int64_t end, double scale, std::vector<double>& out) {
  for (std::int64_t r = begin; r < end; ++r)
    for (std::int64_t i = 0; i < k; ++i) {
      const double ai = scale * a[r * k + i];
      for (std::int64_t j = 0; j < k; ++j) out[i * k + j] += ai * b[r * k + j];
    }
}

}  // namespace detail

// The solver's state on one rank: U_x, U_y and the optimizer moments (block-shaped: this rank's rows of
// global p x k / q x k arrays, starting at the blocks' first_column()), plus the step count. The job saves
// and restores them (StateWriter::block for the matrices); first_moment is the momentum buffer for sgd,
// second_moment is used by adam only.
//
// BlockX / BlockY are FeatureBlocks (solvers/feature_block.hpp) with the same scalar_type; the solver keeps
// references to them and to the communicator, which must outlive it. Every rank calls every member in
// the same order (they communicate).
//
// How a job drives it:
//   GepEy<Bx, By> ey(comm, x, y, options);              // options: default_options(alpha_x, alpha_y) + k,
//   seed ey.initialize(first_batch_rows);                     // fresh start (skip when resuming) for each
//   epoch, for each batch of the job's permutation of the training rows:
//     EyStep s = ey.step(batch_rows);                    // record s.objective per step (same on all ranks)
//   every so often: subspace_scores(comm, x, y, ey.weights_x(), ey.weights_y(), rows, alpha_x, alpha_y)
//     (solvers/cca_metrics.hpp) on training / validation rows: correlations (TCC) and, against an exact
//     solution's values, the PCC.
//   checkpoint: weights_x/y, first_moment_x/y, second_moment_x/y (global p x k, q x k blocks), steps(),
//     learning_rate_scale_x/y(); resume: construct with the same options, deep_copy the six matrices in,
//     set_steps(), set_learning_rate_scales() -- then steps continue exactly as without the interruption
//     (tests/mpi/test_cca_ey.cpp), on any rank count.
// step() throws engine::DataError when the objective stops being finite (divergence).
template <class BlockX, class BlockY>
class GepEy {
 public:
  using Scalar = typename BlockX::scalar_type;
  static_assert(std::is_same_v<Scalar, typename BlockY::scalar_type>, "GepEy: both views one Scalar");
  using Rows = Kokkos::View<const std::int64_t*>;
  using Matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight>;

  GepEy(const comm::Communicator& comm, const BlockX& x, const BlockY& y, const EyOptions& options)
      : comm_(comm), x_(x), y_(y), options_(options), k_(options.components) {
    if (k_ < 1) throw engine::UsageError("cca: components must be at least 1");
    if (options.alpha_x < 0 || options.alpha_x > 1 || options.alpha_y < 0 || options.alpha_y > 1)
      throw engine::UsageError("cca: alpha must lie in [0, 1]");
    if (x.rows() != y.rows()) throw engine::InternalError("GepEy: the two views have different row counts");
    const auto px = static_cast<std::size_t>(x.columns()), py = static_cast<std::size_t>(y.columns());
    const auto k = static_cast<std::size_t>(k_);
    ux_ = Matrix("cca::U_x", px, k);
    uy_ = Matrix("cca::U_y", py, k);
    mx_ = Matrix("cca::first_moment_x", px, k);
    my_ = Matrix("cca::first_moment_y", py, k);
    vx_ = Matrix("cca::second_moment_x", px, k);
    vy_ = Matrix("cca::second_moment_y", py, k);
    gx_ = Matrix("cca::gradient_x", px, k);
    gy_ = Matrix("cca::gradient_y", py, k);
    if (comm.exact_sums()) {
      group_x_ = group_columns(comm.allreduce(x.columns(), comm::Op::sum));
      group_y_ = group_columns(comm.allreduce(y.columns(), comm::Op::sum));
    }
  }

  const EyOptions& options() const { return options_; }
  int components() const { return k_; }
  // True when V depends on data (some alpha < 1), so a step splits its batch into two halves.
  bool splits_batch() const { return options_.alpha_x < 1 || options_.alpha_y < 1; }

  // Fresh random weights scaled on `rows` (see the header), zero moments, zero steps.
  void initialize(Rows rows) {
    using exec = typename Matrix::execution_space;
    const std::int64_t k = k_;
    Kokkos::parallel_for(
        "skein::cca::init_x", Kokkos::MDRangePolicy<exec, Kokkos::Rank<2>>({0, 0}, {x_.columns(), k}),
        detail::NormalFill<Matrix>{ux_, options_.seed, options_.stream, x_.first_column(), k, 0});
    Kokkos::parallel_for(
        "skein::cca::init_y", Kokkos::MDRangePolicy<exec, Kokkos::Rank<2>>({0, 0}, {y_.columns(), k}),
        detail::NormalFill<Matrix>{uy_, options_.seed, options_.stream, y_.first_column(), k, 1});
    Kokkos::fence();
    const std::int64_t b = static_cast<std::int64_t>(rows.extent(0));
    if (b < 2 && splits_batch())
      throw engine::UsageError("cca: the initialisation batch needs at least 2 rows");
    Projections p = project(rows);
    std::vector<double> zx = p.zx, zy = p.zy;
    detail::centre_rows(zx, k, 0, b);
    detail::centre_rows(zy, k, 0, b);
    std::vector<double> scale_x(k), scale_y(k);
    for (std::int64_t c = 0; c < k; ++c) {
      double var_x = 0, var_y = 0;
      for (std::int64_t r = 0; r < b; ++r) {
        var_x += zx[r * k + c] * zx[r * k + c];
        var_y += zy[r * k + c] * zy[r * k + c];
      }
      var_x = b > 1 ? var_x / (b - 1) : 0.0;
      var_y = b > 1 ? var_y / (b - 1) : 0.0;
      const double nx = options_.alpha_x * p.gram_x[c * k + c] + (1 - options_.alpha_x) * var_x;
      const double ny = options_.alpha_y * p.gram_y[c * k + c] + (1 - options_.alpha_y) * var_y;
      scale_x[c] = nx > 0 ? 1.0 / std::sqrt(nx) : 1.0;
      scale_y[c] = ny > 0 ? 1.0 / std::sqrt(ny) : 1.0;
    }
    scale_columns(ux_, scale_x);
    scale_columns(uy_, scale_y);
    lr_scale_x_ = lr_scale_y_ = 1.0;
    if (options_.relative_learning_rate) {
      if (options_.optimizer == Optimizer::adam) {
        double sx = 0, sy = 0;
        for (std::int64_t c = 0; c < k; ++c) {
          sx += scale_x[c] * scale_x[c] * p.gram_x[c * k + c];
          sy += scale_y[c] * scale_y[c] * p.gram_y[c * k + c];
        }
        const double px = comm_.allreduce(static_cast<double>(x_.columns()), comm::Op::sum);
        const double py = comm_.allreduce(static_cast<double>(y_.columns()), comm::Op::sum);
        lr_scale_x_ = std::sqrt(sx / (px * k));
        lr_scale_y_ = std::sqrt(sy / (py * k));
      } else {
        const double sigma = top_cross_singular_value(rows);
        const double lx = options_.alpha_x < 1 ? top_covariance_eigenvalue(x_, rows, 0) : 0.0;
        const double ly = options_.alpha_y < 1 ? top_covariance_eigenvalue(y_, rows, 1) : 0.0;
        lr_scale_x_ = 1.0 / (sigma + options_.alpha_x + (1 - options_.alpha_x) * lx);
        lr_scale_y_ = 1.0 / (sigma + options_.alpha_y + (1 - options_.alpha_y) * ly);
      }
    }
    Kokkos::deep_copy(mx_, Scalar(0));
    Kokkos::deep_copy(my_, Scalar(0));
    Kokkos::deep_copy(vx_, Scalar(0));
    Kokkos::deep_copy(vy_, Scalar(0));
    steps_ = 0;
  }

  // The minibatch estimate of the loss at the current weights and its exact gradient (this rank's blocks
  // into grad_x, grad_y: columns() x k). No update. rows: the batch (at least 4 rows when it splits).
  EyStep loss_and_gradient(Rows rows, Matrix grad_x, Matrix grad_y) const {
    const std::int64_t k = k_;
    const std::int64_t b = static_cast<std::int64_t>(rows.extent(0));
    const bool split = splits_batch();
    if (b < (split ? 4 : 2))
      throw engine::UsageError("cca: a minibatch needs at least " + std::to_string(split ? 4 : 2) +
                               " rows, got " + std::to_string(b));
    const double ax = options_.alpha_x, ay = options_.alpha_y;
    Projections p = project(rows);
    // Batch-centred projections for C; half-centred ones for V (the same when not splitting).
    std::vector<double> zx = p.zx, zy = p.zy;
    detail::centre_rows(zx, k, 0, b);
    detail::centre_rows(zy, k, 0, b);
    const std::int64_t h = split ? b / 2 : b;
    std::vector<double> hx = p.zx, hy = p.zy;
    detail::centre_rows(hx, k, 0, h);
    detail::centre_rows(hy, k, 0, h);
    detail::centre_rows(hx, k, h, b);
    detail::centre_rows(hy, k, h, b);
    EyStep out;
    double tr = 0;
    for (std::int64_t r = 0; r < b; ++r)
      for (std::int64_t c = 0; c < k; ++c) tr += zx[r * k + c] * zy[r * k + c];
    out.trace_c = 2.0 * tr / static_cast<double>(b - 1);
    // V over each half (one V when not splitting).
    std::vector<double> base(k * k, 0.0);
    for (std::int64_t i = 0; i < k * k; ++i) base[i] = ax * p.gram_x[i] + ay * p.gram_y[i];
    std::vector<double> v1 = base, v2 = base;
    if (split) {
      detail::add_cross(hx, hx, k, 0, h, (1 - ax) / static_cast<double>(h - 1), v1);
      detail::add_cross(hy, hy, k, 0, h, (1 - ay) / static_cast<double>(h - 1), v1);
      detail::add_cross(hx, hx, k, h, b, (1 - ax) / static_cast<double>(b - h - 1), v2);
      detail::add_cross(hy, hy, k, h, b, (1 - ay) / static_cast<double>(b - h - 1), v2);
    }
    double penalty = 0;
    for (std::int64_t i = 0; i < k * k; ++i) penalty += v1[i] * v2[i];
    out.penalty = penalty;
    out.objective = -2.0 * out.trace_c + penalty;
    // G (b x k) per view, then X^T G, then + 2 alpha U (V + V').
    ensure_batch_buffers(b);
    auto g_x = Kokkos::create_mirror_view(g_batch_x_);
    auto g_y = Kokkos::create_mirror_view(g_batch_y_);
    const double cross = -4.0 / static_cast<double>(b - 1);
    for (std::int64_t r = 0; r < b; ++r) {
      const bool first = r < h;
      const std::vector<double>& other = first ? v2 : v1;
      const double divisor = static_cast<double>((first ? h : b - h) - 1);
      for (std::int64_t c = 0; c < k; ++c) {
        double gx = cross * zy[r * k + c], gy = cross * zx[r * k + c];
        if (split) {
          double sx = 0, sy = 0;
          for (std::int64_t j = 0; j < k; ++j) {
            sx += hx[r * k + j] * other[j * k + c];
            sy += hy[r * k + j] * other[j * k + c];
          }
          gx += 2.0 * (1 - ax) * sx / divisor;
          gy += 2.0 * (1 - ay) * sy / divisor;
        }
        g_x(r, c) = static_cast<Scalar>(gx);
        g_y(r, c) = static_cast<Scalar>(gy);
      }
    }
    Kokkos::deep_copy(g_batch_x_, g_x);
    Kokkos::deep_copy(g_batch_y_, g_y);
    x_.transpose_multiply(rows, g_batch_x_, grad_x);
    y_.transpose_multiply(rows, g_batch_y_, grad_y);
    auto vsum = Kokkos::create_mirror_view(vsum_);
    for (std::int64_t i = 0; i < k; ++i)
      for (std::int64_t j = 0; j < k; ++j) vsum(i, j) = static_cast<Scalar>(v1[i * k + j] + v2[i * k + j]);
    Kokkos::deep_copy(vsum_, vsum);
    if (ax != 0) blas::gemm(blas::Op::none, blas::Op::none, Scalar(2 * ax), ux_, vsum_, Scalar(1), grad_x);
    if (ay != 0) blas::gemm(blas::Op::none, blas::Op::none, Scalar(2 * ay), uy_, vsum_, Scalar(1), grad_y);
    return out;
  }

  // One optimizer step on the minibatch `rows` (the caller's permutation slice); returns the estimates
  // at the weights before the update.
  EyStep step(Rows rows) {
    const EyStep out = loss_and_gradient(rows, gx_, gy_);
    if (!std::isfinite(out.objective))
      throw engine::DataError(
          "cca: the EY objective is no longer finite after " + std::to_string(steps_) +
          " steps (diverged): lower the learning rate, use a larger batch, or ridge (alpha > 0)");
    const double factor = schedule_factor(options_, steps_);
    ++steps_;
    update(ux_, mx_, vx_, gx_, factor * options_.learning_rate * lr_scale_x_);
    update(uy_, my_, vy_, gy_, factor * options_.learning_rate * lr_scale_y_);
    return out;
  }

  // State (Views share data: writing into them restores a checkpoint).
  Matrix weights_x() const { return ux_; }
  Matrix weights_y() const { return uy_; }
  Matrix first_moment_x() const { return mx_; }
  Matrix first_moment_y() const { return my_; }
  Matrix second_moment_x() const { return vx_; }
  Matrix second_moment_y() const { return vy_; }
  std::int64_t steps() const { return steps_; }
  void set_steps(std::int64_t steps) { steps_ = steps; }
  // The per-view learning-rate scales initialize() measured (1 with an absolute learning rate); part of
  // the state: a resumed run must restore them, not re-measure.
  double learning_rate_scale_x() const { return lr_scale_x_; }
  double learning_rate_scale_y() const { return lr_scale_y_; }
  void set_learning_rate_scales(double x, double y) {
    lr_scale_x_ = x;
    lr_scale_y_ = y;
  }

 private:
  // Projections of a batch (row-major b x k host arrays) and the Gram matrices U_i^T U_i (k x k), all
  // summed over ranks in one allreduce.
  struct Projections {
    std::vector<double> zx, zy, gram_x, gram_y;
  };

  Projections project(Rows rows) const {
    const std::int64_t k = k_;
    const std::int64_t b = static_cast<std::int64_t>(rows.extent(0));
    if (exact()) return project_exact(rows);
    Matrix zx("cca::Z_x", b, k), zy("cca::Z_y", b, k);
    x_.multiply(rows, ux_, zx);
    y_.multiply(rows, uy_, zy);
    Matrix gram_x("cca::gram_x", k, k), gram_y("cca::gram_y", k, k);
    blas::gemm(blas::Op::transpose, blas::Op::none, Scalar(1), ux_, ux_, Scalar(0), gram_x);
    blas::gemm(blas::Op::transpose, blas::Op::none, Scalar(1), uy_, uy_, Scalar(0), gram_y);
    auto hzx = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), zx);
    auto hzy = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), zy);
    auto hgx = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), gram_x);
    auto hgy = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), gram_y);
    const std::size_t bk = static_cast<std::size_t>(b * k), kk = static_cast<std::size_t>(k * k);
    std::vector<double> packed(2 * bk + 2 * kk);
    for (std::int64_t r = 0; r < b; ++r)
      for (std::int64_t c = 0; c < k; ++c) {
        packed[r * k + c] = hzx(r, c);
        packed[bk + r * k + c] = hzy(r, c);
      }
    for (std::int64_t i = 0; i < k; ++i)
      for (std::int64_t j = 0; j < k; ++j) {
        packed[2 * bk + i * k + j] = hgx(i, j);
        packed[2 * bk + kk + i * k + j] = hgy(i, j);
      }
    comm_.allreduce_inplace(packed.data(), packed.size(), comm::Op::sum);
    Projections p;
    p.zx.assign(packed.begin(), packed.begin() + bk);
    p.zy.assign(packed.begin() + bk, packed.begin() + 2 * bk);
    p.gram_x.assign(packed.begin() + 2 * bk, packed.begin() + 2 * bk + kk);
    p.gram_y.assign(packed.begin() + 2 * bk + kk, packed.end());
    return p;
  }

  // comm.reproducible: one row of terms per column group (the x view's group i and the y view's group i
  // side by side), each group's projections and Gram matrix computed on its own (solvers/cca_groups.hpp),
  // the rows summed exactly: the same bits at any rank count.
  bool exact() const { return group_x_ > 0; }
  Projections project_exact(Rows rows) const {
    const std::int64_t k = k_;
    const std::int64_t b = static_cast<std::int64_t>(rows.extent(0));
    const std::size_t bk = static_cast<std::size_t>(b * k), kk = static_cast<std::size_t>(k * k);
    const std::size_t length = 2 * bk + 2 * kk;
    const std::int64_t groups = std::max(local_groups(x_, group_x_), local_groups(y_, group_y_));
    std::vector<double> terms(static_cast<std::size_t>(groups) * length, 0.0);
    add_group_products(x_, rows, ux_, group_x_, terms, length, 0);
    add_group_products(y_, rows, uy_, group_y_, terms, length, bk);
    add_group_grams(Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), ux_), group_x_, terms, length,
                    2 * bk);
    add_group_grams(Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), uy_), group_y_, terms, length,
                    2 * bk + kk);
    const std::vector<double> sum = exact_group_sum(comm_, terms, length);
    Projections p;
    p.zx.assign(sum.begin(), sum.begin() + bk);
    p.zy.assign(sum.begin() + bk, sum.begin() + 2 * bk);
    p.gram_x.assign(sum.begin() + 2 * bk, sum.begin() + 2 * bk + kk);
    p.gram_y.assign(sum.begin() + 2 * bk + kk, sum.end());
    return p;
  }
  // The group width of a block (x_ or y_).
  template <class Block>
  std::int64_t group_of(const Block& block) const {
    return static_cast<const void*>(&block) == static_cast<const void*>(&x_) ? group_x_ : group_y_;
  }
  // The exact global sum of squares of a column vector v of `block`'s rows.
  template <class Block>
  double exact_squared_norm(const Block& block, const Matrix& v) const {
    const std::int64_t group = group_of(block);
    std::vector<double> terms(static_cast<std::size_t>(local_groups(block, group)), 0.0);
    add_group_squares(Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v), group, terms, 1, 0);
    return exact_group_sum(comm_, terms, 1)[0];
  }

  // The b x k batch gradients G_x, G_y and the k x k V + V' (reused while b stays the same).
  void ensure_batch_buffers(std::int64_t b) const {
    if (static_cast<std::int64_t>(g_batch_x_.extent(0)) != b) {
      g_batch_x_ = Matrix("cca::G_x", b, k_);
      g_batch_y_ = Matrix("cca::G_y", b, k_);
    }
    if (static_cast<int>(vsum_.extent(0)) != k_) vsum_ = Matrix("cca::V_sum", k_, k_);
  }

  void scale_columns(const Matrix& u, const std::vector<double>& scale) {
    auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), u);
    for (std::size_t i = 0; i < h.extent(0); ++i)
      for (std::size_t c = 0; c < h.extent(1); ++c) h(i, c) = static_cast<Scalar>(h(i, c) * scale[c]);
    Kokkos::deep_copy(u, h);
  }

  void update(const Matrix& u, const Matrix& m, const Matrix& v, const Matrix& g, double lr) {
    using exec = typename Matrix::execution_space;
    const auto policy = Kokkos::MDRangePolicy<exec, Kokkos::Rank<2>>(
        {0, 0}, {static_cast<std::int64_t>(u.extent(0)), static_cast<std::int64_t>(k_)});
    if (u.extent(0) == 0) return;
    if (options_.optimizer == Optimizer::sgd) {
      Kokkos::parallel_for("skein::cca::sgd", policy,
                           detail::MomentumUpdate<Matrix>{u, m, g, lr, options_.momentum});
    } else {
      const double t = static_cast<double>(steps_);
      Kokkos::parallel_for(
          "skein::cca::adam", policy,
          detail::AdamUpdate<Matrix>{u, m, v, g, lr, options_.beta1, options_.beta2, options_.epsilon,
                                     1 - std::pow(options_.beta1, t), 1 - std::pow(options_.beta2, t)});
    }
    Kokkos::fence();
  }

  // z (b x 1) = the batch-centred, rank-summed projection of `block` on v (its columns x 1).
  template <class Block>
  std::vector<double> centred_projection(const Block& block, Rows rows, const Matrix& v) const {
    const std::int64_t b = static_cast<std::int64_t>(rows.extent(0));
    std::vector<double> out(static_cast<std::size_t>(b));
    if (exact()) {
      const std::int64_t group = group_of(block);
      std::vector<double> terms(static_cast<std::size_t>(local_groups(block, group) * b), 0.0);
      add_group_products(block, rows, v, group, terms, static_cast<std::size_t>(b), 0);
      out = exact_group_sum(comm_, terms, static_cast<std::size_t>(b));
      detail::centre_rows(out, 1, 0, b);
      return out;
    }
    Matrix z("cca::power_z", b, 1);
    block.multiply(rows, v, z);
    auto hz = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), z);
    for (std::int64_t r = 0; r < b; ++r) out[r] = hz(r, 0);
    comm_.allreduce_inplace(out.data(), out.size(), comm::Op::sum);
    detail::centre_rows(out, 1, 0, b);
    return out;
  }
  // v (its columns x 1) = X̄^T z / (b - 1) for a centred z; returns the global squared norm of v.
  template <class Block>
  double centred_transpose(const Block& block, Rows rows, const std::vector<double>& z,
                           const Matrix& v) const {
    const std::int64_t b = static_cast<std::int64_t>(rows.extent(0));
    Matrix g("cca::power_g", b, 1);
    auto hg = Kokkos::create_mirror_view(g);
    for (std::int64_t r = 0; r < b; ++r) hg(r, 0) = static_cast<Scalar>(z[r] / static_cast<double>(b - 1));
    Kokkos::deep_copy(g, hg);
    block.transpose_multiply(rows, g, v);
    if (exact()) return exact_squared_norm(block, v);
    auto hv = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
    double norm = 0;
    for (std::size_t i = 0; i < hv.extent(0); ++i) norm += static_cast<double>(hv(i, 0)) * hv(i, 0);
    return comm_.allreduce(norm, comm::Op::sum);
  }
  template <class Block>
  double squared_norm(const Block& block, const Matrix& v) const {
    if (exact()) return exact_squared_norm(block, v);
    auto hv = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
    double s = 0;
    for (std::size_t i = 0; i < hv.extent(0); ++i) s += static_cast<double>(hv(i, 0)) * hv(i, 0);
    return comm_.allreduce(s, comm::Op::sum);
  }
  static void normalise(const Matrix& v, double squared_norm) {
    auto hv = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
    const double inv = squared_norm > 0 ? 1.0 / std::sqrt(squared_norm) : 0.0;
    for (std::size_t i = 0; i < hv.extent(0); ++i) hv(i, 0) = static_cast<Scalar>(hv(i, 0) * inv);
    Kokkos::deep_copy(v, hv);
  }
  template <class Block>
  Matrix power_start(const Block& block, std::int64_t view) const {
    Matrix v("cca::power_v", block.columns(), 1);
    using exec = typename Matrix::execution_space;
    Kokkos::parallel_for(
        "skein::cca::power_start",
        Kokkos::MDRangePolicy<exec, Kokkos::Rank<2>>({0, 0}, {block.columns(), std::int64_t(1)}),
        detail::NormalFill<Matrix>{v, options_.seed ^ 0x9E3779B97F4A7C15ull, options_.stream,
                                   block.first_column(), 1, view});
    Kokkos::fence();
    return v;
  }
  static constexpr int kPowerIterations = 20;
  // Top eigenvalue of the batch covariance of one view, by power iteration.
  template <class Block>
  double top_covariance_eigenvalue(const Block& block, Rows rows, std::int64_t view) const {
    Matrix v = power_start(block, view);
    Matrix w("cca::power_w", block.columns(), 1);
    double lambda = 0;
    normalise(v, squared_norm(block, v));
    for (int it = 0; it < kPowerIterations; ++it) {
      const auto z = centred_projection(block, rows, v);
      const double norm2 = centred_transpose(block, rows, z, w);
      lambda = std::sqrt(norm2);  // |S v| with |v| = 1
      normalise(w, norm2);
      std::swap(v, w);
    }
    return lambda;
  }
  // Top singular value of the batch cross-covariance S_xy, by power iteration on S_yx S_xy.
  double top_cross_singular_value(Rows rows) const {
    Matrix vy = power_start(y_, 1), wx("cca::power_wx", x_.columns(), 1),
           wy("cca::power_wy", y_.columns(), 1);
    double sigma = 0;
    for (int it = 0; it < kPowerIterations; ++it) {
      const double start = squared_norm(y_, vy);
      normalise(vy, start);
      const double nx = centred_transpose(x_, rows, centred_projection(y_, rows, vy), wx);  // |S_xy v|^2
      sigma = std::sqrt(nx);
      centred_transpose(y_, rows, centred_projection(x_, rows, wx), wy);
      std::swap(vy, wy);
    }
    return sigma;
  }

  const comm::Communicator& comm_;
  const BlockX& x_;
  const BlockY& y_;
  EyOptions options_;
  int k_;
  Matrix ux_, uy_, mx_, my_, vx_, vy_, gx_, gy_;
  mutable Matrix g_batch_x_, g_batch_y_, vsum_;
  std::int64_t steps_ = 0;
  double lr_scale_x_ = 1.0, lr_scale_y_ = 1.0;
  // comm.reproducible: the column-group widths of x and y (solvers/cca_groups.hpp); 0: ordinary sums.
  std::int64_t group_x_ = 0, group_y_ = 0;
};

}  // namespace skein::solvers::cca
