// DCDM's scale-invariant training loss ||b - alpha A f||^2, alpha = f.b / (f.A f), and its gradient with
// respect to the network output f, derived by hand (reference notes §1.4).
#pragma once

#include "solvers/poisson_operator.hpp"

namespace skein::dcdm_train {

// Scratch fields in op's layout, allocated once per operator.
struct LossWorkspace {
  explicit LossWorkspace(const solvers::PoissonOperator& op)
      : af(op.make_vector("dcdm::Af")),
        residual(op.make_vector("dcdm::res")),
        a_residual(op.make_vector("dcdm::Ares")) {}
  solvers::PoissonField af, residual, a_residual;
};

// Returns L = ||b - alpha A f||^2 and writes dL/df into dloss_df (owned cells):
//   dL/df = -(2 / t) (res . A f) (b - 2 alpha A f) - 2 alpha A res,  t = f.A f, res = b - alpha A f
// (alpha's own dependence on f gives the first term; A symmetric). f with f.A f = 0 gives L = ||b||^2 and
// a zero gradient. Collective on op's decomposition.
double dcdm_loss(const solvers::PoissonOperator& op, const solvers::PoissonField& b,
                 const solvers::PoissonField& f, const solvers::PoissonField& dloss_df, LossWorkspace& work);

}  // namespace skein::dcdm_train
