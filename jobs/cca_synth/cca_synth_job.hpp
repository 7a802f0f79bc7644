// The `cca-synth` job: planted-signal PLINK genotypes and HDF5 features of any size for the cca job,
// generated and written in parallel (each rank its SNPs' .bed records), identical at any rank count.
#pragma once

#include "engine/job.hpp"
#include "jobs/cca_synth/settings.hpp"
#include "jobs/job_env.hpp"

#include <memory>

namespace skein::cca_synth {

std::unique_ptr<engine::Job> make_job(const jobs::JobEnv& env);

}  // namespace skein::cca_synth
