#include "jobs/dcdm_train/loss.hpp"

#include <Kokkos_Core.hpp>

namespace skein::dcdm_train {

double dcdm_loss(const solvers::PoissonOperator& op, const solvers::PoissonField& b,
                 const solvers::PoissonField& f, const solvers::PoissonField& dloss_df, LossWorkspace& work) {
  op.apply(f, work.af);
  const double t = op.dot(f, work.af);
  const double s = op.dot(f, b);
  if (!(t > 0)) {
    Kokkos::deep_copy(dloss_df, 0.0);
    return op.dot(b, b);
  }
  const double alpha = s / t;
  const auto res = work.residual, af = work.af;
  Kokkos::parallel_for(
      "skein::dcdm::loss_residual", Kokkos::RangePolicy<>(0, res.span()),
      KOKKOS_LAMBDA(const std::int64_t x) { res.data()[x] = b.data()[x] - alpha * af.data()[x]; });
  op.mask(res);
  const double loss = op.dot(res, res);
  const double res_af = op.dot(res, af);
  op.apply(res, work.a_residual);
  const auto ares = work.a_residual;
  const double c1 = -2.0 * res_af / t;
  Kokkos::parallel_for(
      "skein::dcdm::loss_gradient", Kokkos::RangePolicy<>(0, res.span()),
      KOKKOS_LAMBDA(const std::int64_t x) {
        dloss_df.data()[x] = c1 * (b.data()[x] - 2.0 * alpha * af.data()[x]) - 2.0 * alpha * ares.data()[x];
      });
  op.mask(dloss_df);
  Kokkos::fence();
  return loss;
}

}  // namespace skein::dcdm_train
