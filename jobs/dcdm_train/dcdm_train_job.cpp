#include "jobs/dcdm_train/dcdm_train_job.hpp"

#include "comm/exact_sum.hpp"
#include "comm/view_collectives.hpp"
#include "engine/error.hpp"
#include "engine/log.hpp"
#include "engine/random.hpp"
#include "io/atomic_output.hpp"
#include "io/hdf5.hpp"
#include "jobs/dcdm_model.hpp"
#include "jobs/dcdm_train/loss.hpp"
#include "jobs/poisson/problem.hpp"
#include "jobs/run_attributes.hpp"
#include "solvers/adam.hpp"
#include "solvers/dcdm_training_data.hpp"

#include <Kokkos_Core.hpp>

#include <chrono>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace skein::dcdm_train {

namespace {

using Clock = std::chrono::steady_clock;
using engine::UsageError;
using solvers::PoissonField;

// The job's random streams; their numbers are part of its results.
enum class TrainStream : std::uint32_t { epoch_order = 0x44540001u };

std::string key(const std::string& name) {
  return "config key 'dcdm-train." + name + "'";
}

}  // namespace

engine::JobSpec job_spec() {
  return {
      "dcdm-train",
      "trains the DCDM 3-D CNN (Kaneda et al. 2023) on Ritz vectors of a poisson problem's matrix, "
      "data-parallel",
      {
          {"grid", "32", "cells per axis of the training grid: nx,ny,nz (or one number for a cube)"},
          {"problem", "smoke",
           "manufactured (Dirichlet box) or smoke (Neumann box, air on top, spheres), as poisson"},
          {"obstacles", "default", "problem=smoke: spheres 'x,y,z,r;...', 'none' or 'default', as poisson"},
          {"ritz_vectors", "500", "Lanczos steps (Ritz vectors) for the training data (the paper: 10000)"},
          {"train_vectors", "1000", "training right-hand sides per epoch (the paper: 20000)"},
          {"low_fraction", "0.55",
           "fraction of the Ritz vectors, lowest first, whose coefficients get low_weight"},
          {"low_weight", "9", "weight of the low Ritz vectors' coefficients (the paper: 9)"},
          {"channels", "16", "channels of every convolution"},
          {"fine_pairs_before", "1", "residual pairs at full resolution before pooling (128^3 model: 2)"},
          {"coarse_pairs", "3", "residual pairs at half resolution (128^3 model: 5)"},
          {"fine_pairs_after", "2", "residual pairs at full resolution after upsampling (128^3 model: 3)"},
          {"epochs", "16", "passes over the training vectors"},
          {"lr", "1e-4", "Adam learning rate"},
          {"batch_size", "10", "right-hand sides per optimizer step (dealt to ranks)"},
          {"seed", "0", "seed of the Ritz start vector, training vectors, initial weights and epoch order"},
          {"progress_seconds", "10", "seconds between progress lines", false, false},
      },
      {"dcdm-train.h5"}};
}

Settings parse_settings(const engine::Config& config) {
  Settings s;
  s.problem.grid = config.get_int_triple("grid", 2, std::int64_t{1} << 16);
  const std::string problem = config.get_choice("problem", {"manufactured", "smoke"});
  s.problem.problem = problem == "smoke" ? poisson::ProblemKind::smoke : poisson::ProblemKind::manufactured;
  const std::string obstacles = config.get("obstacles");
  if (obstacles != "default" && s.problem.problem != poisson::ProblemKind::smoke) {
    throw UsageError(key("obstacles") + " is only used with problem=smoke (problem is " + problem + ")");
  }
  if (obstacles == "default") {
    s.problem.obstacles = poisson::default_obstacles(s.problem.grid);
  } else if (obstacles != "none") {
    s.problem.obstacles = poisson::parse_obstacles(obstacles, s.problem.grid, "dcdm-train");
  }
  s.ritz_vectors = static_cast<int>(config.get_int("ritz_vectors", 1, 1000000));
  s.train_vectors = config.get_int("train_vectors", 1, std::int64_t{1} << 40);
  s.low_fraction = config.get_double("low_fraction");
  if (!(s.low_fraction >= 0 && s.low_fraction <= 1)) {
    throw UsageError(key("low_fraction") + ": " + config.get("low_fraction") + " is not in [0, 1]");
  }
  s.low_weight = config.get_double("low_weight");
  if (!(s.low_weight > 0) || !std::isfinite(s.low_weight)) {
    throw UsageError(key("low_weight") + ": " + config.get("low_weight") + " must be positive");
  }
  s.architecture.channels = static_cast<int>(config.get_int("channels", 1, 64));
  s.architecture.fine_pairs_before = static_cast<int>(config.get_int("fine_pairs_before", 0, 100));
  s.architecture.coarse_pairs = static_cast<int>(config.get_int("coarse_pairs", 0, 100));
  s.architecture.fine_pairs_after = static_cast<int>(config.get_int("fine_pairs_after", 0, 100));
  s.epochs = config.get_int("epochs", 1, std::int64_t{1} << 30);
  s.lr = config.get_double("lr");
  if (!(s.lr > 0) || !std::isfinite(s.lr))
    throw UsageError(key("lr") + ": " + config.get("lr") + " must be positive");
  s.batch_size = config.get_int("batch_size", 1, 1 << 20);
  s.seed = static_cast<std::uint64_t>(config.get_int("seed", 0, std::numeric_limits<std::int64_t>::max()));
  s.problem.seed = s.seed;
  s.progress_seconds = config.get_double("progress_seconds");
  return s;
}

namespace {

class DcdmTrainJob final : public engine::Job {
 public:
  DcdmTrainJob(const jobs::JobEnv& env, Settings settings)
      : env_(env), comm_(env.comm), settings_(std::move(settings)) {}

  void load() override;
  bool step() override;
  void finalize() override;
  void save_state(engine::StateWriter& state) const override;
  void restore_state(engine::StateReader& state) override;
  std::uint64_t seed() const override { return settings_.seed; }
  bool checkpoint_due() const override { return epoch_just_ended_; }

 private:
  std::int64_t batches_per_epoch() const {
    return (settings_.train_vectors + settings_.batch_size - 1) / settings_.batch_size;
  }
  void make_order();
  void report(bool last);

  jobs::JobEnv env_;
  const comm::Communicator& comm_;
  Settings settings_;
  std::unique_ptr<comm::Communicator> self_;
  std::unique_ptr<comm::CartDecomposition> whole_;
  std::unique_ptr<solvers::PoissonOperator> op_;
  solvers::RitzBasis basis_;
  int low_count_ = 0;
  std::unique_ptr<solvers::cnn::DcdmNetwork<float>> net_;
  std::unique_ptr<solvers::Adam<float>> adam_;
  std::unique_ptr<LossWorkspace> work_;
  PoissonField b_, q_, dq_;
  Kokkos::View<float*> grad_;
  Kokkos::View<float*> sample_grad_;  // one sample's gradient, before the exact sum over samples
  std::vector<double> sample_grads_;  // this rank's samples' gradients and losses, a row each
  std::vector<std::int64_t> order_;
  std::int64_t epoch_ = 0, batch_ = 0;  // next batch to run
  double epoch_loss_sum_ = 0;           // sum of this epoch's per-sample losses so far
  std::vector<double> epoch_loss_, step_loss_;
  bool epoch_just_ended_ = false;
  Clock::time_point start_, last_report_;
  std::int64_t steps_this_run_ = 0;
  double sample_seconds_ = 0;
  std::int64_t samples_timed_ = 0;
};

void DcdmTrainJob::make_order() {
  std::vector<std::int64_t> items(static_cast<std::size_t>(settings_.train_vectors));
  std::iota(items.begin(), items.end(), 0);
  order_ = engine::seeded_order(
      settings_.seed, TrainStream::epoch_order,
      static_cast<std::uint64_t>(epoch_) * static_cast<std::uint64_t>(settings_.train_vectors), items);
}

void DcdmTrainJob::load() {
  const auto begin = Clock::now();
  // Data-parallel: every rank holds the whole grid (a one-rank decomposition), so samples, not cells, are
  // dealt to ranks, and the model does not depend on the rank count.
  self_ = std::make_unique<comm::Communicator>(comm_.split(comm_.rank(), 0));
  // One rank alone, whatever the rank count: its sums are already rank-count independent, so exact ones
  // (comm.reproducible) would only slow the Ritz basis down. The samples' sum over ranks stays exact.
  self_->set_exact_sums(false);
  whole_ = std::make_unique<comm::CartDecomposition>(*self_, settings_.problem.grid);
  auto cells = comm::make_field<std::uint8_t>(*whole_, 1, "dcdm::cells");
  auto rhs = comm::make_field<double>(*whole_, 1, "dcdm::problem_rhs");
  if (settings_.problem.problem == poisson::ProblemKind::smoke) {
    poisson::fill_smoke(*whole_, settings_.problem, cells, rhs);
  } else {
    poisson::fill_manufactured(*whole_, cells, rhs);
  }
  const std::int64_t fluid = poisson::count_fluid(*whole_, cells);
  comm_.agree([&] {
    if (fluid < 2) throw UsageError("dcdm-train: the obstacles leave fewer than 2 fluid cells");
  });
  op_ = std::make_unique<solvers::PoissonOperator>(*whole_, cells,
                                                   poisson::outside_cells(settings_.problem.problem));
  comm_.agree(
      [&] { net_ = std::make_unique<solvers::cnn::DcdmNetwork<float>>(settings_.architecture, *whole_); });
  const auto lanczos_begin = Clock::now();
  basis_ = solvers::ritz_basis(*op_, settings_.ritz_vectors, settings_.seed);
  low_count_ =
      static_cast<int>(std::llround(settings_.low_fraction * static_cast<double>(basis_.values.size())));
  engine::Log::user().info(
      "dcdm-train: {} problem {}x{}x{} ({} fluid cells), {} Ritz vectors (values {:.3e} .. {:.3e}) in {:.1f} "
      "s; "
      "{} parameters",
      poisson::to_string(settings_.problem.problem), settings_.problem.grid[0], settings_.problem.grid[1],
      settings_.problem.grid[2], fluid, basis_.values.size(),
      basis_.values.empty() ? 0.0 : basis_.values.front(), basis_.values.empty() ? 0.0 : basis_.values.back(),
      std::chrono::duration<double>(Clock::now() - lanczos_begin).count(),
      settings_.architecture.parameter_count());
  comm_.agree([&] {
    if (basis_.values.empty()) throw UsageError("dcdm-train: Lanczos found no Ritz vector (grid too small?)");
  });
  net_->initialize(settings_.seed);
  solvers::AdamSettings adam;
  adam.learning_rate = settings_.lr;
  adam_ = std::make_unique<solvers::Adam<float>>(settings_.architecture.parameter_count(), adam);
  work_ = std::make_unique<LossWorkspace>(*op_);
  b_ = op_->make_vector("dcdm::b");
  q_ = op_->make_vector("dcdm::q");
  dq_ = op_->make_vector("dcdm::dq");
  grad_ = Kokkos::View<float*>("dcdm::grad", settings_.architecture.parameter_count());
  sample_grad_ = Kokkos::View<float*>("dcdm::sample_grad", settings_.architecture.parameter_count());
  make_order();
  start_ = last_report_ = Clock::now();
  engine::Log::user().info("dcdm-train: set up in {:.1f} s; {} epochs of {} batches of {}",
                           std::chrono::duration<double>(Clock::now() - begin).count(), settings_.epochs,
                           batches_per_epoch(), settings_.batch_size);
}

bool DcdmTrainJob::step() {
  epoch_just_ended_ = false;
  if (epoch_ >= settings_.epochs) return true;
  const std::int64_t first = batch_ * settings_.batch_size;
  const std::int64_t count = std::min(settings_.batch_size, settings_.train_vectors - first);
  // With comm.reproducible each sample's gradient and loss is one row of an exact sum (comm/exact_sum.hpp):
  // whoever computes a sample computes it the same way (every rank holds the whole grid), and the exact sum
  // does not depend on which rank holds which rows, so the model is the same bits at any rank count.
  // Otherwise a rank accumulates its samples' gradients and the ranks' sums are summed (last bits differ).
  const bool exact = comm_.exact_sums();
  const std::size_t parameters = grad_.extent(0);
  std::vector<double> sample_losses;
  sample_grads_.clear();
  Kokkos::deep_copy(grad_, 0.0f);
  const auto begin = Clock::now();
  int mine = 0;
  const auto host_sample_grad = Kokkos::create_mirror_view(sample_grad_);
  for (std::int64_t t = comm_.rank(); t < count; t += comm_.size()) {
    solvers::training_vector(*op_, basis_, order_[static_cast<std::size_t>(first + t)], low_count_,
                             settings_.low_weight, settings_.seed, b_);
    net_->forward_for_training(b_, q_);
    sample_losses.push_back(dcdm_loss(*op_, b_, q_, dq_, *work_));
    if (exact) {
      Kokkos::deep_copy(sample_grad_, 0.0f);
      net_->backward(dq_, sample_grad_);
      Kokkos::deep_copy(host_sample_grad, sample_grad_);
      sample_grads_.insert(sample_grads_.end(), host_sample_grad.data(),
                           host_sample_grad.data() + parameters);
      sample_grads_.push_back(sample_losses.back());  // the row's last column: one exact sum for both
    } else {
      net_->backward(dq_, grad_);
    }
    ++mine;
  }
  if (mine > 0) {
    sample_seconds_ += std::chrono::duration<double>(Clock::now() - begin).count();
    samples_timed_ += mine;
  }
  double loss_sum = 0;
  if (exact) {
    std::vector<double> grad_sum(parameters + 1);
    comm::exact_sum_columns(comm_, parameters + 1, static_cast<std::size_t>(mine), sample_grads_.data(),
                            grad_sum.data());
    loss_sum = grad_sum[parameters];
    const auto host_grad = Kokkos::create_mirror_view(grad_);
    for (std::size_t x = 0; x < parameters; ++x) host_grad(x) = static_cast<float>(grad_sum[x]);
    Kokkos::deep_copy(grad_, host_grad);
  } else {
    double local_loss = 0;
    for (const double loss : sample_losses) local_loss += loss;
    comm_.allreduce(grad_, comm::Op::sum);
    loss_sum = comm_.allreduce(local_loss, comm::Op::sum);
  }
  const float scale = 1.0f / static_cast<float>(count);
  const auto grad = grad_;
  Kokkos::parallel_for(
      "dcdm::mean_gradient", Kokkos::RangePolicy<>(0, grad.extent(0)),
      KOKKOS_LAMBDA(const std::int64_t x) { grad(x) *= scale; });
  adam_->step(net_->parameters(), grad_);
  step_loss_.push_back(loss_sum / static_cast<double>(count));
  epoch_loss_sum_ += loss_sum;
  ++steps_this_run_;
  if (++batch_ == batches_per_epoch()) {
    epoch_loss_.push_back(epoch_loss_sum_ / static_cast<double>(settings_.train_vectors));
    engine::Log::user().info("dcdm-train: epoch {} / {}: mean loss {:.6f}", epoch_ + 1, settings_.epochs,
                             epoch_loss_.back());
    epoch_loss_sum_ = 0;
    batch_ = 0;
    ++epoch_;
    epoch_just_ended_ = true;
    if (epoch_ < settings_.epochs) make_order();
  }
  report(false);
  return epoch_ >= settings_.epochs;
}

void DcdmTrainJob::report(bool last) {
  if (comm_.rank() != 0 || last) return;
  const auto now = Clock::now();
  if (std::chrono::duration<double>(now - last_report_).count() < settings_.progress_seconds) return;
  last_report_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const std::int64_t done = epoch_ * batches_per_epoch() + batch_;
  const std::int64_t total = settings_.epochs * batches_per_epoch();
  const double per_step = elapsed / static_cast<double>(std::max<std::int64_t>(1, steps_this_run_));
  engine::Log::user().info("dcdm-train: epoch {} batch {} / {}, loss {:.6f}, {:.3f} s per sample, ETA {}",
                           epoch_ + 1, batch_, batches_per_epoch(), step_loss_.back(),
                           samples_timed_ > 0 ? sample_seconds_ / static_cast<double>(samples_timed_) : 0.0,
                           engine::human_duration(per_step * static_cast<double>(total - done)));
}

void DcdmTrainJob::finalize() {
  dcdm::LoadedModel model;
  model.architecture = settings_.architecture;
  model.trained_grid = settings_.problem.grid;
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), net_->parameters());
  model.parameters.assign(host.data(), host.data() + host.extent(0));
  const double per_sample =
      comm_.allreduce(samples_timed_ > 0 ? sample_seconds_ / samples_timed_ : 0.0, comm::Op::max);
  io::OutputSet outputs(comm_, env_.out_dir);
  const std::string path = outputs.add("dcdm-train.h5");
  {
    io::H5Writer h5(comm_, path);
    jobs::write_run_attributes(h5, env_, settings_.seed, "complete");
    dcdm::write_model(h5, model);
    h5.write_replicated("/history/loss", epoch_loss_);
    h5.set_attribute("/history/loss", "description",
                     "mean over the epoch's training vectors of ||b - alpha A f(b)||^2 (unit b), per epoch");
    h5.write_replicated("/history/step_loss", step_loss_);
    h5.set_attribute("/history/step_loss", "description", "mean loss of each minibatch, in order");
    h5.set_attribute("/", "ritz_vectors", static_cast<std::int64_t>(basis_.values.size()));
    h5.set_attribute("/", "seconds_per_sample", per_sample);
    h5.close();
  }
  outputs.commit();
  engine::Log::user().info(
      "dcdm-train: wrote {}/dcdm-train.h5 (final epoch loss {:.6f}; {:.3f} s per sample forward+backward)",
      env_.out_dir, epoch_loss_.empty() ? 0.0 : epoch_loss_.back(), per_sample);
}

void DcdmTrainJob::save_state(engine::StateWriter& state) const {
  auto params = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), net_->parameters());
  std::vector<double> p(params.data(), params.data() + params.extent(0));
  state.replicated("parameters", p);
  auto m = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), adam_->first_moment());
  auto v = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), adam_->second_moment());
  state.replicated("adam_m", std::vector<double>(m.data(), m.data() + m.extent(0)));
  state.replicated("adam_v", std::vector<double>(v.data(), v.data() + v.extent(0)));
  state.scalar("adam_step", adam_->step_count());
  state.scalar("epoch", epoch_);
  state.scalar("batch", batch_);
  state.scalar("epoch_loss_sum", epoch_loss_sum_);
  state.replicated("epoch_loss", epoch_loss_);
  state.replicated("step_loss", step_loss_);
}

void DcdmTrainJob::restore_state(engine::StateReader& state) {
  const auto p = state.replicated_double("parameters");
  const auto m = state.replicated_double("adam_m");
  const auto v = state.replicated_double("adam_v");
  const std::size_t n = static_cast<std::size_t>(settings_.architecture.parameter_count());
  comm_.agree([&] {
    if (p.size() != n || m.size() != n || v.size() != n) {
      throw engine::DataError("dcdm-train checkpoint: " + std::to_string(p.size()) +
                              " parameters saved, the configured architecture has " + std::to_string(n));
    }
  });
  auto params = Kokkos::create_mirror_view(net_->parameters());
  for (std::size_t x = 0; x < n; ++x) params(x) = static_cast<float>(p[x]);
  Kokkos::deep_copy(net_->parameters(), params);
  Kokkos::View<double*, Kokkos::HostSpace> hm(const_cast<double*>(m.data()), n),
      hv(const_cast<double*>(v.data()), n);
  Kokkos::View<double*> dm("m", n), dv("v", n);
  Kokkos::deep_copy(dm, hm);
  Kokkos::deep_copy(dv, hv);
  adam_->set_state(state.int64_scalar("adam_step"), dm, dv);
  epoch_ = state.int64_scalar("epoch");
  batch_ = state.int64_scalar("batch");
  epoch_loss_sum_ = state.double_scalar("epoch_loss_sum");
  epoch_loss_ = state.replicated_double("epoch_loss");
  step_loss_ = state.replicated_double("step_loss");
  if (epoch_ < settings_.epochs) make_order();
  engine::Log::user().info("dcdm-train: resumed at epoch {} batch {}", epoch_ + 1, batch_);
}

}  // namespace

std::unique_ptr<engine::Job> make_job(const jobs::JobEnv& env) {
  return std::make_unique<DcdmTrainJob>(env, parse_settings(env.config));
}

}  // namespace skein::dcdm_train
