// The root attributes every job output carries (DESIGN.md "Outputs").
#pragma once

#include "io/hdf5.hpp"
#include "jobs/job_env.hpp"

#include <cstdint>
#include <string>

namespace skein::jobs {

// skein_version, job, config (resolved INI), ranks, status, seed, wall_seconds (since the run started), run_id.
void write_run_attributes(io::H5Writer& h5, const JobEnv& env, std::uint64_t seed, const std::string& status);

}  // namespace skein::jobs
