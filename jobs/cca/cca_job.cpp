#include "jobs/cca/cca_job.hpp"

#include "comm/block_partition.hpp"
#include "engine/error.hpp"
#include "engine/log.hpp"
#include "engine/random.hpp"
#include "io/atomic_output.hpp"
#include "io/hdf5.hpp"
#include "io/hdf5_views.hpp"
#include "io/plink.hpp"
#include "io/state_views.hpp"
#include "jobs/cca/inputs.hpp"
#include "jobs/run_attributes.hpp"
#include "solvers/blas_threads.hpp"
#include "solvers/cca_exact.hpp"
#include "solvers/cca_ey.hpp"
#include "solvers/cca_metrics.hpp"
#include "solvers/dense_blas.hpp"
#include "solvers/feature_block.hpp"
#include "solvers/genotype_block.hpp"

#include <Kokkos_Core.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace skein::cca {

namespace {

using Clock = std::chrono::steady_clock;
using Rows = Kokkos::View<const std::int64_t*>;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Wall seconds and this process's CPU seconds (user, system) of a part of the load, for the log: on a
// shared machine the CPU seconds say what the part costs when the wall time says how busy the machine was.
struct PartTimer {
  Clock::time_point wall = Clock::now();
  double user = 0, system = 0;
  PartTimer() { cpu(user, system); }
  static void cpu(double& user, double& system) {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    user = static_cast<double>(usage.ru_utime.tv_sec) + 1e-6 * static_cast<double>(usage.ru_utime.tv_usec);
    system = static_cast<double>(usage.ru_stime.tv_sec) + 1e-6 * static_cast<double>(usage.ru_stime.tv_usec);
  }
  // "W s (slowest rank), CPU U s user + S s system (all ranks)". Collective.
  std::string text(const comm::Communicator& comm) const {
    double u = 0, s = 0;
    cpu(u, s);
    const double wall_max = comm.allreduce(seconds_since(wall), comm::Op::max);
    const double user_sum = comm.allreduce(u - user, comm::Op::sum);
    const double system_sum = comm.allreduce(s - system, comm::Op::sum);
    return fmt::format("{:.2f} s (slowest rank), CPU {:.2f} s user + {:.2f} s system (all ranks)", wall_max,
                       user_sum, system_sum);
  }
};

constexpr engine::StreamId kValidationStream{0x56414c49u};  // "VALI": which matched samples are held out
constexpr engine::StreamId kShuffleStream{0x53485546u};     // "SHUF": minibatch order, per epoch
constexpr engine::StreamId kWeightStream{0x43434157u};      // "CCAW": initial weights

Kokkos::View<std::int64_t*> rows_view(const std::vector<std::int64_t>& rows, const char* label) {
  Kokkos::View<std::int64_t*> view(std::string(label), rows.size());
  auto host = Kokkos::create_mirror_view(view);
  for (std::size_t i = 0; i < rows.size(); ++i) host(i) = rows[i];
  Kokkos::deep_copy(view, host);
  return view;
}

std::string values_text(const std::vector<double>& values) {
  std::string text;
  for (std::size_t i = 0; i < values.size() && i < 10; ++i)
    text += fmt::format("{}{:.4f}", i ? ", " : "", values[i]);
  if (values.size() > 10) text += ", ...";
  return text;
}

double sum(const std::vector<double>& values) {
  return std::accumulate(values.begin(), values.end(), 0.0);
}

// u R for a k x k row-major R (this rank's rows of u).
template <class Matrix>
Matrix rotate(const Matrix& u, const std::vector<double>& r) {
  using Scalar = typename Matrix::non_const_value_type;
  const std::size_t k = u.extent(1);
  Matrix rotation("cca::rotation", k, k), out("cca::canonical_weights", u.extent(0), k);
  auto host = Kokkos::create_mirror_view(rotation);
  for (std::size_t i = 0; i < k; ++i)
    for (std::size_t j = 0; j < k; ++j) host(i, j) = static_cast<Scalar>(r[i * k + j]);
  Kokkos::deep_copy(rotation, host);
  solvers::blas::gemm(solvers::blas::Op::none, solvers::blas::Op::none, Scalar(1), u, rotation, Scalar(0),
                      out);
  return out;
}

// One evaluation point of the EY run, for /history.
struct Evaluation {
  std::int64_t step = 0;
  std::int64_t samples_seen = 0;
  double seconds = 0;
  double train_tcc = 0, validation_tcc = 0;
  double train_pcc = NAN, validation_pcc = NAN;
};

template <class Scalar, class BlockX>
class CcaJob final : public engine::Job {
 public:
  using BlockY = solvers::DenseFeatureBlock<Scalar>;
  using Matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight>;
  using Ey = solvers::cca::GepEy<BlockX, BlockY>;

  CcaJob(const jobs::JobEnv& env, Settings settings)
      : env_(env), comm_(env.comm), settings_(std::move(settings)) {}

  void load() override;
  bool step() override;
  void finalize() override;
  void save_state(engine::StateWriter& state) const override;
  void restore_state(engine::StateReader& state) override;
  std::uint64_t seed() const override { return settings_.seed; }

 private:
  void read_views();
  void split_samples();
  void solve_reference();
  void shuffle_epoch();
  void evaluate();
  void report(bool force);
  // A DataError on every rank when a streamed view's read failed on any rank (no-op without streams).
  void check_streams() const {
    if (!sources_.empty()) check_sources(comm_, sources_);
  }
  // Whole batches; the last one of an epoch also takes the remainder (fewer than batch_size rows), so no
  // minibatch is too small for the two halves the loss needs.
  std::int64_t steps_per_epoch() const {
    return std::max<std::int64_t>(1, static_cast<std::int64_t>(train_.size()) / settings_.batch_size);
  }
  solvers::cca::SubspaceScores scores(const Matrix& ux, const Matrix& uy,
                                      const Kokkos::View<std::int64_t*>& rows) const {
    return solvers::cca::subspace_scores(comm_, *x_, *y_, ux, uy, Rows(rows), settings_.alpha,
                                         settings_.alpha);
  }

  const jobs::JobEnv& env_;
  const comm::Communicator& comm_;
  Settings settings_;

  SampleMatch match_;
  std::optional<io::PlinkGenotypes> genotypes_;  // x from PLINK: the packed records the block reads
  std::vector<std::string> x_names_, y_names_;
  std::int64_t p_ = 0, q_ = 0;
  Matrix x_values_, y_values_;  // HDF5 views' columns held in memory (the dense blocks refer to them)
  bool stream_x_ = false, stream_y_ = false;
  std::vector<std::shared_ptr<const Hdf5ColumnSource<Scalar>>> sources_;  // streamed views
  std::unique_ptr<BlockX> x_;
  std::unique_ptr<BlockY> y_;
  std::vector<std::int64_t> train_, validation_;  // matched-sample indices (rows of both blocks)
  Kokkos::View<std::int64_t*> train_rows_, validation_rows_;

  std::unique_ptr<Ey> ey_;
  std::optional<solvers::cca::ExactSolution<Scalar>> exact_;  // solver=exact, or the reference of an EY run
  std::vector<double> exact_train_, exact_validation_;        // the exact weights' subspace eigenvalues
  double exact_seconds_ = 0;

  // EY progress: epoch, step within it (a checkpoint boundary may fall anywhere), this epoch's order.
  std::int64_t epoch_ = 0, epoch_step_ = 0;
  std::vector<std::int64_t> order_;
  Kokkos::View<std::int64_t*> batch_rows_;
  std::vector<double> objectives_;
  std::vector<Evaluation> evaluations_;
  double solve_seconds_ = 0, load_seconds_ = 0;
  bool done_ = false;
  Clock::time_point last_report_, progress_start_;
  std::int64_t progress_start_step_ = 0;
};

template <class Scalar, class BlockX>
void CcaJob<Scalar, BlockX>::load() {
  const auto begin = Clock::now();
  const PartTimer load_timer;
  if (comm_.exact_sums()) {
    // comm.reproducible: OpenBLAS's threaded kernels split some sums by thread (LAPACK's eigensolvers, the
    // exact solver's products gave values 1 ulp apart at 1 and 2 threads), and ranks bound to a core or not
    // get different thread counts; one thread per rank makes every product the same bits everywhere.
    solvers::blas::set_threads(1);
  }
  read_views();
  load_seconds_ = comm_.allreduce(seconds_since(begin), comm::Op::max);
  engine::Log::user().info("cca: load: {}", load_timer.text(comm_));
  engine::Log::user().info(
      "cca: x {} ({} samples x {} {}), y {} ({} x {}); {} matched{}, {} training, {} validation; {} ranks, "
      "loaded "
      "in {:.2f} s",
      settings_.x.text, match_.x_samples, p_, settings_.x.plink ? "SNPs" : "features", settings_.y.text,
      match_.y_samples, q_, match_.x_rows.size(),
      match_.by_id
          ? fmt::format(" by id ({} of x and {} of y unmatched)", match_.unmatched_x(), match_.unmatched_y())
          : " by row",
      train_.size(), validation_.size(), comm_.size(), load_seconds_);
  if (settings_.solver == SolverKind::exact || settings_.reference) solve_reference();
  if (settings_.solver == SolverKind::exact) return;

  const auto optimizer = settings_.optimizer == OptimizerKind::sgd ? solvers::cca::Optimizer::sgd
                                                                   : solvers::cca::Optimizer::adam;
  solvers::cca::EyOptions options = solvers::cca::default_options(settings_.alpha, settings_.alpha, optimizer,
                                                                  settings_.epochs * steps_per_epoch());
  if (!settings_.cosine_schedule) options.schedule = solvers::cca::Schedule::constant;
  options.components = settings_.components;
  if (settings_.lr > 0) options.learning_rate = settings_.lr;
  options.momentum = settings_.momentum;
  options.seed = settings_.seed;
  options.stream = kWeightStream;
  ey_ = std::make_unique<Ey>(comm_, *x_, *y_, options);
  batch_rows_ = Kokkos::View<std::int64_t*>("cca::batch_rows", train_.size());
  shuffle_epoch();
  const std::int64_t first =
      std::min<std::int64_t>(settings_.batch_size, static_cast<std::int64_t>(order_.size()));
  ey_->initialize(
      Rows(Kokkos::subview(rows_view(order_, "cca::order"), std::make_pair(std::int64_t{0}, first))));
  check_streams();
  progress_start_ = last_report_ = Clock::now();
  engine::Log::user().info(
      "cca: {} by GEP-EY, k = {}, {} with learning rate {:g}{}{}, batch {}, {} epochs of {} steps",
      to_string(settings_.method), settings_.components,
      settings_.optimizer == OptimizerKind::adam ? "adam" : "sgd", options.learning_rate,
      options.relative_learning_rate ? " (relative)" : "",
      settings_.cosine_schedule ? ", the peak of a cosine schedule" : "", settings_.batch_size,
      settings_.epochs, steps_per_epoch());
}

template <class Scalar, class BlockX>
void CcaJob<Scalar, BlockX>::read_views() {
  const std::string x_name =
      settings_.x.plink ? settings_.x.path + ".bed" : settings_.x.path + ":" + settings_.x.dataset;
  const std::string y_name = settings_.y.path + ":" + settings_.y.dataset;
  const PartTimer setup_timer;
  std::vector<std::string> x_ids;
  std::int64_t x_samples = 0;
  if (settings_.x.plink) {
    // comm.reproducible: whole column groups per rank (read_views' x_columns), not the block partition.
    std::function<comm::IndexRange(std::uint64_t)> partition;
    if (comm_.exact_sums())
      partition = [&](std::uint64_t snps) {
        return solvers::cca::grouped_columns(static_cast<std::int64_t>(snps), comm_.size(), comm_.rank());
      };
    genotypes_ = io::read_plink(comm_, settings_.x.path,
                                settings_.scale ? io::PlinkStandardize::scale : io::PlinkStandardize::center,
                                partition);
    x_ids = genotypes_->sample_ids;
    x_samples = static_cast<std::int64_t>(genotypes_->samples);
    p_ = static_cast<std::int64_t>(genotypes_->snps);
    for (const auto& v : genotypes_->variants) x_names_.push_back(v.id);
  } else {
    const auto shape = hdf5_view_shape(comm_, settings_.x);
    x_samples = static_cast<std::int64_t>(shape[0]);
    p_ = static_cast<std::int64_t>(shape[1]);
    x_ids = hdf5_sample_ids(comm_, settings_.x);
    x_names_ = hdf5_names(comm_, settings_.x.path, "/feature_names");
  }
  const auto y_shape = hdf5_view_shape(comm_, settings_.y);
  q_ = static_cast<std::int64_t>(y_shape[1]);
  const std::vector<std::string> y_ids = hdf5_sample_ids(comm_, settings_.y);
  y_names_ = hdf5_names(comm_, settings_.y.path, "/feature_names");
  // Every rank finds the same mistake here: agreed, it is printed once and no rank ends through MPI_Abort.
  comm_.agree([&] {
    match_ = match_samples(x_ids, x_samples, x_name, y_ids, static_cast<std::int64_t>(y_shape[0]), y_name);
    if (settings_.components > std::min(p_, q_)) {
      throw engine::DataError(
          fmt::format("cca: components = {} is more than min(p, q) = min({}, {}) ({} and {})",
                      settings_.components, p_, q_, x_name, y_name));
    }
  });
  split_samples();

  // comm.reproducible: ranks own whole column groups (solvers/cca_groups.hpp), whose partial products are
  // summed exactly; the weights keep their global order, so outputs and checkpoints look the same.
  const auto columns_of = [&](std::int64_t width) {
    return comm_.exact_sums()
               ? solvers::cca::grouped_columns(width, comm_.size(), comm_.rank())
               : comm::BlockPartition(static_cast<std::uint64_t>(width), comm_.size()).range(comm_.rank());
  };
  const comm::IndexRange x_columns = columns_of(p_);
  const comm::IndexRange y_columns = columns_of(q_);
  const auto standardize = settings_.scale ? solvers::Standardize::scale : solvers::Standardize::center;
  // Which HDF5 views stream (the same choice on every rank: the widest rank's block decides).
  const auto streamed = [&](std::size_t rows, comm::IndexRange columns) {
    if (settings_.storage != Storage::automatic) return settings_.storage == Storage::stream;
    const double widest = static_cast<double>(comm_.allreduce(columns.size(), comm::Op::max));
    return static_cast<double>(rows) * widest * sizeof(Scalar) >
           static_cast<double>(settings_.memory_budget_mb) * 1048576.0;
  };
  constexpr bool plink_x = std::is_same_v<BlockX, solvers::GenotypeFeatureBlock<Scalar>>;
  stream_x_ = !plink_x && streamed(match_.x_rows.size(), x_columns);
  stream_y_ = streamed(match_.y_rows.size(), y_columns);
  engine::Log::user().info("cca: ids, shapes and matching: {}", setup_timer.text(comm_));
  // Collective reads first: a streamed view's file is opened serially per rank, and HDF5 shares one open
  // file per process (x and y may be datasets of the same file).
  const PartTimer y_timer;
  if (!stream_y_) y_values_ = read_view_columns<Scalar>(comm_, settings_.y, match_.y_rows, y_columns);
  const std::string y_read_text = stream_y_ ? "" : y_timer.text(comm_);
  const PartTimer x_timer;
  if constexpr (plink_x) {
    solvers::GenotypeBlockOptions options;
    options.scaling = standardize;
    Kokkos::View<std::int64_t*, Kokkos::HostSpace> samples("cca::row_samples", match_.x_rows.size());
    for (std::size_t i = 0; i < match_.x_rows.size(); ++i) samples(i) = match_.x_rows[i];
    Kokkos::View<std::int64_t*, Kokkos::HostSpace> statistics("cca::statistics_rows", train_.size());
    for (std::size_t i = 0; i < train_.size(); ++i) statistics(i) = train_[i];
    options.row_samples = samples;
    options.statistics_rows = statistics;
    // The block's kernels read the records in the default memory space: the same View on a host build, a
    // device copy of the host-read records under CUDA.
    const auto packed = Kokkos::create_mirror_view_and_copy(Kokkos::DefaultExecutionSpace::memory_space(),
                                                            genotypes_->packed);
    x_ = std::make_unique<BlockX>(packed, static_cast<std::int64_t>(genotypes_->samples),
                                  static_cast<std::int64_t>(x_columns.begin), options);
  } else if (!stream_x_) {
    x_values_ = read_view_columns<Scalar>(comm_, settings_.x, match_.x_rows, x_columns);
    x_ = std::make_unique<BlockX>(x_values_, static_cast<std::int64_t>(x_columns.begin), standardize,
                                  Rows(train_rows_));
  }
  std::string x_text;
  if (!stream_x_) x_text = x_timer.text(comm_);
  const auto open_source = [&](const ViewSource& view, const std::vector<std::int64_t>& rows,
                               comm::IndexRange columns) {
    std::shared_ptr<const Hdf5ColumnSource<Scalar>> source;
    comm_.agree([&] { source = std::make_shared<const Hdf5ColumnSource<Scalar>>(view, rows, columns); });
    sources_.push_back(source);
    return source;
  };
  if constexpr (!plink_x) {
    if (stream_x_) {
      x_ = std::make_unique<BlockX>(open_source(settings_.x, match_.x_rows, x_columns),
                                    static_cast<std::int64_t>(x_columns.begin), standardize,
                                    Rows(train_rows_));
    }
  }
  if (stream_x_) x_text = x_timer.text(comm_);
  const PartTimer y_statistics_timer;
  if (stream_y_) {
    y_ = std::make_unique<BlockY>(open_source(settings_.y, match_.y_rows, y_columns),
                                  static_cast<std::int64_t>(y_columns.begin), standardize, Rows(train_rows_));
  } else {
    y_ = std::make_unique<BlockY>(y_values_, static_cast<std::int64_t>(y_columns.begin), standardize,
                                  Rows(train_rows_));
  }
  check_streams();
  engine::Log::user().info("cca: x {} ({}): {}",
                           settings_.x.plink ? "decode tables and statistics"
                           : stream_x_       ? "statistics pass (streamed)"
                                             : "read and statistics",
                           x_name, x_text);
  engine::Log::user().info("cca: y {}: {}{}", y_name, y_read_text.empty() ? "" : "read " + y_read_text + "; ",
                           "statistics " + y_statistics_timer.text(comm_));
  if (stream_x_ || stream_y_) {
    engine::Log::user().info("cca: streaming {} from the file at each use (storage = {})",
                             stream_x_ && stream_y_ ? "x and y"
                             : stream_x_            ? "x"
                                                    : "y",
                             settings_.storage == Storage::stream ? "stream" : "auto");
  }
}

// Each matched sample is held out when random_bits(seed, VALI, its index) falls below val_fraction of the
// range: the same split at any rank count.
template <class Scalar, class BlockX>
void CcaJob<Scalar, BlockX>::split_samples() {
  const double cut = settings_.val_fraction * 18446744073709551616.0;  // 2^64
  for (std::size_t i = 0; i < match_.x_rows.size(); ++i) {
    const double key = static_cast<double>(engine::random_bits(settings_.seed, kValidationStream, i));
    (key < cut ? validation_ : train_).push_back(static_cast<std::int64_t>(i));
  }
  if (train_.size() < 2 || static_cast<std::int64_t>(train_.size()) < settings_.components) {
    throw engine::UsageError(
        fmt::format("cca: {} training samples are too few for {} components (val_fraction {:g})",
                    train_.size(), settings_.components, settings_.val_fraction));
  }
  train_rows_ = rows_view(train_, "cca::train_rows");
  validation_rows_ = rows_view(validation_, "cca::validation_rows");
}

// The exact solution on the training rows: PLS by one pass over X and a q x q eigenproblem, ridge CCA and CCA
// by the dense generalized eigenproblem.
template <class Scalar, class BlockX>
void CcaJob<Scalar, BlockX>::solve_reference() {
  const auto begin = Clock::now();
  if (settings_.method == Method::pls) {
    exact_ = solvers::cca::exact_pls(comm_, *x_, *y_, settings_.components, Rows(train_rows_));
  } else {
    exact_ = solvers::cca::dense_cca(comm_, *x_, *y_, settings_.components, settings_.alpha, settings_.alpha,
                                     Rows(train_rows_));
  }
  exact_seconds_ = comm_.allreduce(seconds_since(begin), comm::Op::max);
  exact_train_ = scores(exact_->weights_x, exact_->weights_y, train_rows_).eigenvalues;
  if (!validation_.empty())
    exact_validation_ = scores(exact_->weights_x, exact_->weights_y, validation_rows_).eigenvalues;
  check_streams();
  engine::Log::user().info(
      "cca: exact {} in {:.2f} s: {} {}", to_string(settings_.method), exact_seconds_,
      settings_.method == Method::pls ? "training singular values" : "training correlations",
      values_text(exact_train_));
}

// This epoch's order of the training samples: sorted by random_bits(seed, SHUF, epoch * n + index).
template <class Scalar, class BlockX>
void CcaJob<Scalar, BlockX>::shuffle_epoch() {
  order_ = engine::seeded_order(settings_.seed, kShuffleStream,
                                static_cast<std::uint64_t>(epoch_) * match_.x_rows.size(), train_);
}

template <class Scalar, class BlockX>
bool CcaJob<Scalar, BlockX>::step() {
  if (done_) return true;
  if (settings_.solver == SolverKind::exact) {
    done_ = true;
    return true;
  }
  const auto begin = Clock::now();
  const std::int64_t first = epoch_step_ * settings_.batch_size;
  const std::int64_t count = epoch_step_ + 1 == steps_per_epoch()
                                 ? static_cast<std::int64_t>(order_.size()) - first
                                 : settings_.batch_size;
  auto host = Kokkos::create_mirror_view(batch_rows_);
  for (std::int64_t i = 0; i < count; ++i) host(i) = order_[first + i];
  Kokkos::deep_copy(batch_rows_, host);
  const auto batch = Kokkos::subview(batch_rows_, std::make_pair(std::int64_t{0}, count));
  const solvers::cca::EyStep s = ey_->step(Rows(batch));
  check_streams();
  objectives_.push_back(s.objective);
  ++epoch_step_;
  solve_seconds_ += seconds_since(begin);
  const bool epoch_done = epoch_step_ >= steps_per_epoch();
  if (epoch_done || (settings_.eval_every > 0 && ey_->steps() % settings_.eval_every == 0)) evaluate();
  if (epoch_done) {
    ++epoch_;
    epoch_step_ = 0;
    const Evaluation& e = evaluations_.back();
    engine::Log::user().info(
        "cca: epoch {}/{}: objective {:.6g}, training TCC {:.4f}{}{}", epoch_, settings_.epochs, s.objective,
        e.train_tcc, validation_.empty() ? "" : fmt::format(", validation TCC {:.4f}", e.validation_tcc),
        std::isnan(e.validation_pcc) && std::isnan(e.train_pcc)
            ? ""
            : fmt::format(", PCC {:.4f} (validation {:.4f})", e.train_pcc, e.validation_pcc));
    if (epoch_ >= settings_.epochs) {
      done_ = true;
      return true;
    }
    shuffle_epoch();
  }
  report(false);
  return false;
}

// Scores of the current weights on the training and validation rows; against the exact solution, the PCC
// (sum of restricted-GEP eigenvalues over the exact ones: for CCA the canonical correlations).
template <class Scalar, class BlockX>
void CcaJob<Scalar, BlockX>::evaluate() {
  Evaluation e;
  e.step = ey_->steps();
  e.samples_seen = 0;
  e.seconds = comm_.allreduce(solve_seconds_, comm::Op::max);  // replicated state: the same on every rank
  const auto train = scores(ey_->weights_x(), ey_->weights_y(), train_rows_);
  e.train_tcc = train.total_correlation();
  if (!exact_train_.empty()) e.train_pcc = train.total_eigenvalue() / sum(exact_train_);
  if (!validation_.empty()) {
    const auto validation = scores(ey_->weights_x(), ey_->weights_y(), validation_rows_);
    e.validation_tcc = validation.total_correlation();
    if (!exact_validation_.empty()) e.validation_pcc = validation.total_eigenvalue() / sum(exact_validation_);
  }
  check_streams();
  const std::int64_t per_epoch = static_cast<std::int64_t>(train_.size());
  e.samples_seen = epoch_ * per_epoch +
                   (epoch_step_ >= steps_per_epoch() ? per_epoch : epoch_step_ * settings_.batch_size);
  evaluations_.push_back(e);
}

template <class Scalar, class BlockX>
void CcaJob<Scalar, BlockX>::report(bool force) {
  if (comm_.rank() != 0) return;
  const auto now = Clock::now();
  if (!force && std::chrono::duration<double>(now - last_report_).count() < settings_.progress_seconds)
    return;
  last_report_ = now;
  const std::int64_t total = settings_.epochs * steps_per_epoch();
  const std::int64_t done = epoch_ * steps_per_epoch() + epoch_step_;
  const double elapsed = std::chrono::duration<double>(now - progress_start_).count();
  const double rate = static_cast<double>(ey_->steps() - progress_start_step_) / std::max(elapsed, 1e-9);
  engine::Log::user().info("cca: epoch {}/{}, step {}/{}, objective {:.6g}, ETA {}", epoch_ + 1,
                           settings_.epochs, epoch_step_, steps_per_epoch(),
                           objectives_.empty() ? 0.0 : objectives_.back(),
                           rate > 0 ? engine::human_duration(static_cast<double>(total - done) / rate) : "?");
}

template <class Scalar, class BlockX>
void CcaJob<Scalar, BlockX>::finalize() {
  const bool exact = settings_.solver == SolverKind::exact;
  Matrix ux = exact ? exact_->weights_x : ey_->weights_x();
  Matrix uy = exact ? exact_->weights_y : ey_->weights_y();
  if (!exact) {
    // EY weights span the right subspace in a rotated, scaled basis: turn them into canonical directions
    // (unit projection variance on the training rows, by decreasing correlation) before writing them.
    const auto rotation = solvers::cca::canonical_rotation(comm_, *x_, *y_, ux, uy, Rows(train_rows_));
    ux = rotate(ux, rotation.rotation_x);
    uy = rotate(uy, rotation.rotation_y);
  }
  const auto train = scores(ux, uy, train_rows_);
  std::optional<solvers::cca::SubspaceScores> validation;
  if (!validation_.empty()) validation = scores(ux, uy, validation_rows_);
  check_streams();
  const double solve_seconds = comm_.allreduce(solve_seconds_, comm::Op::max);

  io::OutputSet outputs(comm_, env_.out_dir);
  const std::string path = outputs.add("cca.h5");
  {
    io::H5Writer h5(comm_, path);
    jobs::write_run_attributes(h5, env_, settings_.seed, "complete");
    const auto k = static_cast<std::uint64_t>(settings_.components);
    h5.write_block("/weights/x", {static_cast<std::uint64_t>(p_), k},
                   {static_cast<std::uint64_t>(x_->first_column()), 0}, ux);
    h5.write_block("/weights/y", {static_cast<std::uint64_t>(q_), k},
                   {static_cast<std::uint64_t>(y_->first_column()), 0}, uy);
    h5.set_attribute(
        "/weights/x", "description",
        "p x k: canonical directions of x (row j: feature or SNP j, standardised units), by decreasing "
        "correlation, unit projection variance on the training samples");
    h5.write_replicated("/correlations/train", train.correlations);
    h5.write_replicated("/eigenvalues/train", train.eigenvalues);
    if (validation) {
      h5.write_replicated("/correlations/validation", validation->correlations);
      h5.write_replicated("/eigenvalues/validation", validation->eigenvalues);
    }
    h5.set_attribute(
        "/correlations/train", "description",
        "canonical correlations captured by the weights on the training samples (a 2k x 2k CCA of the "
        "projections; rotation invariant), descending");
    if (exact_) {
      h5.write_replicated("/exact/eigenvalues_train", exact_train_);
      if (!exact_validation_.empty()) h5.write_replicated("/exact/eigenvalues_validation", exact_validation_);
      h5.set_attribute("/exact", "seconds", exact_seconds_);
    }
    if (!exact) {
      std::vector<double> steps(objectives_.size());
      std::iota(steps.begin(), steps.end(), 1.0);
      h5.write_replicated("/history/step", steps);
      h5.write_replicated("/history/objective", objectives_);
      std::vector<double> at, seen, seconds, train_tcc, validation_tcc, train_pcc, validation_pcc;
      for (const auto& e : evaluations_) {
        at.push_back(static_cast<double>(e.step));
        seen.push_back(static_cast<double>(e.samples_seen));
        seconds.push_back(e.seconds);
        train_tcc.push_back(e.train_tcc);
        validation_tcc.push_back(e.validation_tcc);
        train_pcc.push_back(e.train_pcc);
        validation_pcc.push_back(e.validation_pcc);
      }
      h5.write_replicated("/history/eval_step", at);
      h5.write_replicated("/history/samples_seen", seen);
      h5.write_replicated("/history/seconds", seconds);
      h5.write_replicated("/history/train_tcc", train_tcc);
      h5.write_replicated("/history/validation_tcc", validation_tcc);
      if (exact_) {
        h5.write_replicated("/history/train_pcc", train_pcc);
        h5.write_replicated("/history/validation_pcc", validation_pcc);
      }
    }
    if (!x_names_.empty()) h5.write_strings(settings_.x.plink ? "/snp_ids" : "/x_names", x_names_);
    if (!y_names_.empty()) h5.write_strings("/y_names", y_names_);
    h5.set_attribute("/", "method", to_string(settings_.method));
    h5.set_attribute("/", "alpha", settings_.alpha);
    h5.set_attribute("/", "k", static_cast<std::int64_t>(settings_.components));
    h5.set_attribute("/", "solver", std::string(exact ? "exact" : "ey"));
    h5.set_attribute("/", "epochs", static_cast<std::int64_t>(exact ? 0 : epoch_));
    h5.set_attribute("/", "steps", static_cast<std::int64_t>(exact ? 0 : ey_->steps()));
    h5.set_attribute("/", "p", p_);
    h5.set_attribute("/", "q", q_);
    h5.set_attribute("/", "samples_used", static_cast<std::int64_t>(train_.size()));
    h5.set_attribute("/", "samples_validation", static_cast<std::int64_t>(validation_.size()));
    h5.set_attribute("/", "samples_unmatched_x", match_.unmatched_x());
    h5.set_attribute("/", "samples_unmatched_y", match_.unmatched_y());
    h5.set_attribute("/", "train_tcc", train.total_correlation());
    if (validation) h5.set_attribute("/", "validation_tcc", validation->total_correlation());
    if (exact_ && !exact) {
      h5.set_attribute("/", "train_pcc", train.total_eigenvalue() / sum(exact_train_));
      if (validation && !exact_validation_.empty()) {
        h5.set_attribute("/", "validation_pcc", validation->total_eigenvalue() / sum(exact_validation_));
      }
    }
    h5.set_attribute("/", "load_seconds", load_seconds_);
    h5.set_attribute("/", "storage_x",
                     std::string(settings_.x.plink ? "plink"
                                 : stream_x_       ? "stream"
                                                   : "memory"));
    h5.set_attribute("/", "storage_y", std::string(stream_y_ ? "stream" : "memory"));
    h5.set_attribute("/", "solve_seconds", exact ? exact_seconds_ : solve_seconds);
    h5.close();
  }
  outputs.commit();
  engine::Log::user().info(
      "cca: done: training correlations {}{}; {}/cca.h5", values_text(train.correlations),
      validation ? fmt::format(", validation {}", values_text(validation->correlations)) : "", env_.out_dir);
}

template <class Scalar, class BlockX>
void CcaJob<Scalar, BlockX>::save_state(engine::StateWriter& state) const {
  state.scalar("cca.done", static_cast<std::int64_t>(done_ ? 1 : 0));
  state.scalar("cca.solve_seconds", comm_.allreduce(solve_seconds_, comm::Op::max));
  if (!ey_) return;
  state.scalar("cca.epoch", epoch_);
  state.scalar("cca.epoch_step", epoch_step_);
  state.scalar("cca.steps", ey_->steps());
  state.scalar("cca.lr_scale_x", ey_->learning_rate_scale_x());
  state.scalar("cca.lr_scale_y", ey_->learning_rate_scale_y());
  state.replicated("cca.objectives", objectives_);
  std::vector<double> evaluations;
  for (const auto& e : evaluations_) {
    evaluations.insert(evaluations.end(),
                       {static_cast<double>(e.step), static_cast<double>(e.samples_seen), e.seconds,
                        e.train_tcc, e.validation_tcc, e.train_pcc, e.validation_pcc});
  }
  state.replicated("cca.evaluations", evaluations);
  // The weights and optimizer moments as global p x k and q x k arrays: any rank count reads its rows back.
  const auto k = static_cast<std::uint64_t>(settings_.components);
  const std::vector<std::uint64_t> x_shape{static_cast<std::uint64_t>(p_), k},
      y_shape{static_cast<std::uint64_t>(q_), k};
  const std::vector<std::uint64_t> x_at{static_cast<std::uint64_t>(x_->first_column()), 0},
      y_at{static_cast<std::uint64_t>(y_->first_column()), 0};
  io::save_block(state, "cca.weights_x", x_shape, x_at, ey_->weights_x());
  io::save_block(state, "cca.weights_y", y_shape, y_at, ey_->weights_y());
  io::save_block(state, "cca.moment1_x", x_shape, x_at, ey_->first_moment_x());
  io::save_block(state, "cca.moment1_y", y_shape, y_at, ey_->first_moment_y());
  io::save_block(state, "cca.moment2_x", x_shape, x_at, ey_->second_moment_x());
  io::save_block(state, "cca.moment2_y", y_shape, y_at, ey_->second_moment_y());
}

template <class Scalar, class BlockX>
void CcaJob<Scalar, BlockX>::restore_state(engine::StateReader& state) {
  done_ = state.int64_scalar("cca.done") != 0;
  solve_seconds_ = state.double_scalar("cca.solve_seconds");
  if (!ey_) return;
  epoch_ = state.int64_scalar("cca.epoch");
  epoch_step_ = state.int64_scalar("cca.epoch_step");
  ey_->set_steps(state.int64_scalar("cca.steps"));
  ey_->set_learning_rate_scales(state.double_scalar("cca.lr_scale_x"), state.double_scalar("cca.lr_scale_y"));
  objectives_ = state.replicated_double("cca.objectives");
  const auto evaluations = state.replicated_double("cca.evaluations");
  evaluations_.clear();
  for (std::size_t i = 0; i + 7 <= evaluations.size(); i += 7) {
    Evaluation e;
    e.step = static_cast<std::int64_t>(evaluations[i]);
    e.samples_seen = static_cast<std::int64_t>(evaluations[i + 1]);
    e.seconds = evaluations[i + 2];
    e.train_tcc = evaluations[i + 3];
    e.validation_tcc = evaluations[i + 4];
    e.train_pcc = evaluations[i + 5];
    e.validation_pcc = evaluations[i + 6];
    evaluations_.push_back(e);
  }
  const std::vector<std::uint64_t> x_at{static_cast<std::uint64_t>(x_->first_column()), 0},
      y_at{static_cast<std::uint64_t>(y_->first_column()), 0};
  io::load_block(state, "cca.weights_x", x_at, ey_->weights_x());
  io::load_block(state, "cca.weights_y", y_at, ey_->weights_y());
  io::load_block(state, "cca.moment1_x", x_at, ey_->first_moment_x());
  io::load_block(state, "cca.moment1_y", y_at, ey_->first_moment_y());
  io::load_block(state, "cca.moment2_x", x_at, ey_->second_moment_x());
  io::load_block(state, "cca.moment2_y", y_at, ey_->second_moment_y());
  shuffle_epoch();
  progress_start_ = last_report_ = Clock::now();
  progress_start_step_ = ey_->steps();
  engine::Log::user().info("cca: resumed at epoch {}, step {} of {}", epoch_ + 1, epoch_step_,
                           steps_per_epoch());
}

template <class Scalar>
std::unique_ptr<engine::Job> make_for(const jobs::JobEnv& env, Settings settings) {
  if (settings.x.plink) {
    return std::make_unique<CcaJob<Scalar, solvers::GenotypeFeatureBlock<Scalar>>>(env, std::move(settings));
  }
  return std::make_unique<CcaJob<Scalar, solvers::DenseFeatureBlock<Scalar>>>(env, std::move(settings));
}

}  // namespace

std::unique_ptr<engine::Job> make_job(const jobs::JobEnv& env) {
  Settings settings = parse_settings(env.config);
  if (settings.float32) return make_for<float>(env, std::move(settings));
  return make_for<double>(env, std::move(settings));
}

}  // namespace skein::cca
