// The jobs the `skein` executable knows, each with its spec and a factory; registered explicitly.
#pragma once

#include "engine/job.hpp"
#include "jobs/job_env.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace skein::jobs {

struct JobEntry {
  engine::JobSpec spec;
  // Validates the config (throws UsageError naming the key) and builds the job; must not communicate.
  std::function<std::unique_ptr<engine::Job>(const JobEnv&)> make;
};

// The key every job accepts besides its own: the watchdog's deadline in seconds (engine/watchdog.hpp).
inline constexpr const char* kCommTimeoutKey = "comm_timeout";

// Every job, in the order `skein jobs` lists them; each spec ends with the runner's keys (comm_timeout).
const std::vector<JobEntry>& all_jobs();
// nullptr when there is no such job.
const JobEntry* find_job(const std::string& name);

}  // namespace skein::jobs
