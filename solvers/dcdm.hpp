// The Deep Conjugate Direction Method (Kaneda et al., ICML 2023): search directions from any callable
// (a CNN approximating A^-1 up to scale, a V-cycle, the identity), A-orthogonalised against the last few,
// with an exact line search and the true residual each iteration; step-wise with resumable state.
#pragma once

#include "solvers/poisson_operator.hpp"
#include "solvers/stopping.hpp"
#include "solvers/vector_space.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace skein::solvers {

// The scalars that, with x and the kept directions, determine the rest of a DCDM run exactly.
struct DcdmScalars {
  int iteration = 0;          // iterations completed
  double rr = 0.0;            // r . r of the true residual r = b - A x
  double b_norm = 0.0;        // ||b|| (of the projected b when a projector is given)
  std::vector<double> p_a_p;  // p . A p of the kept directions, oldest first (their count = directions kept)
  bool done = false;
  bool converged = false;
  bool breakdown = false;
  bool stalled = false;  // StoppingRule::stall_iters iterations gained less than 1%
  // Seconds spent in the direction callable (the network's inference), fenced; not part of the numerics,
  // kept here so a checkpoint carries it.
  double direction_seconds = 0.0;
};

// DCDM, exactly the iteration of the paper's code (lib/conjugate_gradient.py::dcdm):
//   q = f(r / ||r||); q -= sum_j (q . A p_j) / (p_j . A p_j) p_j over the last `previous_directions` p_j
//   (classical Gram-Schmidt in the A inner product, all coefficients from the unmodified q); alpha =
//   (q . r) / (q . A q); x += alpha q; r = b - A x recomputed (not updated); stop at ||r|| <= tol ||b||.
// The stopping rule is poisson's other solvers' (relative to ||b||, where the paper divides by ||r0||: the
// same from x = 0, which is how the poisson job starts). Every step is an exact A-norm line search, so the
// A-norm error never grows whatever f returns; f need not be linear, symmetric or even deterministic.
// With f = identity and 2 previous directions it is CG in exact arithmetic.
//
// Direction: `void(const V& r_normalised, const V& q)` writing q (only what a PoissonField's owned cells
// hold matters; the operator refreshes ghosts itself). Projector (optional, `void(const V& v)`): applied to
// the initial residual, to every q before orthogonalisation, and to x at the end. For the Poisson operator
// use dcdm_projector(op): it keeps q at 0 on non-fluid cells (a network knows nothing of solids) and, for
// an all-Neumann problem, in range(A).
//
// Per iteration: one direction, two operator applications (A q and A x), three global reductions (plus
// the projector's). Memory: x, r, the normalised r, q, A q, a scratch vector and 2 vectors per kept
// direction.
//
// Checkpoint and resume: save x(), directions() and scalars() (plus history()); resume() recomputes r and
// the A p_j from them (bit for bit the same at the same rank count), so step() continues as if never
// interrupted.
template <class Space, class Operator>
class DcdmSolver {
 public:
  using Vector = typename Space::vector_type;
  using Direction = std::function<void(const Vector&, const Vector&)>;
  using Projector = std::function<void(const Vector&)>;

  DcdmSolver(const Space& space, const Operator& op, Direction direction, StoppingRule rule,
             Projector projector = {}, int previous_directions = 2)
      : space_(space),
        op_(op),
        direction_(std::move(direction)),
        rule_(rule),
        projector_(std::move(projector)),
        previous_(previous_directions) {
    if (previous_ < 0)
      throw std::invalid_argument("dcdm: previous_directions must be >= 0, got " + std::to_string(previous_));
    if (!direction_) throw std::invalid_argument("dcdm: no direction function");
  }

  // Begins a solve of A x = b from the guess in x (used in place; it holds the answer). Returns true when
  // already done (b = 0, or the guess meets the tolerance).
  bool start(const Vector& b, const Vector& x) {
    bind(b, x);
    state_ = DcdmScalars{};
    history_.clear();
    kept_ = 0;
    true_residual();
    if (projector_) {
      projector_(r_);
      space_.copy(b_, tmp_);
      projector_(tmp_);
      state_.b_norm = norm2(space_, tmp_);
    } else {
      state_.b_norm = norm2(space_, b_);
    }
    state_.rr = dot(space_, r_, r_);
    if (state_.b_norm == 0.0) {
      space_.fill(x_, 0.0);
      space_.fill(r_, 0.0);
      state_.rr = 0.0;
      state_.done = state_.converged = true;
      history_.push_back(0.0);
      return true;
    }
    history_.push_back(relative_residual());
    if (!check_finite()) return true;
    state_.converged = rule_.converged(relative_residual());
    state_.done = state_.converged || rule_.exhausted(0);
    if (state_.done) finish();
    return state_.done;
  }

  // Continues a solve saved earlier: b and x as for start() (x holding the saved iterate), the saved
  // directions (oldest first, as many as scalars.p_a_p has; copied in), scalars and history.
  void resume(const Vector& b, const Vector& x, const std::vector<Vector>& directions,
              const DcdmScalars& scalars, std::vector<double> history) {
    if (directions.size() != scalars.p_a_p.size() || static_cast<int>(directions.size()) > previous_)
      throw std::invalid_argument("dcdm: resume with " + std::to_string(directions.size()) + " directions, " +
                                  std::to_string(scalars.p_a_p.size()) + " p.Ap values, at most " +
                                  std::to_string(previous_) + " kept");
    bind(b, x);
    state_ = scalars;
    history_ = std::move(history);
    state_.stalled = state_.done && !state_.converged && rule_.stalled(history_);  // not in checkpoints
    kept_ = static_cast<int>(directions.size());
    for (int j = 0; j < kept_; ++j) {
      space_.copy(directions[j], p_[j]);
      op_.apply(p_[j], ap_[j]);
    }
    true_residual();
  }

  // One DCDM iteration. Returns true when the solve is done (converged, max_iters, or breakdown).
  bool step() {
    if (state_.done) return true;
    // q = f(r / ||r||)
    space_.axpby(1.0 / std::sqrt(state_.rr), r_, 0.0, rn_);
    const auto begin = std::chrono::steady_clock::now();
    direction_(rn_, q_);
    Kokkos::fence();
    state_.direction_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    if (projector_) projector_(q_);
    // A-orthogonalise against the kept directions (one fused reduction).
    if (kept_ > 0) {
      std::vector<const Vector*> xs(kept_, &q_), ys(kept_);
      for (int j = 0; j < kept_; ++j) ys[j] = &ap_[j];
      std::vector<double> q_ap(kept_);
      space_.dots(kept_, xs.data(), ys.data(), q_ap.data());
      for (int j = kept_ - 1; j >= 0; --j) space_.axpby(-q_ap[j] / state_.p_a_p[j], p_[j], 1.0, q_);
    }
    op_.apply(q_, aq_);
    double sums[2];
    {
      const Vector* xs[2] = {&q_, &q_};
      const Vector* ys[2] = {&aq_, &r_};
      space_.dots(2, xs, ys, sums);
    }
    const double q_a_q = sums[0], q_r = sums[1];
    if (!(q_a_q > 0.0) || !std::isfinite(q_a_q) || !std::isfinite(q_r)) {  // a zero or useless direction
      state_.breakdown = state_.done = true;
      finish();
      return true;
    }
    space_.axpby(q_r / q_a_q, q_, 1.0, x_);
    keep_direction(q_a_q);
    true_residual();
    state_.rr = dot(space_, r_, r_);
    ++state_.iteration;
    history_.push_back(relative_residual());
    if (!check_finite()) return true;
    state_.converged = rule_.converged(relative_residual());
    state_.stalled = !state_.converged && rule_.stalled(history_);
    state_.done = state_.converged || state_.stalled || rule_.exhausted(state_.iteration);
    if (state_.done) finish();
    return state_.done;
  }

  SolveResult solve(const Vector& b, const Vector& x, const IterationHook& hook = {}) {
    start(b, x);
    return run(hook);
  }

  // Continues after resume() (or after a hook stopped solve()).
  SolveResult run(const IterationHook& hook = {}) {
    stopped_ = false;
    bool done = state_.done;
    while (!done) {
      done = step();
      if (hook && !hook(info()) && !done) {
        stopped_ = true;
        break;
      }
    }
    return result();
  }

  IterationInfo info() const {
    return IterationInfo{state_.iteration, relative_residual(), std::sqrt(state_.rr)};
  }

  SolveResult result() const {
    SolveResult out;
    out.iterations = state_.iteration;
    out.converged = state_.converged;
    out.relative_residual = relative_residual();
    out.residual_history = history_;
    out.breakdown = state_.breakdown;
    out.stalled = state_.stalled;
    out.stopped = stopped_;
    return out;
  }

  double relative_residual() const {
    return state_.b_norm > 0.0 ? std::sqrt(state_.rr) / state_.b_norm : 0.0;
  }
  bool done() const { return state_.done; }
  int previous_directions() const { return previous_; }

  const DcdmScalars& scalars() const { return state_; }
  const Vector& x() const { return x_; }
  const Vector& r() const { return r_; }
  // The kept directions, oldest first (scalars().p_a_p.size() of them).
  std::vector<Vector> directions() const { return std::vector<Vector>(p_.begin(), p_.begin() + kept_); }
  const std::vector<double>& history() const { return history_; }
  const StoppingRule& rule() const { return rule_; }

 private:
  void bind(const Vector& b, const Vector& x) {
    b_ = b;
    x_ = x;
    if (!allocated_) {
      r_ = space_.create("dcdm_r");
      rn_ = space_.create("dcdm_r_normalised");
      q_ = space_.create("dcdm_q");
      aq_ = space_.create("dcdm_aq");
      tmp_ = space_.create("dcdm_tmp");
      for (int j = 0; j < previous_; ++j) {
        p_.push_back(space_.create("dcdm_p"));
        ap_.push_back(space_.create("dcdm_ap"));
      }
      allocated_ = true;
    }
  }

  // r = b - A x
  void true_residual() {
    op_.apply(x_, tmp_);
    space_.copy(b_, r_);
    space_.axpby(-1.0, tmp_, 1.0, r_);
  }

  // q and A q become the newest kept direction (handles swap: no copy); the oldest drops out.
  void keep_direction(double q_a_p) {
    if (previous_ == 0) return;
    if (kept_ == previous_) {
      std::rotate(p_.begin(), p_.begin() + 1, p_.end());
      std::rotate(ap_.begin(), ap_.begin() + 1, ap_.end());
      state_.p_a_p.erase(state_.p_a_p.begin());
      --kept_;
    }
    std::swap(p_[kept_], q_);
    std::swap(ap_[kept_], aq_);
    state_.p_a_p.push_back(q_a_p);
    ++kept_;
  }

  bool check_finite() {
    if (std::isfinite(state_.rr)) return true;
    state_.breakdown = state_.done = true;
    state_.converged = false;
    finish();
    return false;
  }

  void finish() {
    if (projector_) projector_(x_);
  }

  Space space_;
  const Operator& op_;
  Direction direction_;
  StoppingRule rule_;
  Projector projector_;
  int previous_ = 2;

  Vector b_, x_, r_, rn_, q_, aq_, tmp_;
  std::vector<Vector> p_, ap_;  // [0, kept_) oldest first
  int kept_ = 0;
  bool allocated_ = false;
  bool stopped_ = false;
  DcdmScalars state_;
  std::vector<double> history_;
};

// DCDM's projector for the Poisson operator: zeroes non-fluid cells and, when op is singular (all
// Neumann), removes the mean over fluid cells. Unlike poisson_projector it is never empty: directions
// from a network are nonzero on solid and air cells. `op` must outlive it.
inline std::function<void(const PoissonField&)> dcdm_projector(const PoissonOperator& op) {
  if (op.singular()) return [&op](const PoissonField& v) { op.remove_mean(v); };
  return [&op](const PoissonField& v) { op.mask(v); };
}

// One-call convenience.
template <class Space, class Operator>
SolveResult dcdm_solve(const Space& space, const Operator& op,
                       typename DcdmSolver<Space, Operator>::Direction direction,
                       const typename Space::vector_type& b, const typename Space::vector_type& x,
                       StoppingRule rule, typename DcdmSolver<Space, Operator>::Projector projector = {},
                       const IterationHook& hook = {}) {
  DcdmSolver<Space, Operator> solver(space, op, std::move(direction), rule, std::move(projector));
  return solver.solve(b, x, hook);
}

}  // namespace skein::solvers
