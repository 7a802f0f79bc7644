// The `poisson` job: a 3-D pressure-Poisson solve (CG, Jacobi-PCG or multigrid-PCG) on a domain-decomposed
// cell grid, one Krylov iteration per step, checkpointable and resumable on any rank count.
#pragma once

#include "engine/job.hpp"
#include "jobs/job_env.hpp"
#include "jobs/poisson/settings.hpp"

#include <memory>

namespace skein::poisson {

std::unique_ptr<engine::Job> make_job(const jobs::JobEnv& env);

}  // namespace skein::poisson
