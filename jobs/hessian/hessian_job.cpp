#include "jobs/hessian/hessian_job.hpp"

#include "comm/block_partition.hpp"
#include "engine/error.hpp"
#include "engine/log.hpp"
#include "engine/random.hpp"
#include "io/atomic_output.hpp"
#include "io/hdf5.hpp"
#include "jobs/hessian/inputs.hpp"
#include "jobs/hessian/loss_model.hpp"
#include "jobs/run_attributes.hpp"
#include "solvers/blas_threads.hpp"
#include "solvers/lanczos.hpp"
#include "solvers/slq.hpp"
#include "solvers/trace_estimator.hpp"
#include "solvers/vector_space.hpp"

#include <Kokkos_Core.hpp>

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace skein::hessian {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Random streams of this job (engine::StreamId keys): each use draws from its own.
constexpr engine::StreamId kLanczosStream{0x4c414e43u};  // "LANC": eigensolver start vector
constexpr engine::StreamId kTraceStream{0x54524143u};    // "TRAC": Hutchinson vectors
constexpr engine::StreamId kDensityStream{0x534c5121u};  // "SLQ!": density start vectors
constexpr engine::StreamId kBatchStream{0x42415443u};    // "BATC": the analysed minibatch
constexpr engine::StreamId kShuffleStream{0x53485546u};  // "SHUF": training order, per epoch

// What the job is doing; saved in checkpoints as an integer.
enum class Phase : std::int64_t { train = 0, eigenpairs = 1, trace = 2, density = 3, done = 4 };

// One analysis of the curvature at one epoch; everything replicated and in double.
struct Analysis {
  std::int64_t epoch = 0;
  double loss = 0.0;
  double accuracy = -1.0;  // < 0 for regression
  double gradient_norm = 0.0;
  std::vector<double> top, top_residuals, bottom, bottom_residuals;
  std::vector<double> top_vectors, bottom_vectors;  // k x parameters, row-major, when saved
  std::int64_t eigen_converged = 1, restarts = 0, eigen_products = 0;
  solvers::TraceEstimate trace;
  std::vector<double> trace_values;
  std::vector<double> nodes, weights;  // density: one row of slq_steps per finished vector
  std::int64_t density_vectors = 0;
  double eigen_seconds = 0.0, trace_seconds = 0.0, density_seconds = 0.0;

  void save(engine::StateWriter& state, const std::string& prefix) const {
    state.scalar(prefix + "epoch", epoch);
    state.scalar(prefix + "loss", loss);
    state.scalar(prefix + "accuracy", accuracy);
    state.scalar(prefix + "gradient_norm", gradient_norm);
    state.scalar(prefix + "eigen_converged", eigen_converged);
    state.scalar(prefix + "restarts", restarts);
    state.scalar(prefix + "eigen_products", eigen_products);
    state.scalar(prefix + "trace_samples", trace.samples);
    state.scalar(prefix + "trace_mean", trace.mean);
    state.scalar(prefix + "trace_m2", trace.m2);
    state.scalar(prefix + "density_vectors", density_vectors);
    state.scalar(prefix + "eigen_seconds", eigen_seconds);
    state.scalar(prefix + "trace_seconds", trace_seconds);
    state.scalar(prefix + "density_seconds", density_seconds);
    state.replicated(prefix + "top", top);
    state.replicated(prefix + "top_residuals", top_residuals);
    state.replicated(prefix + "bottom", bottom);
    state.replicated(prefix + "bottom_residuals", bottom_residuals);
    state.replicated(prefix + "top_vectors", top_vectors);
    state.replicated(prefix + "bottom_vectors", bottom_vectors);
    state.replicated(prefix + "trace_values", trace_values);
    state.replicated(prefix + "nodes", nodes);
    state.replicated(prefix + "weights", weights);
  }

  void restore(engine::StateReader& state, const std::string& prefix) {
    epoch = state.int64_scalar(prefix + "epoch");
    loss = state.double_scalar(prefix + "loss");
    accuracy = state.double_scalar(prefix + "accuracy");
    gradient_norm = state.double_scalar(prefix + "gradient_norm");
    eigen_converged = state.int64_scalar(prefix + "eigen_converged");
    restarts = state.int64_scalar(prefix + "restarts");
    eigen_products = state.int64_scalar(prefix + "eigen_products");
    trace.samples = state.int64_scalar(prefix + "trace_samples");
    trace.mean = state.double_scalar(prefix + "trace_mean");
    trace.m2 = state.double_scalar(prefix + "trace_m2");
    density_vectors = state.int64_scalar(prefix + "density_vectors");
    eigen_seconds = state.double_scalar(prefix + "eigen_seconds");
    trace_seconds = state.double_scalar(prefix + "trace_seconds");
    density_seconds = state.double_scalar(prefix + "density_seconds");
    top = state.replicated_double(prefix + "top");
    top_residuals = state.replicated_double(prefix + "top_residuals");
    bottom = state.replicated_double(prefix + "bottom");
    bottom_residuals = state.replicated_double(prefix + "bottom_residuals");
    top_vectors = state.replicated_double(prefix + "top_vectors");
    bottom_vectors = state.replicated_double(prefix + "bottom_vectors");
    trace_values = state.replicated_double(prefix + "trace_values");
    nodes = state.replicated_double(prefix + "nodes");
    weights = state.replicated_double(prefix + "weights");
  }
};

// Rows of a sample shard, copied by a kernel (the training minibatch of each step).
template <class Scalar>
struct GatherRows {
  using Matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight>;
  Kokkos::View<const Scalar**, Kokkos::LayoutRight> from_x, from_targets;
  Kokkos::View<const int*> from_labels;
  Matrix to_x, to_targets;
  Kokkos::View<int*> to_labels;
  Kokkos::View<const std::int64_t*> rows;

  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i) const {
    const std::int64_t r = rows(i);
    for (std::size_t j = 0; j < to_x.extent(1); ++j) to_x(i, j) = from_x(r, j);
    if (to_labels.extent(0) > 0) to_labels(i) = from_labels(r);
    for (std::size_t j = 0; j < to_targets.extent(1); ++j) to_targets(i, j) = from_targets(r, j);
  }
};

// Adam (Kingma and Ba, PyTorch's defaults beta 0.9, 0.999, eps 1e-8) and SGD with momentum (PyTorch's form:
// buf = mu buf + g, p -= lr buf), elementwise.
template <class Scalar>
struct AdamUpdate {
  Kokkos::View<Scalar*> params, m, v;
  Kokkos::View<const Scalar*> grad;
  double lr, bias1, bias2;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i) const {
    const double g = grad(i);
    const double mi = 0.9 * static_cast<double>(m(i)) + 0.1 * g;
    const double vi = 0.999 * static_cast<double>(v(i)) + 0.001 * g * g;
    m(i) = static_cast<Scalar>(mi);
    v(i) = static_cast<Scalar>(vi);
    params(i) -= static_cast<Scalar>(lr * (mi / bias1) / (engine::portable_sqrt(vi / bias2) + 1e-8));
  }
};

template <class Scalar>
struct MomentumUpdate {
  Kokkos::View<Scalar*> params, buffer;
  Kokkos::View<const Scalar*> grad;
  double lr, momentum;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i) const {
    const double b = momentum * static_cast<double>(buffer(i)) + static_cast<double>(grad(i));
    buffer(i) = static_cast<Scalar>(b);
    params(i) -= static_cast<Scalar>(lr * b);
  }
};

template <class View>
std::vector<double> to_host_vector(const View& view) {
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), view);
  return std::vector<double>(host.data(), host.data() + host.extent(0));
}

template <class View>
void from_host_vector(const std::vector<double>& values, const View& view) {
  auto host = Kokkos::create_mirror_view(view);
  for (std::size_t i = 0; i < values.size(); ++i) host(i) = static_cast<typename View::value_type>(values[i]);
  Kokkos::deep_copy(view, host);
}

std::string join_sizes(const std::vector<int>& sizes) {
  std::string text;
  for (std::size_t i = 0; i < sizes.size(); ++i) text += (i ? "-" : "") + std::to_string(sizes[i]);
  return text;
}

std::string first_values(const std::vector<double>& values, std::size_t count) {
  std::string text;
  for (std::size_t i = 0; i < values.size() && i < count; ++i)
    text += fmt::format("{}{:.6g}", i ? ", " : "", values[i]);
  if (values.size() > count) text += ", ...";
  return text;
}

// OpenBLAS threads of this rank: 1 under comm.reproducible; else OPENBLAS_NUM_THREADS or OMP_NUM_THREADS win;
// else the cores this process may run on (mpirun binds each rank to one core by default: then 1), shared with
// the other ranks of this host when the ranks are not bound. Collective (counts the ranks per host).
int choose_blas_threads(const comm::Communicator& comm) {
  if (comm.exact_sums()) {
    // comm.reproducible: the thread count would follow the rank count (cores / ranks per host), and
    // OpenBLAS's threaded kernels and LAPACK's eigensolvers may round differently at other thread counts.
    solvers::blas::set_threads(1);
    return 1;
  }
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const std::uint64_t mine = std::hash<std::string>{}(host);
  const auto hosts = comm.allgather(mine);
  const int ranks_here = static_cast<int>(std::count(hosts.begin(), hosts.end(), mine));
  if (std::getenv("OPENBLAS_NUM_THREADS") || std::getenv("OMP_NUM_THREADS")) return solvers::blas::threads();
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  const int cores = sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed) : 1;
  const int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = cores >= hardware ? std::max(1, cores / ranks_here) : cores;
  solvers::blas::set_threads(threads);
  return threads;
}

template <class Scalar>
class HessianJob final : public engine::Job {
 public:
  using Space = solvers::DistributedVectorSpace<Scalar>;
  using Vector = typename Space::vector_type;
  using Matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight>;
  using Operator = CurvatureOperator<Scalar>;
  using Eigensolver = solvers::LanczosEigensolver<Space, Operator>;

  HessianJob(const jobs::JobEnv& env, Settings settings)
      : env_(env), comm_(env.comm), settings_(std::move(settings)) {}

  void load() override;
  bool step() override;
  void finalize() override;
  void save_state(engine::StateWriter& state) const override;
  void restore_state(engine::StateReader& state) override;
  std::uint64_t seed() const override { return settings_.seed; }

 private:
  void build_samples(const DataShard& data);
  double timed_gradient();
  void begin_analysis();
  void next_phase();
  void finish_analysis();
  void start_eigensolver();
  void collect_eigenpairs();
  void train_step();
  void shuffle_epoch();
  std::int64_t steps_per_epoch() const {
    return (samples_ + settings_.train_batch - 1) / settings_.train_batch;
  }
  void report(bool force);
  void write_analysis(io::H5Writer& h5, const std::string& group, const Analysis& a) const;

  const jobs::JobEnv& env_;
  const comm::Communicator& comm_;
  Settings settings_;
  std::unique_ptr<comm::Communicator> self_;  // the vectors are replicated: their dot products are local
  std::unique_ptr<Space> space_;

  solvers::nn::MlpShape shape_;
  std::int64_t parameters_ = 0, samples_ = 0, analysed_samples_ = 0;
  std::int64_t first_row_ = 0, shard_rows_ = 0;  // this rank's rows of the data
  std::int64_t group_rows_ = 0;                  // comm.reproducible: rows per row group (inputs.hpp); else 0
  // This rank's samples (device), and the ones of the analysed set (all of them, or its minibatch rows).
  Matrix x_, targets_;
  Kokkos::View<int*> labels_;
  std::unique_ptr<DataParallelLoss<Scalar>> analysis_loss_;
  std::unique_ptr<Operator> operator_;

  Vector params_, grad_;
  // Training.
  std::unique_ptr<DataParallelLoss<Scalar>> train_loss_;
  Vector moment1_, moment2_;  // Adam's m and v, or SGD's momentum buffer (moment1_)
  Matrix batch_x_, batch_targets_;
  Kokkos::View<int*> batch_labels_;
  Kokkos::View<std::int64_t*> batch_rows_;
  std::vector<std::int64_t> order_positions_, order_rows_;  // this rank's rows in the epoch's order
  std::int64_t epoch_ = 0, train_step_ = 0, optimizer_steps_ = 0;
  double epoch_loss_sum_ = 0.0;
  std::int64_t epoch_loss_samples_ = 0;

  // Analyses.
  Phase phase_ = Phase::train;
  std::size_t analysis_index_ = 0;
  Analysis current_;
  std::vector<Analysis> finished_;
  std::unique_ptr<Eigensolver> eigensolver_;
  Vector scratch_a_, scratch_b_;

  double gradient_seconds_ = 0.0;
  Clock::time_point last_report_, phase_start_;
  double phase_start_ratio_ = 0.0;
  std::int64_t phase_start_steps_ = 0;  // optimizer_steps_ when training (re)started, for its ETA
};

template <class Scalar>
void HessianJob<Scalar>::load() {
  const auto begin = Clock::now();
  ModelFile model = read_model(comm_, settings_.model);
  shape_ = model.shape;
  parameters_ = shape_.parameter_count();
  const int wanted = settings_.top_k + settings_.bottom_k;
  comm_.agree([&] {
    if (wanted > parameters_) {
      throw engine::UsageError("hessian: top_k + bottom_k = " + std::to_string(wanted) +
                               " eigenpairs asked of a " + std::to_string(parameters_) +
                               "-parameter model (" + settings_.model + ")");
    }
  });
  const DataShard data = read_data(comm_, settings_.data, shape_);
  samples_ = data.samples;
  first_row_ = data.first_row;
  shard_rows_ = data.rows;
  group_rows_ = data.group_rows;
  self_ = std::make_unique<comm::Communicator>(comm_.split(comm_.rank(), 0));
  // The vectors are replicated: one rank's sums are rank-count independent already, and exact ones
  // (comm.reproducible) would only slow the eigensolvers down.
  self_->set_exact_sums(false);
  space_ = std::make_unique<Space>(*self_, parameters_, 0, parameters_);
  params_ = space_->create("hessian::params");
  grad_ = space_->create("hessian::gradient");
  scratch_a_ = space_->create("hessian::scratch_a");
  scratch_b_ = space_->create("hessian::scratch_b");
  from_host_vector(model.parameters, params_);
  build_samples(data);
  operator_ = std::make_unique<Operator>(*analysis_loss_, params_, settings_.op);
  if (settings_.train_epochs > 0) {
    moment1_ = space_->create("hessian::moment1");
    if (settings_.optimizer == Optimizer::adam) moment2_ = space_->create("hessian::moment2");
  }
  const int blas_threads = choose_blas_threads(comm_);
  engine::Log::user().info(
      "hessian: model {} ({} parameters, {}, {}), {} samples{}, {} ranks x {} BLAS threads, {} {} products, "
      "loaded in {:.2f} s",
      join_sizes(shape_.layer_sizes), parameters_, solvers::nn::to_string(shape_.activation),
      solvers::nn::to_string(shape_.loss), samples_,
      analysed_samples_ < samples_ ? fmt::format(" (analysing a minibatch of {})", analysed_samples_) : "",
      comm_.size(), blas_threads, to_string(settings_.precision), to_string(settings_.op),
      seconds_since(begin));
  last_report_ = Clock::now();
  if (settings_.analyze_at.front() == 0) {
    begin_analysis();  // its gradient is the timed one
  } else {
    timed_gradient();
    phase_ = Phase::train;
    phase_start_ = Clock::now();
    shuffle_epoch();
  }
}

// Rows per kernel pass: chunk_rows, or (0) all `rows` while the Mlp's workspaces (about 8 values per unit of
// every layer after the input, per row) fit in 2 GiB. A whole shard in one pass lets repeated products at the
// same parameters reuse the forward pass (solvers/nn), a third of an HVP.
template <class Scalar>
std::int64_t workspace_rows(const solvers::nn::MlpShape& shape, std::int64_t chunk_rows, std::int64_t rows) {
  if (chunk_rows > 0) return chunk_rows;
  std::int64_t units = 0;
  for (std::size_t l = 1; l < shape.layer_sizes.size(); ++l) units += shape.layer_sizes[l];
  const std::int64_t bytes_per_row = 8 * units * static_cast<std::int64_t>(sizeof(Scalar));
  return std::max<std::int64_t>(
      1, std::min(rows, (std::int64_t{2} << 30) / std::max<std::int64_t>(1, bytes_per_row)));
}

// Device copies of this rank's rows; the analysed set is either all of them or this rank's share of a
// fixed minibatch chosen by the smallest keys random_bits(seed, BATC, row) over all rows, which no rank
// count changes. Under comm.reproducible both go by row group.
template <class Scalar>
void HessianJob<Scalar>::build_samples(const DataShard& data) {
  const std::int64_t d = data.features, t = data.classification ? 0 : data.outputs;
  auto upload = [&](const std::vector<std::int64_t>& rows, Matrix& x, Kokkos::View<int*>& labels,
                    Matrix& targets, const char* label) {
    const std::int64_t n = static_cast<std::int64_t>(rows.size());
    x = Matrix(std::string(label) + "_x", n, d);
    targets = Matrix(std::string(label) + "_targets", t > 0 ? n : 0, t);
    labels = Kokkos::View<int*>(std::string(label) + "_labels", data.classification ? n : 0);
    auto hx = Kokkos::create_mirror_view(x);
    auto ht = Kokkos::create_mirror_view(targets);
    auto hl = Kokkos::create_mirror_view(labels);
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t r = rows[i];
      for (std::int64_t j = 0; j < d; ++j) hx(i, j) = static_cast<Scalar>(data.x[r * d + j]);
      for (std::int64_t j = 0; j < t; ++j) ht(i, j) = static_cast<Scalar>(data.targets[r * t + j]);
      if (data.classification) hl(i) = data.labels[r];
    }
    Kokkos::deep_copy(x, hx);
    Kokkos::deep_copy(targets, ht);
    Kokkos::deep_copy(labels, hl);
  };
  std::vector<std::int64_t> all(static_cast<std::size_t>(data.rows));
  for (std::int64_t i = 0; i < data.rows; ++i) all[i] = i;
  upload(all, x_, labels_, targets_, "hessian::samples");

  auto batch_of = [&](const Matrix& x, const Kokkos::View<int*>& labels, const Matrix& targets) {
    solvers::nn::Batch<Scalar> batch;
    batch.x = x;
    batch.labels = labels;
    batch.targets = targets;
    return batch;
  };
  // comm.reproducible: the analysed rows and every training minibatch go by row group (inputs.hpp), summed
  // exactly (DataParallelLoss). The Mlps' rows depend on the model and settings only, never on the shard,
  // so a group is split into the same chunks on any rank.
  const bool grouped = group_rows_ > 0;
  const std::int64_t mlp_rows =
      workspace_rows<Scalar>(shape_, settings_.chunk_rows, std::numeric_limits<std::int64_t>::max());
  auto group_of = [&](std::int64_t local_row) { return (data.first_row + local_row) / group_rows_; };
  // One Mlp per group (every group's forward and backward pass kept between products) when the rank's
  // analysed rows fit the workspace the plain loss would give them in one chunk; else one shared Mlp.
  auto make_grouped_loss = [&](std::vector<solvers::nn::Batch<Scalar>> groups, std::int64_t local_rows) {
    const bool per_group = local_rows <= mlp_rows;
    analysis_loss_ = std::make_unique<DataParallelLoss<Scalar>>(
        comm_, shape_, std::move(groups), analysed_samples_,
        per_group ? mlp_rows : std::min(mlp_rows, group_rows_), per_group);
  };
  analysed_samples_ = samples_;
  if (settings_.batch_size > 0 && settings_.batch_size < samples_) {
    // Every rank ranks all n keys (cheap next to one product) and keeps its own rows among the smallest.
    std::vector<std::pair<std::uint64_t, std::int64_t>> keys(static_cast<std::size_t>(samples_));
    for (std::int64_t i = 0; i < samples_; ++i) {
      keys[i] = {engine::random_bits(settings_.seed, kBatchStream, static_cast<std::uint64_t>(i)), i};
    }
    std::nth_element(keys.begin(), keys.begin() + settings_.batch_size, keys.end());
    std::vector<std::int64_t> mine;
    for (std::int64_t k = 0; k < settings_.batch_size; ++k) {
      const std::int64_t row = keys[k].second;
      if (row >= data.first_row && row < data.first_row + data.rows) mine.push_back(row - data.first_row);
    }
    std::sort(mine.begin(), mine.end());
    analysed_samples_ = settings_.batch_size;
    if (grouped) {
      // Each row group's minibatch rows in their own allocation: BLAS sees the same alignment anywhere.
      std::vector<solvers::nn::Batch<Scalar>> groups;
      for (std::size_t begin = 0, end = 0; begin < mine.size(); begin = end) {
        end = begin;
        while (end < mine.size() && group_of(mine[end]) == group_of(mine[begin])) ++end;
        Matrix gx, gt;
        Kokkos::View<int*> gl;
        upload(std::vector<std::int64_t>(mine.begin() + begin, mine.begin() + end), gx, gl, gt,
               "hessian::minibatch_group");
        groups.push_back(batch_of(gx, gl, gt));
      }
      make_grouped_loss(std::move(groups), static_cast<std::int64_t>(mine.size()));
    } else {
      Matrix bx, bt;
      Kokkos::View<int*> bl;
      upload(mine, bx, bl, bt, "hessian::minibatch");
      analysis_loss_ = std::make_unique<DataParallelLoss<Scalar>>(
          comm_, shape_, batch_of(bx, bl, bt), analysed_samples_,
          workspace_rows<Scalar>(shape_, settings_.chunk_rows, static_cast<std::int64_t>(mine.size())));
    }
  } else if (grouped) {
    if (settings_.batch_size > samples_) {
      engine::Log::user().warn("hessian: batch_size {} is larger than the {} samples; analysing all of them",
                               settings_.batch_size, samples_);
    }
    // The shard's row groups: views into it (each starts a multiple of group_rows_ rows in).
    std::vector<solvers::nn::Batch<Scalar>> groups;
    for (std::int64_t begin = 0; begin < data.rows; begin += group_rows_) {
      const auto rows = std::make_pair(begin, std::min(data.rows, begin + group_rows_));
      solvers::nn::Batch<Scalar> batch;
      batch.x = Kokkos::subview(x_, rows, Kokkos::ALL);
      if (labels_.extent(0) > 0) batch.labels = Kokkos::subview(labels_, rows);
      if (targets_.extent(0) > 0) batch.targets = Kokkos::subview(targets_, rows, Kokkos::ALL);
      groups.push_back(batch);
    }
    make_grouped_loss(std::move(groups), data.rows);
  } else {
    if (settings_.batch_size > samples_) {
      engine::Log::user().warn("hessian: batch_size {} is larger than the {} samples; analysing all of them",
                               settings_.batch_size, samples_);
    }
    analysis_loss_ = std::make_unique<DataParallelLoss<Scalar>>(
        comm_, shape_, batch_of(x_, labels_, targets_), samples_,
        workspace_rows<Scalar>(shape_, settings_.chunk_rows, data.rows));
  }
  if (settings_.train_epochs > 0) {
    const std::int64_t most = std::min(settings_.train_batch, data.rows);
    batch_x_ = Matrix("hessian::train_x", most, d);
    batch_targets_ = Matrix("hessian::train_targets", t > 0 ? most : 0, t);
    batch_labels_ = Kokkos::View<int*>("hessian::train_labels", data.classification ? most : 0);
    batch_rows_ = Kokkos::View<std::int64_t*>("hessian::train_rows", most);
    if (grouped) {
      // A minibatch's rows of one row group are at most min(train_batch, group_rows_): one chunk each.
      train_loss_ = std::make_unique<DataParallelLoss<Scalar>>(
          comm_, shape_, std::vector<solvers::nn::Batch<Scalar>>{}, settings_.train_batch,
          std::min(mlp_rows, std::min(settings_.train_batch, group_rows_)), false);
    } else {
      train_loss_ = std::make_unique<DataParallelLoss<Scalar>>(
          comm_, shape_, batch_of(batch_x_, batch_labels_, batch_targets_), settings_.train_batch,
          workspace_rows<Scalar>(shape_, settings_.chunk_rows, most));
    }
  }
}

// The gradient of the analysed loss into grad_, timed (the benchmark's "seconds per gradient", the slowest
// rank's); returns the loss.
template <class Scalar>
double HessianJob<Scalar>::timed_gradient() {
  Kokkos::fence();
  const auto begin = Clock::now();
  const double loss = analysis_loss_->gradient(params_, grad_);
  Kokkos::fence();
  gradient_seconds_ = comm_.allreduce(seconds_since(begin), comm::Op::max);
  return loss;
}

template <class Scalar>
void HessianJob<Scalar>::begin_analysis() {
  current_ = Analysis{};
  current_.epoch = settings_.analyze_at[analysis_index_];
  current_.loss = timed_gradient();
  current_.gradient_norm = solvers::norm2(*space_, grad_);
  if (shape_.loss == solvers::nn::Loss::cross_entropy) current_.accuracy = analysis_loss_->accuracy(params_);
  engine::Log::user().info(
      "hessian: analysing epoch {}: loss {:.6g}{}, gradient norm {:.4g}", current_.epoch, current_.loss,
      current_.accuracy >= 0 ? fmt::format(", accuracy {:.2f}%", 100 * current_.accuracy) : "",
      current_.gradient_norm);
  phase_ = Phase::eigenpairs;
  if (settings_.top_k + settings_.bottom_k > 0) {
    start_eigensolver();
    eigensolver_->start();  // a random normal start vector (seed, LANC)
  } else {
    next_phase();
  }
  phase_start_ = Clock::now();
}

template <class Scalar>
void HessianJob<Scalar>::start_eigensolver() {
  solvers::LanczosOptions options;
  options.top = settings_.top_k;
  options.bottom = settings_.bottom_k;
  options.max_basis = settings_.lanczos_steps;
  options.tol = settings_.tol;
  options.max_restarts = settings_.max_restarts;
  options.want_vectors = settings_.save_eigenvectors;
  options.seed = settings_.seed;
  options.stream = kLanczosStream;
  eigensolver_ = std::make_unique<Eigensolver>(*space_, *operator_, options);
  phase_start_ratio_ = 0.0;
}

// The phases of an analysis in order, skipping those with nothing to do.
template <class Scalar>
void HessianJob<Scalar>::next_phase() {
  phase_start_ = Clock::now();
  if (phase_ == Phase::trace) {
    engine::Log::user().info(
        "hessian: epoch {} trace {:.6g} +- {:.2g} (standard error, {} Rademacher samples, {:.2f} s)",
        current_.epoch, current_.trace.mean, current_.trace.standard_error(), current_.trace.samples,
        current_.trace_seconds);
  }
  if (phase_ == Phase::eigenpairs && settings_.trace_samples > 0) {
    phase_ = Phase::trace;
    return;
  }
  if ((phase_ == Phase::eigenpairs || phase_ == Phase::trace) && settings_.slq_vectors > 0) {
    phase_ = Phase::density;
    return;
  }
  finish_analysis();
}

template <class Scalar>
void HessianJob<Scalar>::finish_analysis() {
  auto& log = engine::Log::user();
  if (settings_.slq_vectors > 0) {
    log.info("hessian: epoch {} density from {} vectors x {} Lanczos steps ({:.2f} s)", current_.epoch,
             current_.density_vectors, settings_.slq_steps, current_.density_seconds);
  }
  finished_.push_back(std::move(current_));
  current_ = Analysis{};
  ++analysis_index_;
  if (analysis_index_ < settings_.analyze_at.size()) {
    phase_ = Phase::train;
    phase_start_ = Clock::now();
    phase_start_steps_ = optimizer_steps_;
    if (train_step_ == 0) shuffle_epoch();
  } else {
    phase_ = Phase::done;
  }
}

template <class Scalar>
void HessianJob<Scalar>::collect_eigenpairs() {
  const auto& result = eigensolver_->result();
  current_.top = result.top.values;
  current_.top_residuals = result.top.residuals;
  current_.bottom = result.bottom.values;
  current_.bottom_residuals = result.bottom.residuals;
  current_.eigen_converged = result.converged ? 1 : 0;
  current_.restarts = result.restarts;
  current_.eigen_products = result.applications;
  if (settings_.save_eigenvectors) {
    for (const auto& v : result.top.vectors) {
      const auto host = to_host_vector(v);
      current_.top_vectors.insert(current_.top_vectors.end(), host.begin(), host.end());
    }
    for (const auto& v : result.bottom.vectors) {
      const auto host = to_host_vector(v);
      current_.bottom_vectors.insert(current_.bottom_vectors.end(), host.begin(), host.end());
    }
  }
  auto& log = engine::Log::user();
  const std::string figures = fmt::format("{} products, {} restarts, {:.2f} s", result.applications,
                                          result.restarts, current_.eigen_seconds);
  if (!current_.top.empty())
    log.info("hessian: epoch {} top eigenvalues {}", current_.epoch, first_values(current_.top, 10));
  if (!current_.bottom.empty()) {
    log.info("hessian: epoch {} bottom eigenvalues {}", current_.epoch, first_values(current_.bottom, 10));
  }
  if (result.converged) {
    log.info("hessian: epoch {} eigenpairs converged to tol {:g} ({})", current_.epoch, settings_.tol,
             figures);
  } else {
    log.warn(
        "hessian: epoch {} eigenpairs did NOT converge to tol {:g} after max_restarts ({}); the output "
        "holds the Ritz values reached and their residuals",
        current_.epoch, settings_.tol, figures);
  }
  eigensolver_.reset();
}

template <class Scalar>
bool HessianJob<Scalar>::step() {
  const auto begin = Clock::now();
  switch (phase_) {
    case Phase::done:
      return true;
    case Phase::train:
      train_step();
      break;
    case Phase::eigenpairs: {
      const bool done = eigensolver_->step();
      current_.eigen_seconds += seconds_since(begin);
      if (done) {
        collect_eigenpairs();
        next_phase();
      }
      break;
    }
    case Phase::trace: {
      const double value = solvers::hutchinson_sample(*space_, *operator_, settings_.seed, kTraceStream,
                                                      static_cast<std::uint64_t>(current_.trace.samples),
                                                      scratch_a_, scratch_b_);
      current_.trace.add(value);
      current_.trace_values.push_back(value);
      current_.trace_seconds += seconds_since(begin);
      if (current_.trace.samples >= settings_.trace_samples) next_phase();
      break;
    }
    case Phase::density: {
      // One start vector: Rademacher, normalised inside Lanczos; its m-point Gauss rule. Padded to slq_steps
      // nodes (weight 0) when the Krylov space is exhausted earlier (a model with few parameters).
      space_->fill_rademacher(scratch_a_, settings_.seed, kDensityStream,
                              static_cast<std::uint64_t>(current_.density_vectors));
      const auto tridiagonal =
          solvers::lanczos_tridiagonal(*space_, *operator_, scratch_a_, settings_.slq_steps);
      const auto rule = solvers::slq_quadrature(tridiagonal);
      for (int i = 0; i < settings_.slq_steps; ++i) {
        const std::size_t at = std::min<std::size_t>(static_cast<std::size_t>(i), rule.nodes.size() - 1);
        current_.nodes.push_back(rule.nodes[at]);
        current_.weights.push_back(static_cast<std::size_t>(i) < rule.nodes.size() ? rule.weights[at] : 0.0);
      }
      ++current_.density_vectors;
      current_.density_seconds += seconds_since(begin);
      if (current_.density_vectors >= settings_.slq_vectors) next_phase();
      break;
    }
  }
  report(phase_ == Phase::done);
  return phase_ == Phase::done;
}

// This epoch's order of the samples: all ranks sort the same keys random_bits(seed, SHUF, epoch * n + row)
// and keep their own rows with their positions, so minibatches do not depend on the rank count.
template <class Scalar>
void HessianJob<Scalar>::shuffle_epoch() {
  std::vector<std::int64_t> rows(static_cast<std::size_t>(samples_));
  for (std::int64_t i = 0; i < samples_; ++i) rows[i] = i;
  const std::vector<std::int64_t> order =
      engine::seeded_order(settings_.seed, kShuffleStream,
                           static_cast<std::uint64_t>(epoch_) * static_cast<std::uint64_t>(samples_), rows);
  const comm::IndexRange mine{static_cast<std::uint64_t>(first_row_),
                              static_cast<std::uint64_t>(first_row_ + shard_rows_)};
  order_positions_.clear();
  order_rows_.clear();
  for (std::int64_t position = 0; position < samples_; ++position) {
    const auto row = static_cast<std::uint64_t>(order[position]);
    if (row >= mine.begin && row < mine.end) {
      order_positions_.push_back(position);
      order_rows_.push_back(static_cast<std::int64_t>(row - mine.begin));
    }
  }
}

// One data-parallel minibatch step: each rank gathers its rows of the minibatch, one allreduce of the
// gradient, the same update on every rank.
template <class Scalar>
void HessianJob<Scalar>::train_step() {
  const std::int64_t first = train_step_ * settings_.train_batch;
  const std::int64_t last = std::min(samples_, first + settings_.train_batch);
  const auto lo = std::lower_bound(order_positions_.begin(), order_positions_.end(), first);
  const auto hi = std::lower_bound(order_positions_.begin(), order_positions_.end(), last);
  const std::int64_t local = hi - lo;
  const std::int64_t* local_rows = order_rows_.data() + (lo - order_positions_.begin());
  // Rows local_rows[0, count) (indices into this rank's shard) gathered into the minibatch buffers.
  auto gather_rows = [&](const std::int64_t* rows, std::int64_t count) {
    auto rows_host = Kokkos::create_mirror_view(batch_rows_);
    for (std::int64_t i = 0; i < count; ++i) rows_host(i) = rows[i];
    Kokkos::deep_copy(batch_rows_, rows_host);
    GatherRows<Scalar> gather{x_, targets_, labels_, batch_x_, batch_targets_, batch_labels_, batch_rows_};
    Kokkos::parallel_for("hessian::gather_rows",
                         Kokkos::RangePolicy<Kokkos::IndexType<std::int64_t>>(0, count), gather);
    const auto range = std::make_pair(std::int64_t{0}, count);
    solvers::nn::Batch<Scalar> batch;
    batch.x = Kokkos::subview(batch_x_, range, Kokkos::ALL);
    if (batch_labels_.extent(0) > 0) batch.labels = Kokkos::subview(batch_labels_, range);
    if (batch_targets_.extent(0) > 0) batch.targets = Kokkos::subview(batch_targets_, range, Kokkos::ALL);
    return batch;
  };
  double loss = 0.0;
  if (group_rows_ > 0) {
    // comm.reproducible: the minibatch's rows by row group (in minibatch order within a group), each group
    // gathered to the start of the buffers in turn (the same alignment anywhere) and its gradient summed
    // exactly with the other groups'.
    std::vector<std::int64_t> rows(local_rows, local_rows + local);
    auto group_of = [&](std::int64_t row) { return (first_row_ + row) / group_rows_; };
    std::stable_sort(rows.begin(), rows.end(),
                     [&](std::int64_t a, std::int64_t b) { return group_of(a) < group_of(b); });
    std::vector<std::int64_t> starts;
    for (std::int64_t i = 0; i < local; ++i)
      if (i == 0 || group_of(rows[i]) != group_of(rows[i - 1])) starts.push_back(i);
    starts.push_back(local);
    const auto groups = static_cast<std::int64_t>(starts.size()) - 1;
    loss = train_loss_->gradient_by_group(params_, grad_, groups, last - first, [&](std::int64_t g) {
      return gather_rows(rows.data() + starts[g], starts[g + 1] - starts[g]);
    });
  } else {
    train_loss_->set_batch(gather_rows(local_rows, local), last - first);
    loss = train_loss_->gradient(params_, grad_);
  }
  ++optimizer_steps_;
  const auto policy = space_->policy();
  if (settings_.optimizer == Optimizer::adam) {
    const double t = static_cast<double>(optimizer_steps_);
    AdamUpdate<Scalar> update{
        params_, moment1_, moment2_, grad_, settings_.lr, 1.0 - std::pow(0.9, t), 1.0 - std::pow(0.999, t)};
    Kokkos::parallel_for("hessian::adam", policy, update);
  } else {
    MomentumUpdate<Scalar> update{params_, moment1_, grad_, settings_.lr, settings_.momentum};
    Kokkos::parallel_for("hessian::sgd", policy, update);
  }
  epoch_loss_sum_ += loss * static_cast<double>(last - first);
  epoch_loss_samples_ += last - first;
  if (++train_step_ < steps_per_epoch()) return;
  ++epoch_;
  engine::Log::user().info("hessian: epoch {}/{} trained: mean minibatch loss {:.6g}", epoch_,
                           settings_.train_epochs,
                           epoch_loss_sum_ / static_cast<double>(epoch_loss_samples_));
  train_step_ = 0;
  epoch_loss_sum_ = 0.0;
  epoch_loss_samples_ = 0;
  if (epoch_ == settings_.analyze_at[analysis_index_]) {
    begin_analysis();
  } else {
    shuffle_epoch();
  }
}

// Rank 0's progress line every progress_seconds, with an ETA: from the products left (trace, density,
// training) or, for the eigenpairs, from the rate at which the worst residual has been falling.
template <class Scalar>
void HessianJob<Scalar>::report(bool force) {
  if (comm_.rank() != 0 || force) return;
  const auto now = Clock::now();
  if (std::chrono::duration<double>(now - last_report_).count() < settings_.progress_seconds) return;
  last_report_ = now;
  const double elapsed = std::chrono::duration<double>(now - phase_start_).count();
  auto eta = [&](double done, double total) {
    return done > 0 ? engine::human_duration(elapsed / done * (total - done)) : std::string("?");
  };
  auto& log = engine::Log::user();
  switch (phase_) {
    case Phase::train: {
      // ETA to the next analysis (or the end of training) from the steps taken since training (re)started.
      const std::int64_t target = analysis_index_ < settings_.analyze_at.size()
                                      ? settings_.analyze_at[analysis_index_]
                                      : settings_.train_epochs;
      const double left = static_cast<double>((target - epoch_) * steps_per_epoch() - train_step_);
      const double done = static_cast<double>(optimizer_steps_ - phase_start_steps_);
      log.info("hessian: training epoch {}/{}, step {}/{}, mean minibatch loss {:.6g}, ETA {}", epoch_ + 1,
               settings_.train_epochs, train_step_, steps_per_epoch(),
               epoch_loss_samples_ ? epoch_loss_sum_ / static_cast<double>(epoch_loss_samples_) : 0.0,
               eta(done, done + left));
      break;
    }
    case Phase::eigenpairs: {
      const double ratio = eigensolver_->worst_residual_ratio();
      std::string when = "?";
      if (std::isfinite(ratio) && ratio > 0) {
        if (phase_start_ratio_ == 0.0) phase_start_ratio_ = ratio;
        const double decades = std::log10(phase_start_ratio_ / ratio);
        if (decades > 0 && ratio > settings_.tol) {
          when = engine::human_duration(std::log10(ratio / settings_.tol) / (decades / elapsed));
        }
      }
      log.info(
          "hessian: epoch {} eigenpairs: {} products, {} restarts, worst residual {:.2e} (tol {:g}), ETA {}",
          current_.epoch, eigensolver_->state().applications, eigensolver_->state().restarts,
          std::isfinite(ratio) ? ratio : 1.0, settings_.tol, when);
      break;
    }
    case Phase::trace:
      log.info("hessian: epoch {} trace: {}/{} samples, {:.6g} +- {:.2g}, ETA {}", current_.epoch,
               current_.trace.samples, settings_.trace_samples, current_.trace.mean,
               current_.trace.standard_error(),
               eta(static_cast<double>(current_.trace.samples), settings_.trace_samples));
      break;
    case Phase::density:
      log.info("hessian: epoch {} density: {}/{} vectors, ETA {}", current_.epoch, current_.density_vectors,
               settings_.slq_vectors,
               eta(static_cast<double>(current_.density_vectors), settings_.slq_vectors));
      break;
    case Phase::done:
      break;
  }
}

template <class Scalar>
void HessianJob<Scalar>::write_analysis(io::H5Writer& h5, const std::string& group, const Analysis& a) const {
  const std::string root = group.empty() ? "/" : group;
  if (!group.empty()) h5.create_group(group);
  h5.set_attribute(root, "epoch", a.epoch);
  h5.set_attribute(root, "loss_value", a.loss);
  if (a.accuracy >= 0) h5.set_attribute(root, "accuracy", a.accuracy);
  h5.set_attribute(root, "gradient_norm", a.gradient_norm);
  if (settings_.top_k + settings_.bottom_k > 0) {
    h5.create_group(group + "/eigenvalues");
    if (!a.top.empty()) {
      h5.write_replicated(group + "/eigenvalues/top", a.top);
      h5.write_replicated(group + "/eigenvalues/top_residuals", a.top_residuals);
    }
    if (!a.bottom.empty()) {
      h5.write_replicated(group + "/eigenvalues/bottom", a.bottom);
      h5.write_replicated(group + "/eigenvalues/bottom_residuals", a.bottom_residuals);
    }
    h5.set_attribute(group + "/eigenvalues", "converged", a.eigen_converged);
    h5.set_attribute(group + "/eigenvalues", "restarts", a.restarts);
    h5.set_attribute(group + "/eigenvalues", "products", a.eigen_products);
    h5.set_attribute(group + "/eigenvalues", "tol", settings_.tol);
    h5.set_attribute(group + "/eigenvalues", "description",
                     "top: largest eigenvalues, descending; bottom: smallest, ascending; *_residuals: "
                     "||H u - theta u|| estimates");
    // k x parameters, each rank writing its even share of the columns (the vectors are replicated).
    const comm::IndexRange columns =
        comm::BlockPartition(static_cast<std::uint64_t>(parameters_), comm_.size()).range(comm_.rank());
    auto write_vectors = [&](const std::string& name, const std::vector<double>& flat) {
      const std::uint64_t k = flat.size() / static_cast<std::size_t>(parameters_);
      if (k == 0) return;
      std::vector<double> block;
      block.reserve(k * columns.size());
      for (std::uint64_t i = 0; i < k; ++i) {
        const double* row = flat.data() + i * static_cast<std::uint64_t>(parameters_);
        block.insert(block.end(), row + columns.begin, row + columns.end);
      }
      h5.write_block(name, {k, static_cast<std::uint64_t>(parameters_)}, {0, columns.begin},
                     {k, columns.size()}, block.data());
    };
    write_vectors(group + "/eigenvectors/top", a.top_vectors);
    write_vectors(group + "/eigenvectors/bottom", a.bottom_vectors);
  }
  if (settings_.trace_samples > 0) {
    h5.write_replicated(group + "/trace/samples", a.trace_values);
    h5.set_attribute(group + "/trace", "mean", a.trace.mean);
    h5.set_attribute(group + "/trace", "stderr", a.trace.standard_error());
    h5.set_attribute(group + "/trace", "samples", a.trace.samples);
    h5.set_attribute(group + "/trace/samples", "description", "z^T H z for each Rademacher vector z");
  }
  if (settings_.slq_vectors > 0 && a.density_vectors > 0) {
    const auto steps = static_cast<std::size_t>(settings_.slq_steps);
    const auto vectors = static_cast<std::size_t>(a.density_vectors);
    std::vector<solvers::QuadratureRule> rules(vectors);
    double low = std::numeric_limits<double>::infinity(), high = -low;
    for (std::size_t v = 0; v < vectors; ++v) {
      rules[v].nodes.assign(a.nodes.begin() + v * steps, a.nodes.begin() + (v + 1) * steps);
      rules[v].weights.assign(a.weights.begin() + v * steps, a.weights.begin() + (v + 1) * steps);
      for (const double node : rules[v].nodes) {
        low = std::min(low, node);
        high = std::max(high, node);
      }
    }
    const double width = high - low;
    const double sigma =
        settings_.density_sigma > 0 ? settings_.density_sigma : std::sqrt(1e-5 * std::max(1.0, width));
    const double pad = 0.01 * width + 5 * sigma;
    std::vector<double> grid(static_cast<std::size_t>(settings_.density_points));
    for (std::size_t i = 0; i < grid.size(); ++i) {
      grid[i] =
          (low - pad) + (width + 2 * pad) * static_cast<double>(i) / static_cast<double>(grid.size() - 1);
    }
    const double spacing = (width + 2 * pad) / static_cast<double>(grid.size() - 1);
    if (spacing > sigma && comm_.rank() == 0 && group.empty()) {
      engine::Log::user().warn(
          "hessian: the density grid spacing {:.3g} is wider than its Gaussians (sigma {:.3g}): peaks fall "
          "between "
          "points; raise density_points to {} or more, or density_sigma",
          spacing, sigma, static_cast<std::int64_t>(std::ceil((width + 2 * pad) / sigma)) + 1);
    }
    const std::vector<double> values = solvers::gaussian_density(rules, grid, sigma);
    h5.write_replicated(group + "/density/grid", grid);
    h5.write_replicated(group + "/density/values", values);
    h5.write_replicated_rows(group + "/density/nodes", a.nodes.data(), vectors, steps);
    h5.write_replicated_rows(group + "/density/weights", a.weights.data(), vectors, steps);
    h5.set_attribute(group + "/density", "sigma", sigma);
    h5.set_attribute(group + "/density", "vectors", a.density_vectors);
    h5.set_attribute(group + "/density", "steps", static_cast<std::int64_t>(settings_.slq_steps));
    h5.set_attribute(group + "/density", "description",
                     "values: spectral density on grid (integrates to 1), the average over vectors of "
                     "Gaussians of width sigma at the Gauss nodes (one row per Rademacher start vector)");
  }
  h5.set_attribute(root, "lanczos_seconds", a.eigen_seconds);
  h5.set_attribute(root, "trace_seconds", a.trace_seconds);
  h5.set_attribute(root, "density_seconds", a.density_seconds);
}

template <class Scalar>
void HessianJob<Scalar>::finalize() {
  const double hvp_seconds = operator_->applications() > 0
                                 ? comm_.allreduce(operator_->seconds(), comm::Op::max) /
                                       static_cast<double>(operator_->applications())
                                 : 0.0;
  const double hvp_median_seconds = comm_.allreduce(operator_->median_seconds(), comm::Op::max);
  io::OutputSet outputs(comm_, env_.out_dir);
  const std::string path = outputs.add("hessian.h5");
  {
    io::H5Writer h5(comm_, path);
    jobs::write_run_attributes(h5, env_, settings_.seed, "complete");
    write_analysis(h5, "", finished_.back());
    if (finished_.size() > 1) {
      for (const Analysis& a : finished_) write_analysis(h5, "/epoch_" + std::to_string(a.epoch), a);
    }
    h5.set_attribute("/", "parameters", parameters_);
    h5.set_attribute("/", "samples", samples_);
    h5.set_attribute("/", "analysed_samples", analysed_samples_);
    h5.set_attribute("/", "layer_sizes", join_sizes(shape_.layer_sizes));
    h5.set_attribute("/", "activation", solvers::nn::to_string(shape_.activation));
    h5.set_attribute("/", "loss", solvers::nn::to_string(shape_.loss));
    h5.set_attribute("/", "operator", to_string(settings_.op));
    h5.set_attribute("/", "precision", to_string(settings_.precision));
    h5.set_attribute("/", "gradient_seconds", gradient_seconds_);
    h5.set_attribute("/", "hvp_seconds", hvp_seconds);
    h5.set_attribute("/", "hvp_median_seconds", hvp_median_seconds);
    h5.set_attribute("/", "hvp_count", operator_->applications());
    h5.set_attribute("/", "train_epochs", static_cast<std::int64_t>(settings_.train_epochs));
    h5.set_attribute("/", "analyses", static_cast<std::int64_t>(finished_.size()));
    h5.close();
  }
  outputs.commit();
  const Analysis& last = finished_.back();
  engine::Log::user().info(
      "hessian: done: {} products ({:.3f} s each, gradient {:.3f} s){}{}; {}/hessian.h5",
      operator_->applications(), hvp_seconds, gradient_seconds_,
      last.top.empty() ? "" : fmt::format(", top eigenvalue {:.6g}", last.top.front()),
      settings_.trace_samples > 0
          ? fmt::format(", trace {:.6g} +- {:.2g}", last.trace.mean, last.trace.standard_error())
          : "",
      env_.out_dir);
}

template <class Scalar>
void HessianJob<Scalar>::save_state(engine::StateWriter& state) const {
  state.scalar("hessian.phase", static_cast<std::int64_t>(phase_));
  state.scalar("hessian.analysis_index", static_cast<std::int64_t>(analysis_index_));
  state.scalar("hessian.epoch", epoch_);
  state.scalar("hessian.train_step", train_step_);
  state.scalar("hessian.optimizer_steps", optimizer_steps_);
  state.scalar("hessian.epoch_loss_sum", epoch_loss_sum_);
  state.scalar("hessian.epoch_loss_samples", epoch_loss_samples_);
  state.scalar("hessian.finished", static_cast<std::int64_t>(finished_.size()));
  state.scalar("hessian.products", operator_->applications());
  state.scalar("hessian.product_seconds", comm_.allreduce(operator_->seconds(), comm::Op::max));
  state.replicated("hessian.params", to_host_vector(params_));
  if (moment1_.extent(0) > 0) state.replicated("hessian.moment1", to_host_vector(moment1_));
  if (moment2_.extent(0) > 0) state.replicated("hessian.moment2", to_host_vector(moment2_));
  for (std::size_t i = 0; i < finished_.size(); ++i)
    finished_[i].save(state, "hessian.analysis" + std::to_string(i) + ".");
  current_.save(state, "hessian.current.");
  if (phase_ == Phase::eigenpairs) {
    // Mid-Lanczos: the scalars, the projected matrix and basis vectors [0, size] are the whole state.
    const auto& s = eigensolver_->state();
    state.scalar("hessian.lanczos.m", static_cast<std::int64_t>(s.m));
    state.scalar("hessian.lanczos.size", static_cast<std::int64_t>(s.size));
    state.scalar("hessian.lanczos.restarts", static_cast<std::int64_t>(s.restarts));
    state.scalar("hessian.lanczos.applications", static_cast<std::int64_t>(s.applications));
    state.scalar("hessian.lanczos.random_draws", static_cast<std::int64_t>(s.random_draws));
    state.scalar("hessian.lanczos.scale", s.scale);
    state.scalar("hessian.lanczos.beta_m", s.beta_m);
    state.scalar("hessian.lanczos.done", static_cast<std::int64_t>(s.done ? 1 : 0));
    state.replicated("hessian.lanczos.projected", s.projected);
    for (int i = 0; i <= s.size; ++i) {
      state.replicated("hessian.lanczos.basis" + std::to_string(i), to_host_vector(eigensolver_->basis()[i]));
    }
  }
}

template <class Scalar>
void HessianJob<Scalar>::restore_state(engine::StateReader& state) {
  phase_ = static_cast<Phase>(state.int64_scalar("hessian.phase"));
  analysis_index_ = static_cast<std::size_t>(state.int64_scalar("hessian.analysis_index"));
  epoch_ = state.int64_scalar("hessian.epoch");
  train_step_ = state.int64_scalar("hessian.train_step");
  optimizer_steps_ = state.int64_scalar("hessian.optimizer_steps");
  epoch_loss_sum_ = state.double_scalar("hessian.epoch_loss_sum");
  epoch_loss_samples_ = state.int64_scalar("hessian.epoch_loss_samples");
  operator_->restore_counters(state.int64_scalar("hessian.products"),
                              state.double_scalar("hessian.product_seconds"));
  from_host_vector(state.replicated_double("hessian.params"), params_);
  if (moment1_.extent(0) > 0) from_host_vector(state.replicated_double("hessian.moment1"), moment1_);
  if (moment2_.extent(0) > 0) from_host_vector(state.replicated_double("hessian.moment2"), moment2_);
  finished_.assign(static_cast<std::size_t>(state.int64_scalar("hessian.finished")), Analysis{});
  for (std::size_t i = 0; i < finished_.size(); ++i)
    finished_[i].restore(state, "hessian.analysis" + std::to_string(i) + ".");
  current_.restore(state, "hessian.current.");
  eigensolver_.reset();
  if (phase_ == Phase::eigenpairs) {
    start_eigensolver();
    solvers::LanczosScalars s;
    s.m = static_cast<int>(state.int64_scalar("hessian.lanczos.m"));
    s.size = static_cast<int>(state.int64_scalar("hessian.lanczos.size"));
    s.restarts = static_cast<int>(state.int64_scalar("hessian.lanczos.restarts"));
    s.applications = static_cast<int>(state.int64_scalar("hessian.lanczos.applications"));
    s.random_draws = static_cast<std::uint64_t>(state.int64_scalar("hessian.lanczos.random_draws"));
    s.scale = state.double_scalar("hessian.lanczos.scale");
    s.beta_m = state.double_scalar("hessian.lanczos.beta_m");
    s.done = state.int64_scalar("hessian.lanczos.done") != 0;
    s.projected = state.replicated_double("hessian.lanczos.projected");
    std::vector<Vector> basis;
    for (int i = 0; i <= s.size; ++i) {
      basis.push_back(space_->create("hessian::restored_basis"));
      from_host_vector(state.replicated_double("hessian.lanczos.basis" + std::to_string(i)), basis.back());
    }
    eigensolver_->restore(s, basis);
  }
  if (phase_ == Phase::train) shuffle_epoch();
  phase_start_ = last_report_ = Clock::now();
  phase_start_steps_ = optimizer_steps_;
  engine::Log::user().info(
      "hessian: resumed at epoch {}{}", phase_ == Phase::train ? epoch_ : current_.epoch,
      phase_ == Phase::train ? fmt::format(", training step {}", train_step_)
      : phase_ == Phase::eigenpairs
          ? fmt::format(", eigenpairs after {} products", eigensolver_->state().applications)
      : phase_ == Phase::trace   ? fmt::format(", trace sample {}", current_.trace.samples)
      : phase_ == Phase::density ? fmt::format(", density vector {}", current_.density_vectors)
                                 : "");
}

}  // namespace

std::unique_ptr<engine::Job> make_job(const jobs::JobEnv& env) {
  Settings settings = parse_settings(env.config);
  if (settings.precision == Precision::float32)
    return std::make_unique<HessianJob<float>>(env, std::move(settings));
  return std::make_unique<HessianJob<double>>(env, std::move(settings));
}

}  // namespace skein::hessian
