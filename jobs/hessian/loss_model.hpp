// The data-parallel loss of an MLP and the curvature operator (Hessian or Gauss-Newton) the eigensolvers
// see: each rank evaluates its own samples, one allreduce per product gives the mean over all of them (under
// comm.reproducible: exact sums of per-row-group products, the same bits at any rank count).
#pragma once

#include "comm/communicator.hpp"
#include "comm/exact_sum.hpp"
#include "comm/view_collectives.hpp"
#include "jobs/hessian/settings.hpp"
#include "solvers/nn.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace skein::hessian {

namespace detail {

// comm.reproducible: the per-column max |term| and the per-column fixed-point sum over the `groups` rows of
// a row-major groups x length table (comm/exact_sum.hpp). A thread takes kGroupColumns adjacent columns and
// runs its inner loop across them, so the loop over a row is contiguous and vectorised (one column per
// thread, looping down the groups, ran 3x slower).
constexpr std::int64_t kGroupColumns = 32;

template <class Scalar>
struct GroupColumnMax {
  Kokkos::View<const Scalar*> terms;
  std::int64_t groups, length;
  Kokkos::View<double*> max;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t chunk) const {
    const std::int64_t first = chunk * kGroupColumns;
    const std::int64_t count = length - first < kGroupColumns ? length - first : kGroupColumns;
    double m[kGroupColumns] = {};
    for (std::int64_t g = 0; g < groups; ++g) {
      const Scalar* row = terms.data() + g * length + first;
      for (std::int64_t j = 0; j < count; ++j) {
        const double a = comm::exact_magnitude(static_cast<double>(row[j]));
        m[j] = a > m[j] ? a : m[j];
      }
    }
    for (std::int64_t j = 0; j < count; ++j) max(first + j) = m[j];
  }
};

template <class Scalar>
struct GroupColumnExact {
  Kokkos::View<const Scalar*> terms;
  std::int64_t groups, length;
  Kokkos::View<const comm::ExactScale*> scales;
  Kokkos::View<comm::ExactInt*> sums;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t chunk) const {
    const std::int64_t first = chunk * kGroupColumns;
    const std::int64_t count = length - first < kGroupColumns ? length - first : kGroupColumns;
    // comm::accumulate_exact's pieces per column (groups are far fewer than kExactPartsTerms), in arrays
    // across the columns; a column without the fast path (factor 0) gets zeros here and is redone below.
    double factor[kGroupColumns], high[kGroupColumns] = {}, middle[kGroupColumns] = {},
                                  low[kGroupColumns] = {};
    for (std::int64_t j = 0; j < count; ++j) factor[j] = scales(first + j).factor;
    for (std::int64_t g = 0; g < groups; ++g) {
      const Scalar* row = terms.data() + g * length + first;
      for (std::int64_t j = 0; j < count; ++j) {
        comm::ExactParts parts;
        comm::accumulate_exact(static_cast<double>(row[j]), factor[j], parts);
        high[j] += parts.high;
        middle[j] += parts.middle;
        low[j] += parts.low;
      }
    }
    for (std::int64_t j = 0; j < count; ++j) {
      const comm::ExactScale scale = scales(first + j);
      if (scale.factor != 0) {
        comm::ExactParts parts;
        parts.high = high[j];
        parts.middle = middle[j];
        parts.low = low[j];
        sums(first + j) = comm::exact_from_parts(parts);
      } else {
        comm::ExactInt sum = 0;
        for (std::int64_t g = 0; g < groups; ++g)
          sum += comm::to_exact(static_cast<double>(terms(g * length + first + j)), scale);
        sums(first + j) = sum;
      }
    }
  }
};

}  // namespace detail

// comm.reproducible's sum over ranks of per-group parameter vectors: each of this rank's groups writes its
// own zeroed row of a table, then every column (and optionally a per-group scalar, the loss, as one more
// column) is summed exactly across ranks: two allreduces, the same bits whichever ranks hold the groups.
template <class Scalar>
class ExactGroupSum {
 public:
  using Vector = Kokkos::View<Scalar*, Kokkos::DefaultExecutionSpace::memory_space>;

  explicit ExactGroupSum(std::int64_t length) : length_(length) {}

  // Zeroes rows [0, groups) of the table (grown when needed).
  void begin(std::int64_t groups) {
    groups_ = groups;
    if (static_cast<std::int64_t>(terms_.extent(0)) < groups * length_)
      terms_ =
          Vector(Kokkos::view_alloc(Kokkos::WithoutInitializing, "hessian::group_terms"), groups * length_);
    Kokkos::deep_copy(Kokkos::subview(terms_, std::make_pair(std::int64_t{0}, groups * length_)), Scalar(0));
  }

  // Group g's row: a parameter vector the group's product accumulates into.
  Vector row(std::int64_t g) const { return Vector(terms_.data() + g * length_, length_); }

  // out = the exact sum over every rank's rows; returns the exact sum of every rank's `scalars` (one per
  // group, or nullptr for none). Collective.
  double finish(const comm::Communicator& comm, const Vector& out, const double* scalars) {
    const auto columns = static_cast<std::size_t>(length_) + 1;
    const auto range = Kokkos::RangePolicy<Kokkos::IndexType<std::int64_t>>(
        0, (length_ + detail::kGroupColumns - 1) / detail::kGroupColumns);
    if (max_.extent(0) == 0) {
      max_ = Kokkos::View<double*>("hessian::group_max", length_);
      scales_ = Kokkos::View<comm::ExactScale*>("hessian::group_scales", length_);
      sums_ = Kokkos::View<comm::ExactInt*>("hessian::group_sums", length_);
    }
    Kokkos::parallel_for("hessian::group_column_max", range,
                         detail::GroupColumnMax<Scalar>{terms_, groups_, length_, max_});
    std::vector<double> max(columns, 0.0);
    Kokkos::deep_copy(Kokkos::View<double*, Kokkos::HostSpace>(max.data(), length_), max_);
    for (std::int64_t g = 0; scalars != nullptr && g < groups_; ++g)
      max.back() = std::max(max.back(), comm::exact_magnitude(scalars[g]));
    std::vector<comm::ExactScale> scales(columns);
    comm::exact_agree_scales(comm, columns, max.data(), scales.data());
    Kokkos::deep_copy(scales_,
                      Kokkos::View<const comm::ExactScale*, Kokkos::HostSpace>(scales.data(), length_));
    Kokkos::parallel_for("hessian::group_column_exact", range,
                         detail::GroupColumnExact<Scalar>{terms_, groups_, length_, scales_, sums_});
    std::vector<comm::ExactInt> sums(columns, 0);
    Kokkos::deep_copy(Kokkos::View<comm::ExactInt*, Kokkos::HostSpace>(sums.data(), length_), sums_);
    for (std::int64_t g = 0; scalars != nullptr && g < groups_; ++g)
      sums.back() += comm::to_exact(scalars[g], scales.back());
    std::vector<double> result(columns);
    comm::exact_finish(comm, columns, sums.data(), scales.data(), result.data());
    auto host = Kokkos::create_mirror_view(out);
    for (std::int64_t i = 0; i < length_; ++i) host(i) = static_cast<Scalar>(result[i]);
    Kokkos::deep_copy(out, host);
    return result.back();
  }

 private:
  std::int64_t length_;
  std::int64_t groups_ = 0;
  Vector terms_;
  Kokkos::View<double*> max_;
  Kokkos::View<comm::ExactScale*> scales_;
  Kokkos::View<comm::ExactInt*> sums_;
};

// This rank's rows (or its part of a minibatch) and the global count the mean divides by. The Mlp's
// workspaces hold chunk_rows samples; larger shards are processed in chunks.
//
// Grouped (comm.reproducible, the constructor taking groups): the rank's samples come as whole row groups
// (jobs/hessian/inputs.hpp), each group's loss, gradient and products computed on their own (one chunk per
// group, the same BLAS calls on any rank) and summed exactly across ranks (ExactGroupSum): the results are
// the same bits at any rank count. With `mlp_per_group` each group has its own Mlp, so that repeated
// products at the same parameters keep every group's forward and backward pass (memory: the whole shard's
// workspaces, as the plain loss with one chunk); else one Mlp serves every group and recomputes them.
template <class Scalar>
class DataParallelLoss {
 public:
  using Vector = Kokkos::View<Scalar*, Kokkos::DefaultExecutionSpace::memory_space>;
  using Batch = solvers::nn::Batch<Scalar>;

  DataParallelLoss(const comm::Communicator& comm, const solvers::nn::MlpShape& shape, Batch batch,
                   std::int64_t global_rows, std::int64_t chunk_rows)
      : comm_(&comm),
        batch_(batch),
        global_rows_(global_rows),
        weight_(1.0 / static_cast<double>(global_rows)) {
    mlps_.push_back(std::make_unique<solvers::nn::Mlp<Scalar>>(
        shape, std::max<std::int64_t>(1, std::min(chunk_rows, batch.rows()))));
  }

  // Grouped: `groups` are this rank's groups in any order (each its own rows, in a fixed order); an Mlp
  // holds chunk_rows rows (rank-count independent, so a group is split into the same chunks anywhere).
  DataParallelLoss(const comm::Communicator& comm, const solvers::nn::MlpShape& shape,
                   std::vector<Batch> groups, std::int64_t global_rows, std::int64_t chunk_rows,
                   bool mlp_per_group)
      : comm_(&comm),
        groups_(std::move(groups)),
        grouped_(true),
        global_rows_(global_rows),
        weight_(1.0 / static_cast<double>(global_rows)),
        exact_(std::make_unique<ExactGroupSum<Scalar>>(shape.parameter_count())) {
    const std::int64_t mlps = mlp_per_group ? static_cast<std::int64_t>(groups_.size()) : 1;
    for (std::int64_t g = 0; g < std::max<std::int64_t>(1, mlps); ++g) {
      const std::int64_t rows =
          mlp_per_group && !groups_.empty() ? std::min(chunk_rows, groups_[g].rows()) : chunk_rows;
      mlps_.push_back(std::make_unique<solvers::nn::Mlp<Scalar>>(shape, std::max<std::int64_t>(1, rows)));
    }
  }

  // Another batch of at most the first batch's rows on this rank (a training minibatch), of
  // `global_rows` samples over all ranks.
  void set_batch(const Batch& batch, std::int64_t global_rows) {
    batch_ = batch;
    global_rows_ = global_rows;
    weight_ = 1.0 / static_cast<double>(global_rows);
  }

  const solvers::nn::MlpShape& shape() const { return mlps_.front()->shape(); }
  std::int64_t global_rows() const { return global_rows_; }

  double loss(const Vector& params) {
    if (!grouped_) return comm_->allreduce(mlps_.front()->loss(params, batch_, weight_), comm::Op::sum);
    std::vector<double> losses(groups_.size());
    for (std::size_t g = 0; g < groups_.size(); ++g) losses[g] = mlp(g).loss(params, groups_[g], weight_);
    return comm::exact_sum(*comm_, losses.data(), losses.size());
  }

  // grad = the gradient of the mean loss (overwritten); returns the mean loss.
  double gradient(const Vector& params, const Vector& grad) {
    if (grouped_) {
      return gradient_by_group(params, grad, static_cast<std::int64_t>(groups_.size()), global_rows_,
                               [&](std::int64_t g) { return groups_[g]; });
    }
    Kokkos::deep_copy(grad, Scalar(0));
    const double local = mlps_.front()->gradient(params, batch_, weight_, grad);
    comm_->allreduce(grad, comm::Op::sum);
    return comm_->allreduce(local, comm::Op::sum);
  }

  // Grouped, the batch given group by group (a training minibatch): group_batch(g) returns this rank's
  // group g of `groups`, and may reuse one buffer (each is used before the next is asked for); the mean is
  // over `global_rows` samples. grad = the gradient of the mean loss; returns the mean loss. Collective.
  template <class GroupBatch>
  double gradient_by_group(const Vector& params, const Vector& grad, std::int64_t groups,
                           std::int64_t global_rows, GroupBatch&& group_batch) {
    const double weight = 1.0 / static_cast<double>(global_rows);
    exact_->begin(groups);
    std::vector<double> losses(static_cast<std::size_t>(groups));
    for (std::int64_t g = 0; g < groups; ++g)
      losses[g] = mlp(g).gradient(params, group_batch(g), weight, exact_->row(g));
    return exact_->finish(*comm_, grad, losses.data());
  }

  // out = H v or G v of the mean loss at params (overwritten).
  void curvature_product(OperatorKind kind, const Vector& params, const Vector& v, const Vector& out) {
    if (grouped_) {
      exact_->begin(static_cast<std::int64_t>(groups_.size()));
      for (std::size_t g = 0; g < groups_.size(); ++g)
        product(mlp(g), kind, params, groups_[g], v, exact_->row(g));
      exact_->finish(*comm_, out, nullptr);
      return;
    }
    Kokkos::deep_copy(out, Scalar(0));
    product(*mlps_.front(), kind, params, batch_, v, out);
    comm_->allreduce(out, comm::Op::sum);
  }

  // Fraction of samples whose largest output is their label (classification only).
  double accuracy(const Vector& params) {
    std::int64_t correct = 0;
    if (grouped_) {
      for (std::size_t g = 0; g < groups_.size(); ++g) correct += mlp(g).correct(params, groups_[g]);
    } else {
      correct = mlps_.front()->correct(params, batch_);
    }
    correct = comm_->allreduce(correct, comm::Op::sum);
    return static_cast<double>(correct) / static_cast<double>(global_rows_);
  }

 private:
  solvers::nn::Mlp<Scalar>& mlp(std::size_t group) { return *mlps_[mlps_.size() == 1 ? 0 : group]; }

  void product(solvers::nn::Mlp<Scalar>& mlp, OperatorKind kind, const Vector& params, const Batch& batch,
               const Vector& v, const Vector& out) {
    if (kind == OperatorKind::hessian) {
      mlp.hvp(params, batch, weight_, v, out);
    } else {
      mlp.ggn_vp(params, batch, weight_, v, out);
    }
  }

  const comm::Communicator* comm_;
  Batch batch_;                // plain: this rank's samples
  std::vector<Batch> groups_;  // grouped: this rank's row groups
  bool grouped_ = false;
  std::vector<std::unique_ptr<solvers::nn::Mlp<Scalar>>> mlps_;
  std::int64_t global_rows_;
  double weight_;
  std::unique_ptr<ExactGroupSum<Scalar>> exact_;
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
