#include "jobs/poisson/poisson_job.hpp"

#include "comm/halo.hpp"
#include "engine/error.hpp"
#include "engine/log.hpp"
#include "io/atomic_output.hpp"
#include "io/hdf5.hpp"
#include "jobs/poisson/dcdm_direction.hpp"
#include "jobs/poisson/problem.hpp"
#include "jobs/run_attributes.hpp"
#include "solvers/cg.hpp"
#include "solvers/dcdm.hpp"
#include "solvers/multigrid.hpp"
#include "solvers/poisson_operator.hpp"
#include "solvers/poisson_space.hpp"
#include "solvers/preconditioner.hpp"

#include <Kokkos_Core.hpp>

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace skein::poisson {

namespace {

using Clock = std::chrono::steady_clock;
using solvers::PoissonField;
using Space = solvers::PoissonVectorSpace;
using Operator = solvers::PoissonOperator;
using Jacobi = solvers::JacobiPreconditioner<Space>;
using Multigrid = solvers::MultigridPreconditioner;

// Above this cosine between b and the constant null vector an all-Neumann right-hand side is inconsistent;
// a consistent one measures about 1e-16 (rounding in the sums), a random one about 1 / sqrt(cells).
constexpr double kInconsistent = 1e-10;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// What the job needs to know of a solver's state, whichever solver it is.
struct KrylovStatus {
  int iteration = 0;
  bool done = false;
  bool converged = false;
  bool breakdown = false;
  bool stalled = false;
};
// Checkpoint access to whole fields as global [nx][ny][nz] blocks (any decomposition reads its own back).
using BlockWriter = std::function<void(const std::string& key, const PoissonField& field)>;
using BlockReader = std::function<void(const std::string& key, const PoissonField& field)>;

// CgSolver is a template over its preconditioner and DcdmSolver another class; the job picks one at run
// time and then only needs these calls, so a small host-side interface hides which (one virtual call per
// iteration, outside any kernel).
class Krylov {
 public:
  virtual ~Krylov() = default;
  virtual bool start(const PoissonField& b, const PoissonField& x) = 0;
  virtual bool step() = 0;
  virtual KrylovStatus status() const = 0;
  virtual double relative_residual() const = 0;
  virtual const std::vector<double>& history() const = 0;
  // The solver's state under "poisson.*" keys (x included), and back; restore() then resumes the solve.
  virtual void save(engine::StateWriter& state, const BlockWriter& write) const = 0;
  virtual void restore(engine::StateReader& state, const BlockReader& read, const PoissonField& b,
                       const PoissonField& x) = 0;
  // Seconds spent computing search directions by a network (DCDM's inference); 0 for the others.
  virtual double direction_seconds() const { return 0.0; }
};

template <class Solver>
class CgKrylov final : public Krylov {
 public:
  template <class... Args>
  explicit CgKrylov(const Operator& op, Args&&... args) : op_(op), solver_(std::forward<Args>(args)...) {}
  bool start(const PoissonField& b, const PoissonField& x) override { return solver_.start(b, x); }
  bool step() override { return solver_.step(); }
  KrylovStatus status() const override {
    const auto& s = solver_.scalars();
    return {s.iteration, s.done, s.converged, s.breakdown};
  }
  double relative_residual() const override { return solver_.relative_residual(); }
  const std::vector<double>& history() const override { return solver_.history(); }
  void save(engine::StateWriter& state, const BlockWriter& write) const override {
    const auto& s = solver_.scalars();
    state.scalar("poisson.iteration", static_cast<std::int64_t>(s.iteration));
    state.scalar("poisson.rz", s.rz);
    state.scalar("poisson.rr", s.rr);
    state.scalar("poisson.b_norm", s.b_norm);
    state.scalar("poisson.done", static_cast<std::int64_t>(s.done));
    state.scalar("poisson.converged", static_cast<std::int64_t>(s.converged));
    state.scalar("poisson.breakdown", static_cast<std::int64_t>(s.breakdown));
    state.replicated("poisson.residual_history", solver_.history());
    write("poisson.x", solver_.x());
    write("poisson.r", solver_.r());
    write("poisson.p", solver_.p());
  }
  void restore(engine::StateReader& state, const BlockReader& read, const PoissonField& b,
               const PoissonField& x) override {
    solvers::CgScalars s;
    s.iteration = static_cast<int>(state.int64_scalar("poisson.iteration"));
    s.rz = state.double_scalar("poisson.rz");
    s.rr = state.double_scalar("poisson.rr");
    s.b_norm = state.double_scalar("poisson.b_norm");
    s.done = state.int64_scalar("poisson.done") != 0;
    s.converged = state.int64_scalar("poisson.converged") != 0;
    s.breakdown = state.int64_scalar("poisson.breakdown") != 0;
    const PoissonField r = op_.make_vector("poisson::restored_r"), p = op_.make_vector("poisson::restored_p");
    read("poisson.x", x);
    read("poisson.r", r);
    read("poisson.p", p);
    solver_.resume(b, x, r, p, s, state.replicated_double("poisson.residual_history"));
  }

 private:
  const Operator& op_;
  Solver solver_;
};

class DcdmKrylov final : public Krylov {
 public:
  using Solver = solvers::DcdmSolver<Space, Operator>;
  DcdmKrylov(const Space& space, const Operator& op, Solver::Direction direction, solvers::StoppingRule rule,
             int previous_directions)
      : op_(op),
        solver_(space, op, std::move(direction), rule, solvers::dcdm_projector(op), previous_directions) {}
  bool start(const PoissonField& b, const PoissonField& x) override { return solver_.start(b, x); }
  bool step() override { return solver_.step(); }
  KrylovStatus status() const override {
    const auto& s = solver_.scalars();
    return {s.iteration, s.done, s.converged, s.breakdown, s.stalled};
  }
  double relative_residual() const override { return solver_.relative_residual(); }
  const std::vector<double>& history() const override { return solver_.history(); }
  double direction_seconds() const override { return solver_.scalars().direction_seconds; }
  void save(engine::StateWriter& state, const BlockWriter& write) const override {
    const auto& s = solver_.scalars();
    state.scalar("poisson.iteration", static_cast<std::int64_t>(s.iteration));
    state.scalar("poisson.rr", s.rr);
    state.scalar("poisson.b_norm", s.b_norm);
    state.scalar("poisson.done", static_cast<std::int64_t>(s.done));
    state.scalar("poisson.converged", static_cast<std::int64_t>(s.converged));
    state.scalar("poisson.breakdown", static_cast<std::int64_t>(s.breakdown));
    state.scalar("poisson.direction_seconds", s.direction_seconds);
    state.scalar("poisson.kept_directions", static_cast<std::int64_t>(s.p_a_p.size()));
    // An empty replicated array may not round-trip: pad with one unused entry.
    std::vector<double> p_a_p = s.p_a_p;
    p_a_p.push_back(0.0);
    state.replicated("poisson.p_a_p", p_a_p);
    state.replicated("poisson.residual_history", solver_.history());
    write("poisson.x", solver_.x());
    const auto directions = solver_.directions();
    for (std::size_t j = 0; j < directions.size(); ++j) write("poisson.p" + std::to_string(j), directions[j]);
  }
  void restore(engine::StateReader& state, const BlockReader& read, const PoissonField& b,
               const PoissonField& x) override {
    solvers::DcdmScalars s;
    s.iteration = static_cast<int>(state.int64_scalar("poisson.iteration"));
    s.rr = state.double_scalar("poisson.rr");
    s.b_norm = state.double_scalar("poisson.b_norm");
    s.done = state.int64_scalar("poisson.done") != 0;
    s.converged = state.int64_scalar("poisson.converged") != 0;
    s.breakdown = state.int64_scalar("poisson.breakdown") != 0;
    s.direction_seconds = state.double_scalar("poisson.direction_seconds");
    const auto kept = static_cast<std::size_t>(state.int64_scalar("poisson.kept_directions"));
    s.p_a_p = state.replicated_double("poisson.p_a_p");
    s.p_a_p.resize(kept);
    read("poisson.x", x);
    std::vector<PoissonField> directions;
    for (std::size_t j = 0; j < kept; ++j) {
      directions.push_back(op_.make_vector("poisson::restored_p"));
      read("poisson.p" + std::to_string(j), directions.back());
    }
    solver_.resume(b, x, directions, s, state.replicated_double("poisson.residual_history"));
  }

 private:
  const Operator& op_;
  Solver solver_;
};

// The owned cells of a ghost-width-1 field, row-major: the block this rank writes into a global array.
template <class T>
std::vector<T> owned_block(const Kokkos::View<T***, Kokkos::LayoutRight>& field, const comm::Box3& owned) {
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), field);
  std::vector<T> out(static_cast<std::size_t>(owned.cells()));
  std::size_t at = 0;
  for (std::int64_t i = 0; i < owned.extent[0]; ++i)
    for (std::int64_t j = 0; j < owned.extent[1]; ++j)
      for (std::int64_t k = 0; k < owned.extent[2]; ++k) out[at++] = host(i + 1, j + 1, k + 1);
  return out;
}

// The inverse of owned_block; ghosts become 0.
void set_owned_block(const PoissonField& field, const comm::Box3& owned, const std::vector<double>& values) {
  auto host = Kokkos::create_mirror_view(field);
  Kokkos::deep_copy(host, 0.0);
  std::size_t at = 0;
  for (std::int64_t i = 0; i < owned.extent[0]; ++i)
    for (std::int64_t j = 0; j < owned.extent[1]; ++j)
      for (std::int64_t k = 0; k < owned.extent[2]; ++k) host(i + 1, j + 1, k + 1) = values[at++];
  Kokkos::deep_copy(field, host);
}

std::string grid_text(const std::array<std::int64_t, 3>& g) {
  return std::to_string(g[0]) + "x" + std::to_string(g[1]) + "x" + std::to_string(g[2]);
}

class PoissonJob final : public engine::Job {
 public:
  PoissonJob(const jobs::JobEnv& env, Settings settings)
      : env_(env), comm_(env.comm), settings_(std::move(settings)) {}

  void load() override;
  bool step() override;
  void finalize() override;
  void save_state(engine::StateWriter& state) const override;
  void restore_state(engine::StateReader& state) override;
  std::uint64_t seed() const override { return settings_.seed; }

 private:
  void build_problem();
  void check_all_neumann();
  void build_solver();
  void report(bool last);
  void restart_progress();

  const jobs::JobEnv& env_;
  const comm::Communicator& comm_;
  Settings settings_;

  std::unique_ptr<comm::CartDecomposition> decomposition_;
  comm::Box3 owned_;
  std::vector<std::uint64_t> shape_, offset_, extent_;  // this rank's block of the global [nx][ny][nz]
  solvers::CellField cells_;
  PoissonField b_, x_;
  std::unique_ptr<Operator> op_;
  std::unique_ptr<Space> space_;
  std::unique_ptr<Jacobi> jacobi_;
  std::unique_ptr<Multigrid> multigrid_;
  DcdmDirectionSource dcdm_direction_;  // solver=dcdm
  std::unique_ptr<Krylov> krylov_;

  double setup_seconds_ = 0;  // operator and preconditioner, the slowest rank's
  double solve_seconds_ = 0;  // this rank's time in start() and step(), carried through checkpoints
  double null_fraction_ = 0;  // all-Neumann: b's cosine with the constant, before projection
  // Progress: rate of residual decrease since this process began solving (or resumed).
  Clock::time_point progress_start_, last_report_;
  double progress_start_residual_ = 1.0;
};

void PoissonJob::load() {
  decomposition_ = std::make_unique<comm::CartDecomposition>(comm_, settings_.grid);
  owned_ = decomposition_->owned();
  for (int a = 0; a < 3; ++a) {
    shape_.push_back(static_cast<std::uint64_t>(settings_.grid[a]));
    offset_.push_back(static_cast<std::uint64_t>(owned_.offset[a]));
    extent_.push_back(static_cast<std::uint64_t>(owned_.extent[a]));
  }
  build_problem();
  build_solver();
  check_all_neumann();

  x_ = op_->make_vector("poisson::x");
  const auto begin = Clock::now();
  krylov_->start(b_, x_);
  solve_seconds_ = seconds_since(begin);
  restart_progress();
}

void PoissonJob::build_problem() {
  const auto begin = Clock::now();
  cells_ = comm::make_field<std::uint8_t>(*decomposition_, 1, "poisson::cells");
  b_ = comm::make_field<double>(*decomposition_, 1, "poisson::b");
  switch (settings_.problem) {
    case ProblemKind::manufactured:
      fill_manufactured(*decomposition_, cells_, b_);
      break;
    case ProblemKind::smoke:
      fill_smoke(*decomposition_, settings_, cells_, b_);
      break;
    case ProblemKind::file:
      read_file_problem(*decomposition_, settings_, cells_, b_);
      break;
  }
  const std::int64_t fluid = count_fluid(*decomposition_, cells_);
  comm_.agree([&] {
    if (fluid > 0) return;
    if (settings_.problem == ProblemKind::file) {
      throw engine::DataError(settings_.file + ": /cell_type has no fluid cell (value 0): nothing to solve");
    }
    throw engine::UsageError("poisson: the obstacles cover every cell: no fluid cell is left to solve for");
  });
  engine::Log::user().info("poisson: {} problem on {} cells ({} fluid), ranks {}x{}x{}, built in {:.3f} s",
                           to_string(settings_.problem), grid_text(settings_.grid), fluid,
                           decomposition_->dims()[0], decomposition_->dims()[1], decomposition_->dims()[2],
                           seconds_since(begin));
}

void PoissonJob::build_solver() {
  const auto begin = Clock::now();
  op_ = std::make_unique<Operator>(*decomposition_, cells_, outside_cells(settings_.problem));
  space_ = std::make_unique<Space>(*op_);
  const solvers::StoppingRule rule{settings_.tol, settings_.max_iters};
  auto projector = solvers::poisson_projector(*op_);
  std::string detail;
  switch (settings_.solver) {
    case SolverKind::cg:
      krylov_ = std::make_unique<CgKrylov<solvers::CgSolver<Space, Operator>>>(*op_, *space_, *op_, rule,
                                                                               projector);
      break;
    case SolverKind::pcg_jacobi: {
      const PoissonField diagonal = op_->make_vector("poisson::diagonal");
      op_->diagonal(diagonal);
      jacobi_ = std::make_unique<Jacobi>(*space_, diagonal);
      krylov_ = std::make_unique<CgKrylov<solvers::CgSolver<Space, Operator, Jacobi>>>(
          *op_, *space_, *op_, *jacobi_, rule, projector);
      break;
    }
    case SolverKind::mgpcg: {
      multigrid_ = std::make_unique<Multigrid>(*op_, settings_.multigrid);
      krylov_ = std::make_unique<CgKrylov<solvers::CgSolver<Space, Operator, Multigrid>>>(
          *op_, *space_, *op_, *multigrid_, rule, projector);
      const auto coarse = multigrid_->level_extent(multigrid_->levels() - 1);
      detail = ", " + std::to_string(multigrid_->levels()) + " levels (coarsest " + grid_text(coarse) +
               "), " + solvers::to_string(settings_.multigrid.smoother) + " " +
               std::to_string(settings_.multigrid.pre_smooth) + "+" +
               std::to_string(settings_.multigrid.post_smooth);
      break;
    }
    case SolverKind::dcdm: {
      dcdm_direction_ = make_dcdm_direction(*decomposition_, settings_, *op_);
      solvers::StoppingRule dcdm_rule = rule;
      dcdm_rule.stall_iters = settings_.dcdm_stall_iters;
      krylov_ = std::make_unique<DcdmKrylov>(*space_, *op_, dcdm_direction_.direction, dcdm_rule,
                                             settings_.dcdm_previous);
      detail = ", directions from " + dcdm_direction_.description + ", A-orthogonalised against the last " +
               std::to_string(settings_.dcdm_previous);
      break;
    }
  }
  Kokkos::fence();
  setup_seconds_ = comm_.allreduce(seconds_since(begin), comm::Op::max);
  engine::Log::user().info("poisson: solver {}{}, tol {:g}, setup {:.3f} s", settings_.solver_name, detail,
                           settings_.tol, setup_seconds_);
}

// An all-Neumann matrix is singular: A x = b has a solution only when b sums to 0 over the fluid. The
// solver projects the constant out of b and of the iterates; here the user learns how much was removed.
void PoissonJob::check_all_neumann() {
  if (!op_->singular()) return;
  null_fraction_ = op_->null_space_fraction(b_);
  const double sum = op_->fluid_sum(b_);
  const std::string what = fmt::format(
      "all-Neumann problem (no fluid cell touches air): the right-hand side sums to {:.6g} over the {} fluid "
      "cells, a fraction {:.3g} of its norm along the constant null vector",
      sum, op_->fluid_cells(), null_fraction_);
  comm_.agree([&] {
    if (null_fraction_ > kInconsistent && settings_.rhs_policy == RhsPolicy::error) {
      throw engine::DataError(
          (settings_.problem == ProblemKind::file ? settings_.file + ": " : std::string()) + what +
          "; no solution exists (rhs_policy=error); make /rhs sum to 0 or use poisson.rhs_policy=project");
    }
  });
  if (null_fraction_ > kInconsistent) {
    engine::Log::user().warn(
        "poisson: {}; removing its mean (rhs_policy=project): the solution solves the "
        "projected system",
        what);
  } else {
    engine::Log::user().info("poisson: {} (consistent); solving with the constant projected out", what);
  }
  op_->remove_mean(b_);
}

void PoissonJob::restart_progress() {
  progress_start_ = last_report_ = Clock::now();
  progress_start_residual_ = krylov_->relative_residual();
}

bool PoissonJob::step() {
  if (krylov_->status().done) return true;
  const auto begin = Clock::now();
  const bool done = krylov_->step();
  solve_seconds_ += seconds_since(begin);
  report(done);
  return done;
}

// Rank 0's progress line: iteration, relative residual, and an ETA from the rate at which the residual has
// been falling (decades per second) since this process began solving.
void PoissonJob::report(bool last) {
  if (comm_.rank() != 0) return;
  const auto now = Clock::now();
  if (!last && std::chrono::duration<double>(now - last_report_).count() < settings_.progress_seconds) return;
  last_report_ = now;
  const double residual = krylov_->relative_residual();
  const double elapsed = std::chrono::duration<double>(now - progress_start_).count();
  const double decades = residual > 0 ? std::log10(progress_start_residual_ / residual) : 0.0;
  std::string eta = "?";
  if (decades > 0 && elapsed > 0 && residual > settings_.tol) {
    eta = engine::human_duration(std::log10(residual / settings_.tol) / (decades / elapsed));
  }
  if (!last) {
    const int iteration = krylov_->status().iteration;
    const std::string inference =
        settings_.solver == SolverKind::dcdm && iteration > 0
            ? fmt::format(", directions {:.3f} s/iteration", krylov_->direction_seconds() / iteration)
            : "";
    engine::Log::user().info("poisson: {} iteration {}, relative residual {:.3e} (tol {:g}){}, ETA {}",
                             settings_.solver_name, iteration, residual, settings_.tol, inference, eta);
  }
}

void PoissonJob::finalize() {
  const KrylovStatus s = krylov_->status();
  const double solve_seconds = comm_.allreduce(solve_seconds_, comm::Op::max);
  const bool dcdm = settings_.solver == SolverKind::dcdm;
  const double direction_seconds = comm_.allreduce(krylov_->direction_seconds(), comm::Op::max);
  const double direction_per_iteration = s.iteration > 0 ? direction_seconds / s.iteration : 0.0;
  // The true residual of the returned x, as hypre's figures are (the recurrence's drifts slightly).
  const PoissonField r = op_->make_vector("poisson::true_residual");
  op_->residual(b_, x_, r);
  const double b_norm = std::sqrt(op_->dot(b_, b_));
  const double relative_residual = b_norm > 0 ? std::sqrt(op_->dot(r, r)) / b_norm : 0.0;
  const bool manufactured = settings_.problem == ProblemKind::manufactured;
  const double max_error = manufactured ? manufactured_max_error(*decomposition_, x_) : 0.0;
  const std::vector<double> solution = owned_block(x_, owned_);
  const std::vector<std::uint8_t> cells = owned_block(cells_, owned_);

  io::OutputSet outputs(comm_, env_.out_dir);
  const std::string path = outputs.add("poisson.h5");
  {
    io::H5Writer h5(comm_, path);
    jobs::write_run_attributes(h5, env_, settings_.seed, "complete");
    h5.write_block("/solution", shape_, offset_, extent_, solution.data());
    h5.write_block("/cell_type", shape_, offset_, extent_, cells.data());
    h5.set_attribute("/solution", "description",
                     "pressure per cell, [nx][ny][nz] C order; 0 on solid and air cells");
    h5.set_attribute("/cell_type", "description", "0 fluid, 1 solid (Neumann), 2 air (Dirichlet 0)");
    h5.write_replicated("/history/residual", krylov_->history());
    h5.set_attribute("/history/residual", "description",
                     "relative residual ||r|| / ||b|| before the first iteration and after each one");
    h5.set_attribute("/", "problem", to_string(settings_.problem));
    h5.set_attribute("/", "solver", settings_.solver_name);
    h5.set_attribute("/", "iterations", static_cast<std::int64_t>(s.iteration));
    h5.set_attribute("/", "converged", static_cast<std::int64_t>(s.converged ? 1 : 0));
    h5.set_attribute("/", "breakdown", static_cast<std::int64_t>(s.breakdown ? 1 : 0));
    h5.set_attribute("/", "stalled", static_cast<std::int64_t>(s.stalled ? 1 : 0));
    h5.set_attribute("/", "relative_residual", relative_residual);
    h5.set_attribute("/", "tol", settings_.tol);
    h5.set_attribute("/", "setup_seconds", setup_seconds_);
    h5.set_attribute("/", "solve_seconds", solve_seconds);
    h5.set_attribute("/", "fluid_cells", op_->fluid_cells());
    if (multigrid_) h5.set_attribute("/", "mg_levels", static_cast<std::int64_t>(multigrid_->levels()));
    if (dcdm) {
      h5.set_attribute("/", "dcdm_direction", settings_.dcdm_direction_name);
      if (!settings_.model.empty()) h5.set_attribute("/", "model", settings_.model);
      h5.set_attribute("/", "dcdm_previous", static_cast<std::int64_t>(settings_.dcdm_previous));
      // Part of solve_seconds: the time in the direction (the network's inference), fenced, slowest rank.
      h5.set_attribute("/", "direction_seconds", direction_seconds);
      h5.set_attribute("/", "direction_seconds_per_iteration", direction_per_iteration);
    }
    if (op_->singular()) h5.set_attribute("/", "rhs_null_fraction", null_fraction_);
    if (manufactured) h5.set_attribute("/", "max_error", max_error);
    h5.close();
  }
  outputs.commit();

  auto& log = engine::Log::user();
  const std::string figures =
      fmt::format("{} iterations, relative residual {:.3e}, setup {:.3f} s, solve {:.3f} s{}{}", s.iteration,
                  relative_residual, setup_seconds_, solve_seconds,
                  dcdm ? fmt::format(" (directions {:.3f} s, {:.4f} s/iteration)", direction_seconds,
                                     direction_per_iteration)
                       : "",
                  manufactured ? fmt::format(", max error {:.3e}", max_error) : "");
  if (s.converged) {
    log.info("poisson: {} converged: {}", settings_.solver_name, figures);
  } else {
    // Still exit 0: the output (with converged = 0 and the residual history) is what one looks at next.
    log.warn(
        "poisson: {} did NOT converge to tol {:g} ({}): {}; {}/poisson.h5 holds the last iterate "
        "(converged = 0)",
        settings_.solver_name, settings_.tol,
        s.breakdown ? "breakdown: the operator or preconditioner is not positive definite, or NaN"
        : s.stalled
            ? fmt::format(
                  "stalled: less than 1% gained in the last {} iterations (poisson.dcdm_stall_iters); "
                  "the model may not suit this problem: train one on it (dcdm-train), or use "
                  "solver=mgpcg",
                  settings_.dcdm_stall_iters)
            : "max_iters reached",
        figures, env_.out_dir);
  }
}

void PoissonJob::save_state(engine::StateWriter& state) const {
  state.scalar("poisson.solve_seconds", comm_.allreduce(solve_seconds_, comm::Op::max));
  krylov_->save(state, [&](const std::string& key, const PoissonField& field) {
    state.block(key, shape_, offset_, extent_, owned_block(field, owned_).data());
  });
}

void PoissonJob::restore_state(engine::StateReader& state) {
  solve_seconds_ = state.double_scalar("poisson.solve_seconds");
  krylov_->restore(
      state,
      [&](const std::string& key, const PoissonField& field) {
        set_owned_block(field, owned_, state.block_double(key, offset_, extent_));
      },
      b_, x_);
  engine::Log::user().info("poisson: resumed at iteration {}, relative residual {:.3e}",
                           krylov_->status().iteration, krylov_->relative_residual());
  restart_progress();
}

}  // namespace

std::unique_ptr<engine::Job> make_job(const jobs::JobEnv& env) {
  return std::make_unique<PoissonJob>(env, parse_settings(env.config));
}

}  // namespace skein::poisson
