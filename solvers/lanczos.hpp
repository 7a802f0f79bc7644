// Symmetric Lanczos on any VectorSpace / operator: the plain m-step tridiagonalisation (for stochastic
// Lanczos quadrature) and a thick-restart eigensolver for the k extremal eigenpairs at either end or both.
#pragma once

#include "engine/random.hpp"
#include "solvers/lapack.hpp"
#include "solvers/vector_space.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace skein::solvers {

enum class Reorthogonalization {
  none,  // three-term recurrence only: 3 vectors of memory; Ritz values may repeat ("ghosts")
  full   // classical Gram-Schmidt twice against every basis vector (CGS2), one fused reduction per pass
};

// T = tridiag(beta, alpha, beta) of an m-step Lanczos run: alpha has m entries, beta m - 1 (beta[j]
// couples steps j and j + 1); residual_beta is ||w|| after the last step (the Ritz residual scale).
struct LanczosTridiagonal {
  std::vector<double> alpha;
  std::vector<double> beta;
  double residual_beta = 0.0;
  bool invariant = false;  // stopped early: the Krylov space became A-invariant (beta ~ 0)
};

namespace detail {

// w -= V[0..count) (V^T w), twice (CGS2: the second pass removes what rounding left of the first), with
// one fused reduction per pass. Adds the coefficients to h (count entries). `tmp` is scratch.
template <class Space>
void cgs2(const Space& space, const std::vector<typename Space::vector_type>& basis, std::size_t count,
          const typename Space::vector_type& w, const typename Space::vector_type& tmp,
          std::vector<double>& h) {
  using Vector = typename Space::vector_type;
  std::vector<const Vector*> xs(count), ys(count, &w);
  for (std::size_t i = 0; i < count; ++i) xs[i] = &basis[i];
  h.assign(count, 0.0);
  std::vector<double> pass(count);
  for (int repeat = 0; repeat < 2; ++repeat) {
    space.dots(count, xs.data(), ys.data(), pass.data());
    space.combine(count, xs.data(), pass.data(), tmp);
    space.axpby(-1.0, tmp, 1.0, w);
    for (std::size_t i = 0; i < count; ++i) h[i] += pass[i];
  }
}

// Breakdown threshold: beta below this times the largest |alpha|, |beta| seen means an invariant subspace.
constexpr double kBreakdown = 1e-12;

}  // namespace detail

// m steps of Lanczos from `start` (any nonzero vector; it is normalised). With `basis` non-null and full
// reorthogonalisation, the m orthonormal basis vectors are returned in it. Stops early, with
// invariant = true, when the Krylov space is exhausted (always by step n for an n x n matrix).
template <class Space, class Operator>
LanczosTridiagonal lanczos_tridiagonal(const Space& space, const Operator& op,
                                       const typename Space::vector_type& start, int steps,
                                       Reorthogonalization reorth = Reorthogonalization::full,
                                       std::vector<typename Space::vector_type>* basis = nullptr) {
  using Vector = typename Space::vector_type;
  LanczosTridiagonal t;
  const double start_norm = norm2(space, start);
  if (!(start_norm > 0.0)) throw std::invalid_argument("lanczos: the start vector is zero");
  const bool full = reorth == Reorthogonalization::full;
  std::vector<Vector> kept;  // full: every basis vector; none: previous and current
  kept.push_back(space.create("lanczos_v0"));
  space.copy(start, kept[0]);
  space.scale(kept[0], 1.0 / start_norm);
  Vector w = space.create("lanczos_w"), tmp = space.create("lanczos_tmp");
  double scale = 0.0;
  std::vector<double> h;
  for (int j = 0; j < steps; ++j) {
    const Vector& v = kept.back();
    op.apply(v, w);
    double alpha;
    if (full) {
      detail::cgs2(space, kept, kept.size(), w, tmp, h);
      alpha = h.back();
    } else {
      alpha = dot(space, v, w);
      space.axpby(-alpha, v, 1.0, w);
      if (j > 0) space.axpby(-t.beta.back(), kept[kept.size() - 2], 1.0, w);
    }
    t.alpha.push_back(alpha);
    const double beta = norm2(space, w);
    scale = std::max({scale, std::abs(alpha), beta});
    t.residual_beta = beta;
    if (j + 1 == steps) break;
    if (beta <= detail::kBreakdown * scale) {
      t.invariant = true;
      break;
    }
    t.beta.push_back(beta);
    Vector next = full ? space.create("lanczos_v") : (kept.size() == 2 ? kept[0] : space.create("lanczos_v"));
    space.copy(w, next);
    space.scale(next, 1.0 / beta);
    if (!full && kept.size() == 2) kept.erase(kept.begin());
    kept.push_back(next);
  }
  if (basis) {
    if (!full) throw std::invalid_argument("lanczos: the basis is only kept with full reorthogonalisation");
    *basis = std::move(kept);
  }
  return t;
}

// --- Thick-restart Lanczos eigensolver ------------------------------------------------------------------

struct LanczosOptions {
  int top = 0;         // wanted largest (algebraic) eigenpairs
  int bottom = 0;      // wanted smallest (algebraic) eigenpairs; Hessians are indefinite, so both ends
  int max_basis = 40;  // m: basis vectors per cycle (clamped to the dimension); at least top + bottom + 2
  double tol = 1e-8;   // converged when ||A u - theta u|| <= tol * max |theta| for every wanted pair
  int max_restarts = 200;
  bool want_vectors = true;
  std::uint64_t seed = 0;                // start vector and breakdown replacements (fill_normal)
  engine::StreamId stream{0x4c414e43u};  // "LANC"
};

// Host-side Rayleigh-Ritz of the projected matrix (lanczos.cpp): eigenpairs, residual estimates
// |beta_m * last component|, the wanted indices and the ones a thick restart keeps.
struct RitzSelection {
  EigenDecomposition eig;         // ascending
  std::vector<double> residuals;  // per eigenpair
  std::vector<int> top;           // indices into eig, descending values
  std::vector<int> bottom;        // ascending values
  std::vector<int> keep;          // restart set: the wanted pairs and up to half the rest, at most m - 1
  double scale = 0.0;             // max |theta|
  bool converged = false;
};
RitzSelection select_ritz(const std::vector<double>& projected, int m, double beta_m,
                          const LanczosOptions& options);

template <class Vector>
struct RitzPairs {
  std::vector<double> values;     // top: descending; bottom: ascending
  std::vector<double> residuals;  // estimates of ||A u - theta u||
  std::vector<Vector> vectors;    // unit vectors, when asked for
};

template <class Vector>
struct LanczosResult {
  RitzPairs<Vector> top;
  RitzPairs<Vector> bottom;
  bool converged = false;
  int restarts = 0;
  int applications = 0;  // operator applications
};

// The scalars of a thick-restart run (with basis vectors [0, size] they are the whole state; see
// LanczosEigensolver::restore).
struct LanczosScalars {
  int m = 0;     // basis size per cycle
  int size = 0;  // basis vectors built in this cycle (0..m)
  int restarts = 0;
  int applications = 0;
  std::uint64_t random_draws = 0;  // fill_normal draws used so far
  double scale = 0.0;              // for the breakdown test
  double beta_m = 0.0;             // coupling to basis[size] when size == m
  std::vector<double> projected;   // m x m column-major V^T A V
  bool done = false;
};

// Thick-restart Lanczos (Wu and Simon 2000, TRLan; equivalent to implicitly restarted Lanczos) with full
// reorthogonalisation (the known three-term or arrowhead part, then one classical Gram-Schmidt pass over
// the basis). Each cycle extends the basis to m vectors, takes Ritz pairs of the projected
// matrix V^T A V (dense LAPACK dsyev: after a restart it is "arrowhead + tridiagonal", not tridiagonal),
// and, unless every wanted pair meets the tolerance, restarts from the wanted Ritz vectors and as many
// neighbours again plus the last residual direction, which keeps the Lanczos relation exact
// (A V = V H + beta_m v_{m+1} e_m^T). The same test runs after every product on the basis built so far, so
// a run stops at the first product where every wanted pair has converged, mid-cycle included.
// Memory: m + 1 basis vectors plus up to m - 2 during a restart.
// Step-wise: start(), step() until it returns true, result(); state() and basis() can be saved and
// handed to restore() to resume exactly.
template <class Space, class Operator>
class LanczosEigensolver {
 public:
  using Vector = typename Space::vector_type;

  LanczosEigensolver(const Space& space, const Operator& op, LanczosOptions options)
      : space_(space), op_(op), options_(options) {
    const std::int64_t n = space.global_size();
    wanted_ = options.top + options.bottom;
    if (options.top < 0 || options.bottom < 0 || wanted_ == 0)
      throw std::invalid_argument("lanczos: ask for at least one eigenpair (top or bottom)");
    if (wanted_ > n)
      throw std::invalid_argument("lanczos: " + std::to_string(wanted_) +
                                  " eigenpairs asked of a dimension-" + std::to_string(n) + " operator");
    state_.m = static_cast<int>(std::min<std::int64_t>(options.max_basis, n));
    if (state_.m < wanted_ + 2 && state_.m < n)
      throw std::invalid_argument("lanczos: max_basis must be at least top + bottom + 2");
  }

  // Begins from `start`, or from a normal random vector (options.seed) when start is not given.
  void start(const Vector* start = nullptr) {
    allocate();
    const int m = state_.m;
    state_ = LanczosScalars{};
    state_.m = m;
    state_.projected.assign(static_cast<std::size_t>(m) * m, 0.0);
    if (start) {
      space_.copy(*start, basis_[0]);
    } else {
      space_.fill_normal(basis_[0], options_.seed, options_.stream, state_.random_draws++);
    }
    const double norm = norm2(space_, basis_[0]);
    if (!(norm > 0.0)) throw std::invalid_argument("lanczos: the start vector is zero");
    space_.scale(basis_[0], 1.0 / norm);
  }

  // Resumes from saved scalars and basis vectors [0, scalars.size] (copied in).
  void restore(const LanczosScalars& scalars, const std::vector<Vector>& saved_basis) {
    if (scalars.m != state_.m)
      throw std::invalid_argument("lanczos: saved basis size differs from max_basis");
    allocate();
    state_ = scalars;
    for (int i = 0; i <= scalars.size && i < static_cast<int>(saved_basis.size()); ++i)
      space_.copy(saved_basis[i], basis_[i]);
  }

  // One operator application (extending the basis), or at a full basis the Rayleigh-Ritz step with its
  // convergence test and restart. Returns true when done (converged, or max_restarts reached).
  bool step() {
    if (state_.done) return true;
    const int m = state_.m;
    if (state_.size < m) {
      extend();
      // Mid-cycle test: the leading size x size block of the projected matrix and the coupling beta_s to
      // basis[size] satisfy the same Lanczos relation A V_s = V_s H_s + beta_s v_{s+1} e_s^T as a full
      // basis, so the residual estimates are as good, and a cycle stops as soon as the wanted pairs meet
      // the tolerance instead of filling the basis first (a host eigensolve of at most m x m per product,
      // negligible next to the operator; past kEveryProductUpTo basis vectors, whose O(size^3) eigensolve
      // could rival a cheap operator, every kCheckStride-th product). Skipped right after a breakdown
      // (beta_s = 0): a residual of 0 then only says that the Krylov space is invariant, not that it holds
      // the extremal pairs.
      const int size = state_.size;
      const bool check = size <= kEveryProductUpTo || size % kCheckStride == 0;
      if (size < m && size > wanted_ && check) {
        const double beta = H(size, size - 1);
        if (beta > 0.0) {
          const RitzSelection ritz = select_ritz(leading_block(size), size, beta, options_);
          note_residuals(ritz);
          if (ritz.converged) {
            finish(ritz, size);
            return true;
          }
        }
      }
      return false;
    }
    const RitzSelection ritz = select_ritz(state_.projected, m, state_.beta_m, options_);
    note_residuals(ritz);
    if (ritz.converged || state_.restarts >= options_.max_restarts || m == space_.global_size()) {
      finish(ritz, m);
      return true;
    }
    thick_restart(ritz);
    return false;
  }

  LanczosResult<Vector> solve(const Vector* start_vector = nullptr) {
    start(start_vector);
    while (!step()) {
    }
    return result_;
  }

  const LanczosResult<Vector>& result() const { return result_; }
  const LanczosScalars& state() const { return state_; }
  // max over the wanted pairs of residual / max |theta| at the last Rayleigh-Ritz step (for progress lines;
  // converged when <= tol); infinity before the first.
  double worst_residual_ratio() const { return worst_residual_ratio_; }
  // Basis vectors; [0, state().size] hold the current cycle (index size is the next direction).
  const std::vector<Vector>& basis() const { return basis_; }

 private:
  void allocate() {
    if (!basis_.empty()) return;
    for (int i = 0; i <= state_.m; ++i) basis_.push_back(space_.create("lanczos_v"));
    w_ = space_.create("lanczos_w");
    tmp_ = space_.create("lanczos_tmp");
  }

  static constexpr int kEveryProductUpTo = 128, kCheckStride = 8;

  double& H(int i, int j) { return state_.projected[static_cast<std::size_t>(j) * state_.m + i]; }

  // The leading size x size block of the projected matrix, column-major.
  std::vector<double> leading_block(int size) {
    std::vector<double> block(static_cast<std::size_t>(size) * size);
    for (int j = 0; j < size; ++j)
      for (int i = 0; i < size; ++i) block[static_cast<std::size_t>(j) * size + i] = H(i, j);
    return block;
  }

  void note_residuals(const RitzSelection& ritz) {
    worst_residual_ratio_ = 0.0;
    for (const auto* wanted : {&ritz.top, &ritz.bottom}) {
      for (const int index : *wanted) {
        const double ratio = ritz.scale > 0.0 ? ritz.residuals[index] / ritz.scale : 0.0;
        worst_residual_ratio_ = std::max(worst_residual_ratio_, ratio);
      }
    }
  }

  // basis[j] -> A basis[j], orthogonalised against basis[0..j]; fills H(j, j) and the coupling to j + 1.
  void extend() {
    const int j = state_.size, m = state_.m;
    op_.apply(basis_[j], w_);
    ++state_.applications;
    // The components of A v_j along v_0 .. v_{j-1} are known: column j of H holds them (beta_{j-1}, or the
    // arrowhead after a restart; zero elsewhere). The first pass removes those and alpha_j = v_j^T w; one
    // classical Gram-Schmidt pass over the whole basis then removes what rounding left, as the second pass
    // of CGS2 would. Two full passes cost twice the vector traffic for the same orthogonality.
    known_.clear();
    known_coeffs_.clear();
    for (int k = 0; k < j; ++k) {
      if (H(k, j) == 0.0) continue;
      known_.push_back(&basis_[k]);
      known_coeffs_.push_back(H(k, j));
    }
    if (known_.size() == 1) {
      space_.axpby(-known_coeffs_[0], *known_[0], 1.0, w_);
    } else if (!known_.empty()) {
      space_.combine(known_.size(), known_.data(), known_coeffs_.data(), tmp_);
      space_.axpby(-1.0, tmp_, 1.0, w_);
    }
    const double alpha = dot(space_, basis_[j], w_);
    space_.axpby(-alpha, basis_[j], 1.0, w_);
    {
      std::vector<const Vector*> xs(static_cast<std::size_t>(j) + 1), ys(xs.size(), &w_);
      for (int k = 0; k <= j; ++k) xs[k] = &basis_[k];
      h_.resize(xs.size());
      space_.dots(xs.size(), xs.data(), ys.data(), h_.data());
      space_.combine(xs.size(), xs.data(), h_.data(), tmp_);
      space_.axpby(-1.0, tmp_, 1.0, w_);
    }
    H(j, j) = alpha + h_[j];
    double beta = norm2(space_, w_);
    state_.scale = std::max({state_.scale, std::abs(H(j, j)), beta});
    if (beta <= detail::kBreakdown * state_.scale && j + 1 >= space_.global_size()) {
      beta = 0.0;  // the basis spans the whole space; basis[j + 1] is never used
      space_.fill(basis_[j + 1], 0.0);
    } else if (beta <= detail::kBreakdown * state_.scale) {
      // Invariant subspace: continue with a random direction orthogonal to the basis, coupled by 0.
      beta = 0.0;
      space_.fill_normal(w_, options_.seed, options_.stream, state_.random_draws++);
      detail::cgs2(space_, basis_, static_cast<std::size_t>(j) + 1, w_, tmp_, h_);
      space_.copy(w_, basis_[j + 1]);
      space_.scale(basis_[j + 1], 1.0 / norm2(space_, w_));
    } else {
      space_.copy(w_, basis_[j + 1]);
      space_.scale(basis_[j + 1], 1.0 / beta);
    }
    if (j + 1 < m) {
      H(j + 1, j) = H(j, j + 1) = beta;
    } else {
      state_.beta_m = beta;
    }
    ++state_.size;
  }

  // New basis: the kept Ritz vectors, then the residual direction basis[m]; H becomes diag(theta) with
  // the arrowhead s_i = beta_m * y_{m,i} coupling them to it.
  void thick_restart(const RitzSelection& ritz) {
    const int m = state_.m, l = static_cast<int>(ritz.keep.size());
    while (static_cast<int>(spare_.size()) < l) spare_.push_back(space_.create("lanczos_ritz"));
    std::vector<const Vector*> xs(m);
    for (int i = 0; i < m; ++i) xs[i] = &basis_[i];
    std::vector<double> coeffs(m);
    for (int k = 0; k < l; ++k) {
      for (int i = 0; i < m; ++i) coeffs[i] = ritz.eig.vector(i, ritz.keep[k]);
      space_.combine(m, xs.data(), coeffs.data(), spare_[k]);
    }
    std::swap(basis_[l], basis_[m]);
    for (int k = 0; k < l; ++k) std::swap(basis_[k], spare_[k]);
    std::fill(state_.projected.begin(), state_.projected.end(), 0.0);
    for (int k = 0; k < l; ++k) {
      H(k, k) = ritz.eig.values[ritz.keep[k]];
      H(k, l) = H(l, k) = state_.beta_m * ritz.eig.vector(m - 1, ritz.keep[k]);
    }
    state_.size = l;
    state_.beta_m = 0.0;
    ++state_.restarts;
  }

  // The result from the Ritz pairs of basis[0, size).
  void finish(const RitzSelection& ritz, int size) {
    const int m = size;
    result_ = LanczosResult<Vector>{};
    result_.converged = ritz.converged;
    result_.restarts = state_.restarts;
    result_.applications = state_.applications;
    std::vector<const Vector*> xs(m);
    for (int i = 0; i < m; ++i) xs[i] = &basis_[i];
    std::vector<double> coeffs(m);
    auto take = [&](const std::vector<int>& indices, RitzPairs<Vector>& out) {
      for (const int index : indices) {
        out.values.push_back(ritz.eig.values[index]);
        out.residuals.push_back(ritz.residuals[index]);
        if (!options_.want_vectors) continue;
        for (int i = 0; i < m; ++i) coeffs[i] = ritz.eig.vector(i, index);
        Vector u = space_.create("ritz_vector");
        space_.combine(m, xs.data(), coeffs.data(), u);
        out.vectors.push_back(u);
      }
    };
    take(ritz.top, result_.top);
    take(ritz.bottom, result_.bottom);
    state_.done = true;
  }

  Space space_;
  const Operator& op_;
  LanczosOptions options_;
  int wanted_ = 0;
  LanczosScalars state_;
  std::vector<Vector> basis_, spare_;
  Vector w_, tmp_;
  std::vector<double> h_, known_coeffs_;
  std::vector<const Vector*> known_;
  LanczosResult<Vector> result_;
  double worst_residual_ratio_ = std::numeric_limits<double>::infinity();
};

}  // namespace skein::solvers
