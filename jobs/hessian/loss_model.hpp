// The data-parallel loss of an MLP and the curvature operator (Hessian or Gauss-Newton) the eigensolvers
// see: each rank evaluates its own samples, one allreduce per product gives the mean over all of them.
#pragma once

#include "comm/communicator.hpp"
#include "comm/view_collectives.hpp"
#include "jobs/hessian/settings.hpp"
#include "solvers/nn.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

namespace skein::hessian {

// This rank's rows (or its part of a minibatch) and the global count the mean divides by. The Mlp's
// workspaces hold chunk_rows samples; larger shards are processed in chunks.
template <class Scalar>
class DataParallelLoss {
 public:
  using Vector = Kokkos::View<Scalar*, Kokkos::DefaultExecutionSpace::memory_space>;

  DataParallelLoss(const comm::Communicator& comm, const solvers::nn::MlpShape& shape,
                   solvers::nn::Batch<Scalar> batch, std::int64_t global_rows, std::int64_t chunk_rows)
      : comm_(&comm),
        mlp_(shape, std::max<std::int64_t>(1, std::min(chunk_rows, batch.rows()))),
        batch_(batch),
        global_rows_(global_rows),
        weight_(1.0 / static_cast<double>(global_rows)) {}

  // Another batch of at most the first batch's rows on this rank (a training minibatch), of
  // `global_rows` samples over all ranks.
  void set_batch(const solvers::nn::Batch<Scalar>& batch, std::int64_t global_rows) {
    batch_ = batch;
    global_rows_ = global_rows;
    weight_ = 1.0 / static_cast<double>(global_rows);
  }

  const solvers::nn::MlpShape& shape() const { return mlp_.shape(); }
  std::int64_t global_rows() const { return global_rows_; }

  double loss(const Vector& params) {
    return comm_->allreduce(mlp_.loss(params, batch_, weight_), comm::Op::sum);
  }

  // grad = the gradient of the mean loss (overwritten); returns the mean loss.
  double gradient(const Vector& params, const Vector& grad) {
    Kokkos::deep_copy(grad, Scalar(0));
    const double local = mlp_.gradient(params, batch_, weight_, grad);
    comm_->allreduce(grad, comm::Op::sum);
    return comm_->allreduce(local, comm::Op::sum);
  }

  // out = H v or G v of the mean loss at params (overwritten).
  void curvature_product(OperatorKind kind, const Vector& params, const Vector& v, const Vector& out) {
    Kokkos::deep_copy(out, Scalar(0));
    if (kind == OperatorKind::hessian) {
      mlp_.hvp(params, batch_, weight_, v, out);
    } else {
      mlp_.ggn_vp(params, batch_, weight_, v, out);
    }
    comm_->allreduce(out, comm::Op::sum);
  }

  // Fraction of samples whose largest output is their label (classification only).
  double accuracy(const Vector& params) {
    const std::int64_t correct = comm_->allreduce(mlp_.correct(params, batch_), comm::Op::sum);
    return static_cast<double>(correct) / static_cast<double>(global_rows_);
  }

 private:
  const comm::Communicator* comm_;
  solvers::nn::Mlp<Scalar> mlp_;
  solvers::nn::Batch<Scalar> batch_;
  std::int64_t global_rows_;
  double weight_;
};

// The linear operator of the eigensolvers: v -> H v (or G v) at fixed parameters; counts and times its
// applications (the seconds include the allreduce).
template <class Scalar>
class CurvatureOperator {
 public:
  using Vector = Kokkos::View<Scalar*, Kokkos::DefaultExecutionSpace::memory_space>;

  CurvatureOperator(DataParallelLoss<Scalar>& loss, Vector params, OperatorKind kind)
      : loss_(&loss), params_(params), kind_(kind) {}

  void apply(const Vector& v, const Vector& out) const {
    const auto begin = std::chrono::steady_clock::now();
    loss_->curvature_product(kind_, params_, v, out);
    Kokkos::fence();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    seconds_ += seconds;
    ++applications_;
    if (each_.size() < kKeptTimes) each_.push_back(seconds);
  }

  // Median seconds of one application in this process (0 before any): the cost of a repeated product, the
  // forward and backward pass reused (seconds() / applications() also carries the first product's passes,
  // as PyHessian's per-product figure on its kept graph does not).
  double median_seconds() const {
    if (each_.empty()) return 0.0;
    std::vector<double> sorted = each_;
    std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
    return sorted[sorted.size() / 2];
  }

  std::int64_t applications() const { return applications_; }
  // After a restart: the counts carried through the checkpoint.
  void restore_counters(std::int64_t applications, double seconds) {
    applications_ = applications;
    seconds_ = seconds;
  }
  double seconds() const { return seconds_; }

 private:
  DataParallelLoss<Scalar>* loss_;
  Vector params_;
  OperatorKind kind_;
  mutable std::int64_t applications_ = 0;
  mutable double seconds_ = 0.0;
  static constexpr std::size_t kKeptTimes = 100000;
  mutable std::vector<double> each_;  // seconds of each application (since start or the last restore)
};

}  // namespace skein::hessian
