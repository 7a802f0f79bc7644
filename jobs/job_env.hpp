// What every job is constructed with: the communicator, its resolved config and where its outputs go.
#pragma once

#include "comm/communicator.hpp"
#include "engine/config.hpp"

#include <chrono>
#include <string>

namespace skein::jobs {

// What a job is constructed with. The references outlive the job.
struct JobEnv {
  const comm::Communicator& comm;
  const engine::Config& config;
  std::string out_dir;
  std::chrono::steady_clock::time_point started;  // for the wall_seconds output attribute
  std::string run_id;                              // random, the same on every rank; in every output
};

}  // namespace skein::jobs
