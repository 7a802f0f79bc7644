// The `cca` job: PLS / ridge CCA / CCA between two views (PLINK genotypes or HDF5 matrices against an HDF5
// matrix), columns sharded over ranks: stochastic GEP-EY one minibatch per step, or an exact solve.
#pragma once

#include "engine/job.hpp"
#include "jobs/cca/settings.hpp"
#include "jobs/job_env.hpp"

#include <memory>

namespace skein::cca {

std::unique_ptr<engine::Job> make_job(const jobs::JobEnv& env);

}  // namespace skein::cca
