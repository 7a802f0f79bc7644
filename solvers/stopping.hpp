// The stopping rule, per-iteration report and result shared by every iterative linear solver in skein
// (CG, PCG, multigrid-PCG, DCDM), so that their histories and "converged" mean the same thing.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

namespace skein::solvers {

// Converged when ||r||_2 / ||b||_2 <= tol; gives up after max_iters iterations. A zero right-hand side
// is converged at once with x = 0 (relative residual 0).
struct StoppingRule {
  double tol = 1e-8;
  int max_iters = 1000;
  // DCDM only: gives up when the relative residual has fallen less than 1% over the last `stall_iters`
  // iterations (0: never). Its directions come from a network that may not suit the problem, and then it
  // creeps for ever; CG's residual must fall in exact arithmetic and may plateau on the way, so CG ignores
  // it.
  int stall_iters = 0;

  bool converged(double relative_residual) const { return relative_residual <= tol; }
  bool exhausted(int iterations) const { return iterations >= max_iters; }
  // `history`: the relative residual before the first iteration and after each one.
  bool stalled(const std::vector<double>& history) const {
    if (stall_iters <= 0 || history.size() <= static_cast<std::size_t>(stall_iters)) return false;
    return history.back() > 0.99 * history[history.size() - 1 - static_cast<std::size_t>(stall_iters)];
  }
};

// What a solver reports after each iteration (to the hook) and at the end.
struct IterationInfo {
  int iteration = 0;               // iterations completed
  double relative_residual = 0.0;  // ||r|| / ||b|| after this iteration
  double residual_norm = 0.0;      // ||r||
};

struct SolveResult {
  int iterations = 0;
  bool converged = false;
  double relative_residual = 0.0;
  // Relative residual before the first iteration and after each one: iterations + 1 entries.
  std::vector<double> residual_history;
  // The operator or preconditioner was found not to be SPD (p.Ap <= 0 or r.z <= 0) or produced NaN.
  bool breakdown = false;
  // DCDM gave up: see StoppingRule::stall_iters.
  bool stalled = false;
  // The per-iteration hook asked to stop (e.g. to checkpoint) before convergence.
  bool stopped = false;
};

// Called after every iteration; return false to stop the solve (it can be resumed from the solver's state).
using IterationHook = std::function<bool(const IterationInfo&)>;

}  // namespace skein::solvers
