// Conjugate gradients, plain or preconditioned, on any VectorSpace / operator / preconditioner, driven
// either in one call (solve) or step by step with its Krylov state exposed for checkpoint and resume.
#pragma once

#include "solvers/preconditioner.hpp"
#include "solvers/stopping.hpp"
#include "solvers/vector_space.hpp"

#include <cmath>
#include <functional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace skein::solvers {

// The scalars that, with the vectors x, r and p, determine the rest of a CG run exactly.
struct CgScalars {
  int iteration = 0;    // iterations completed
  double rz = 0.0;      // r . z, z = M^-1 r (r . r without a preconditioner)
  double rr = 0.0;      // r . r
  double b_norm = 0.0;  // ||b|| (of the projected b when a projector is given)
  bool done = false;
  bool converged = false;
  bool breakdown = false;
};

// Preconditioned CG (Hestenes-Stiefel with z = M^-1 r). Operator: `void apply(const V& x, const V& y)
// const` computing y = A x, A symmetric positive (semi)definite. Preconditioner: `apply(r, z)`, z = M^-1 r,
// M SPD; IdentityPreconditioner gives plain CG at no extra cost. The operator and preconditioner are held
// by reference and must outlive the solver.
//
// Projector (optional): `void(const V& v)` removing in place the component of v in A's null space (for an
// all-Neumann Poisson matrix, the mean). It is applied to the initial residual (equivalently to b, since
// A x has no null-space component), to every z, and to x at the end, so the iterates stay in range(A).
//
// Per iteration: one operator apply, one preconditioner apply, two global reductions (p.Ap, then r.r and
// r.z fused).
//
// Checkpoint and resume: save x(), r(), p() and scalars() (plus history()); later call resume() with them
// and step() continues bit for bit as if never interrupted (on the same rank count; on another rank count
// the sums regroup, see vector_space.hpp). z is not needed: each step recomputes it from r.
template <class Space, class Operator, class Preconditioner = IdentityPreconditioner<Space>>
class CgSolver {
 public:
  using Vector = typename Space::vector_type;
  using Projector = std::function<void(const Vector&)>;
  static constexpr bool kIdentity = is_identity_preconditioner<Preconditioner>::value;

  CgSolver(const Space& space, const Operator& op, const Preconditioner& preconditioner, StoppingRule rule,
           Projector projector = {})
      : space_(space), op_(op), pc_(preconditioner), rule_(rule), projector_(std::move(projector)) {}

  // Plain CG.
  template <class P = Preconditioner, std::enable_if_t<is_identity_preconditioner<P>::value, int> = 0>
  CgSolver(const Space& space, const Operator& op, StoppingRule rule, Projector projector = {})
      : space_(space), op_(op), pc_(space), rule_(rule), projector_(std::move(projector)) {}

  // Begins a solve of A x = b from the guess in x (x is used in place and holds the answer; both are
  // handles the solver keeps). Returns true when already done (b = 0, or the guess meets the tolerance).
  bool start(const Vector& b, const Vector& x) {
    bind(b, x);
    state_ = CgScalars{};
    history_.clear();
    // r = b - A x
    op_.apply(x_, q_);
    space_.copy(b_, r_);
    space_.axpby(-1.0, q_, 1.0, r_);
    if (projector_) {
      projector_(r_);
      space_.copy(b_, q_);  // ||P b|| measures convergence of the projected system
      projector_(q_);
      state_.b_norm = norm2(space_, q_);
    } else {
      state_.b_norm = norm2(space_, b_);
    }
    if (state_.b_norm == 0.0) {  // the solution is 0
      space_.fill(x_, 0.0);
      space_.fill(r_, 0.0);
      state_.done = state_.converged = true;
      history_.push_back(0.0);
      return true;
    }
    precondition_and_reduce();
    space_.copy(z_, p_);
    history_.push_back(relative_residual());
    if (!check_scalars()) return state_.done;
    state_.converged = rule_.converged(relative_residual());
    state_.done = state_.converged || rule_.exhausted(0);
    if (state_.done) finish();
    return state_.done;
  }

  // Continues a solve saved earlier: b and x as for start() (x holding the saved iterate), r and p the
  // saved residual and search direction (copied in), the saved scalars and residual history.
  void resume(const Vector& b, const Vector& x, const Vector& r, const Vector& p, const CgScalars& scalars,
              std::vector<double> history) {
    bind(b, x);
    space_.copy(r, r_);
    space_.copy(p, p_);
    state_ = scalars;
    history_ = std::move(history);
    if (!kIdentity) pc_.apply(r_, z_);  // only for callers that look at z(); step() recomputes it
  }

  // One CG iteration. Returns true when the solve is done (converged, max_iters, or breakdown); calling it
  // again after that does nothing.
  bool step() {
    if (state_.done) return true;
    op_.apply(p_, q_);
    const double pq = dot(space_, p_, q_);
    if (!(pq > 0.0) || !std::isfinite(pq)) {  // A is not SPD on this direction, or NaN
      state_.breakdown = state_.done = true;
      finish();
      return true;
    }
    const double alpha = state_.rz / pq;
    space_.axpby(alpha, p_, 1.0, x_);
    space_.axpby(-alpha, q_, 1.0, r_);
    if (projector_) projector_(r_);
    const double rz_old = state_.rz;
    precondition_and_reduce();
    ++state_.iteration;
    history_.push_back(relative_residual());
    if (!check_scalars()) return true;
    state_.converged = rule_.converged(relative_residual());
    state_.done = state_.converged || rule_.exhausted(state_.iteration);
    if (state_.done) {
      finish();
      return true;
    }
    space_.axpby(1.0, z_, state_.rz / rz_old, p_);  // p = z + beta p
    return false;
  }

  // start(), then step() until done or until the hook returns false (result().stopped is then true and
  // the solve can go on with step() or be saved).
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
    out.stopped = stopped_;
    return out;
  }

  double relative_residual() const {
    return state_.b_norm > 0.0 ? std::sqrt(state_.rr) / state_.b_norm : 0.0;
  }
  bool done() const { return state_.done; }

  // Krylov state (valid after start() or resume()).
  const CgScalars& scalars() const { return state_; }
  const Vector& x() const { return x_; }
  const Vector& r() const { return r_; }
  const Vector& p() const { return p_; }
  const Vector& z() const { return z_; }
  const std::vector<double>& history() const { return history_; }
  const StoppingRule& rule() const { return rule_; }

 private:
  void bind(const Vector& b, const Vector& x) {
    b_ = b;
    x_ = x;
    if (!allocated_) {
      r_ = space_.create("cg_r");
      p_ = space_.create("cg_p");
      q_ = space_.create("cg_q");
      z_ = kIdentity ? r_ : space_.create("cg_z");
      allocated_ = true;
    }
  }

  // z = M^-1 r (projected), then r.r and r.z in one reduction.
  void precondition_and_reduce() {
    if constexpr (kIdentity) {
      state_.rr = state_.rz = dot(space_, r_, r_);
    } else {
      pc_.apply(r_, z_);
      if (projector_) projector_(z_);
      const Vector* xs[2] = {&r_, &r_};
      const Vector* ys[2] = {&r_, &z_};
      double sums[2];
      space_.dots(2, xs, ys, sums);
      state_.rr = sums[0];
      state_.rz = sums[1];
    }
  }

  // NaN, or r.z <= 0 with r != 0 (M not SPD), ends the solve as a breakdown.
  bool check_scalars() {
    const bool bad =
        !std::isfinite(state_.rr) || !std::isfinite(state_.rz) || (state_.rr > 0.0 && !(state_.rz > 0.0));
    if (bad) {
      state_.breakdown = state_.done = true;
      state_.converged = false;
      finish();
    }
    return !bad;
  }

  void finish() {
    if (projector_) projector_(x_);
  }

  Space space_;
  const Operator& op_;
  std::conditional_t<kIdentity, Preconditioner, const Preconditioner&> pc_;
  StoppingRule rule_;
  Projector projector_;

  Vector b_, x_, r_, p_, q_, z_;
  bool allocated_ = false;
  bool stopped_ = false;
  CgScalars state_;
  std::vector<double> history_;
};

// One-call conveniences.
template <class Space, class Operator>
SolveResult cg(const Space& space, const Operator& op, const typename Space::vector_type& b,
               const typename Space::vector_type& x, StoppingRule rule, const IterationHook& hook = {}) {
  CgSolver<Space, Operator> solver(space, op, rule);
  return solver.solve(b, x, hook);
}

template <class Space, class Operator, class Preconditioner>
SolveResult pcg(const Space& space, const Operator& op, const Preconditioner& preconditioner,
                const typename Space::vector_type& b, const typename Space::vector_type& x, StoppingRule rule,
                const IterationHook& hook = {}) {
  CgSolver<Space, Operator, Preconditioner> solver(space, op, preconditioner, rule);
  return solver.solve(b, x, hook);
}

}  // namespace skein::solvers
