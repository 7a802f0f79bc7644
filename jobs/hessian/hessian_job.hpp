// The `hessian` job: the loss Hessian (or Gauss-Newton matrix) of an MLP over a data set sharded across
// ranks: extremal eigenpairs by thick-restart Lanczos, Hutchinson trace, SLQ spectral density; optionally
// at several epochs of data-parallel training. One operator product (or one training step) per step.
#pragma once

#include "engine/job.hpp"
#include "jobs/hessian/settings.hpp"
#include "jobs/job_env.hpp"

#include <memory>

namespace skein::hessian {

std::unique_ptr<engine::Job> make_job(const jobs::JobEnv& env);

}  // namespace skein::hessian
