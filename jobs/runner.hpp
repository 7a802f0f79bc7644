// Drives a job through its lifecycle on every rank: load or resume, steps with checkpoints and stop
// signals, finalize.
#pragma once

#include "engine/job.hpp"
#include "jobs/job_env.hpp"

#include <cstdint>
#include <vector>

namespace skein::jobs {

struct RunOptions {
  bool resume = false;
  bool fresh = false;                   // start over although --out holds a checkpoint (deleting it)
  double checkpoint_every_seconds = 0;  // 0: no periodic checkpoints
  std::int64_t checkpoint_every_steps = 0;
};

// Runs `job` to completion. On a stop signal it checkpoints at the next step boundary (unless the launcher's
// kill would come before the checkpoint could finish) and throws engine::Checkpointed (exit 75) on every
// rank. Without --resume or --fresh, a checkpoint in the output folder is a UsageError: a forgotten
// --resume must not throw away work. `keys` are the job's config keys (to explain a resume refusal).
void run_job(engine::Job& job, const JobEnv& env, const std::vector<engine::ConfigKey>& keys,
             const RunOptions& options);

}  // namespace skein::jobs
