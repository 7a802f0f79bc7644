// The `dcdm-train` job: trains the DCDM network (solvers/cnn3d) on Ritz-vector right-hand sides of the
// Poisson matrix of a `poisson` problem, data-parallel over ranks; writes OUT/dcdm-train.h5 (/model, usable
// as `poisson model=`, and /history/loss). One minibatch per step; a checkpoint at every epoch's end.
#pragma once

#include "engine/job.hpp"
#include "jobs/job_env.hpp"
#include "jobs/poisson/settings.hpp"
#include "solvers/cnn3d.hpp"

#include <memory>

namespace skein::dcdm_train {

struct Settings {
  poisson::Settings problem;  // grid, problem (manufactured | smoke), obstacles, seed
  int ritz_vectors = 0;
  std::int64_t train_vectors = 0;
  double low_fraction = 0;
  double low_weight = 0;
  solvers::cnn::DcdmArchitecture architecture;
  std::int64_t epochs = 0;
  double lr = 0;
  std::int64_t batch_size = 0;
  std::uint64_t seed = 0;
  double progress_seconds = 5;
};

engine::JobSpec job_spec();
// UsageError naming the key for any bad value. Never communicates.
Settings parse_settings(const engine::Config& config);
std::unique_ptr<engine::Job> make_job(const jobs::JobEnv& env);

}  // namespace skein::dcdm_train
