// The `dsir` job: Data Selection with Importance Resampling (Xie et al. 2023) over sharded JSONL corpora.
#pragma once

#include "engine/job.hpp"
#include "jobs/dsir/settings.hpp"
#include "jobs/job_env.hpp"

#include <memory>

namespace skein::dsir {

std::unique_ptr<engine::Job> make_job(const jobs::JobEnv& env);

}  // namespace skein::dsir
