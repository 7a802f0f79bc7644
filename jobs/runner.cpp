#include "jobs/runner.hpp"

#include "engine/log.hpp"
#include "engine/signals.hpp"
#include "io/checkpoint.hpp"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>

namespace skein::jobs {

namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string hex(std::uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

std::map<std::string, std::string> parse_ini_values(const std::string& text) {
  std::map<std::string, std::string> values;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find(" = ");
    if (eq != std::string::npos) values[line.substr(0, eq)] = line.substr(eq + 3);
  }
  return values;
}

// Refuses to resume when a key that changes results differs from the checkpoint's, naming the keys.
void check_resumable(const io::CheckpointInfo& info, const JobEnv& env, const std::vector<engine::ConfigKey>& keys) {
  if (info.job != env.config.section()) {
    throw engine::UsageError("cannot resume: " + info.path + " is a checkpoint of job '" + info.job + "', not '" +
                             env.config.section() + "'");
  }
  if (info.config_hash == hex(env.config.results_hash())) return;
  const auto saved = parse_ini_values(info.config);
  std::string differences;
  for (const auto& key : keys) {
    if (!key.affects_results) continue;
    const auto it = saved.find(key.name);
    const std::string before = it == saved.end() ? "(unset)" : it->second;
    const std::string& now = env.config.get(key.name);
    if (before != now) {
      differences += "\n  " + env.config.section() + "." + key.name + ": checkpoint has '" + before + "', now '" + now + "'";
    }
  }
  throw engine::UsageError("cannot resume from " + info.path + ": the config differs in keys that change results:" +
                           differences + "\nrun with the checkpoint's config, or without --resume into a new --out");
}

// Test hook: SKEIN_FAULT=KIND:RANK:STEP makes rank RANK fail at step STEP, to test that every rank ends
// promptly. KIND: throw (an error agreed at the step boundary), abort (an error on one rank only),
// kill (the process dies with SIGKILL).
struct Fault {
  std::string kind;
  int rank = -1;
  std::int64_t step = -1;
};

Fault fault_from_environment() {
  Fault fault;
  const char* text = std::getenv("SKEIN_FAULT");
  if (!text) return fault;
  std::istringstream in(text);
  std::string rank, step;
  std::getline(in, fault.kind, ':');
  std::getline(in, rank, ':');
  std::getline(in, step, ':');
  try {
    fault.rank = std::stoi(rank);
    fault.step = std::stoll(step);
  } catch (const std::exception&) {
    throw engine::UsageError("SKEIN_FAULT='" + std::string(text) + "' is not KIND:RANK:STEP");
  }
  return fault;
}

}  // namespace

void run_job(engine::Job& job, const JobEnv& env, const std::vector<engine::ConfigKey>& keys,
             const RunOptions& options) {
  const comm::Communicator& comm = env.comm;
  auto& log = engine::Log::user();
  engine::install_stop_signal_handlers();
  const Fault fault = fault_from_environment();

  std::int64_t step = 0;
  bool resumed = false;
  if (options.resume) {
    std::vector<std::string> warnings;
    const auto info = io::find_checkpoint(comm, env.out_dir, warnings);
    for (const auto& warning : warnings) log.warn("skipping an unusable checkpoint: {}", warning);
    if (info) {
      comm.agree([&] { check_resumable(*info, env, keys); });
      log.info("resuming from {} (step {}, written by {} rank{} {} ago)", info->path, info->step, info->ranks,
               info->ranks == 1 ? "" : "s", engine::human_duration(unix_now() - info->written_unix));
      job.load();
      io::CheckpointReader reader(comm, info->path);
      job.restore_state(reader);
      step = info->step;
      resumed = true;
    } else {
      log.info("no checkpoint in {}/: starting from the beginning", env.out_dir);
    }
  }
  if (!resumed) job.load();

  auto last_checkpoint = std::chrono::steady_clock::now();
  std::int64_t steps_since_checkpoint = 0;
  auto checkpoint = [&] {
    io::CheckpointInfo info;
    info.job = env.config.section();
    info.step = step;
    info.ranks = comm.size();
    info.config = env.config.to_ini();
    info.config_hash = hex(env.config.results_hash());
    info.skein_version = SKEIN_VERSION;
    info.seed = static_cast<std::int64_t>(job.seed());
    info.written_unix = comm.allreduce(unix_now(), comm::Op::max);
    io::write_checkpoint(comm, env.out_dir, info, [&](engine::StateWriter& state) { job.save_state(state); });
    last_checkpoint = std::chrono::steady_clock::now();
    steps_since_checkpoint = 0;
    engine::Log::rank_log().debug("checkpoint written at step {}", step);
  };

  while (true) {
    if (fault.rank == comm.rank() && fault.step == step) {
      if (fault.kind == "kill") ::raise(SIGKILL);
      if (fault.kind == "abort") throw engine::InternalError("injected fault (SKEIN_FAULT) on this rank only");
    }
    bool done = false;
    comm.agree([&] {
      if (fault.kind == "throw" && fault.rank == comm.rank() && fault.step == step) {
        throw engine::InternalError("injected fault (SKEIN_FAULT) at step " + std::to_string(step));
      }
    });
    done = job.step();
    ++step;
    ++steps_since_checkpoint;
    if (done) break;
    const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_checkpoint).count();
    int flags[2] = {engine::received_stop_signal(),
                    (options.checkpoint_every_seconds > 0 && since >= options.checkpoint_every_seconds) ||
                        (options.checkpoint_every_steps > 0 && steps_since_checkpoint >= options.checkpoint_every_steps)};
    comm.allreduce_inplace(flags, 2, comm::Op::max);
    if (flags[0] || flags[1]) checkpoint();
    if (flags[0]) {
      engine::throw_agreed_error(engine::ExitCode::checkpointed,
                                 std::string("stopped by ") + engine::signal_name(flags[0]) + " after step " +
                                     std::to_string(step) + "; checkpoint written to " + env.out_dir +
                                     "/checkpoint.h5; run again with --resume to continue");
    }
  }
  job.finalize();
  // The outputs are complete: the checkpoints describe an unfinished run and would only mislead a --resume.
  comm.agree([&] {
    if (comm.rank() != 0) return;
    for (const auto& path : {io::checkpoint_path(env.out_dir), io::previous_checkpoint_path(env.out_dir),
                             io::checkpoint_path(env.out_dir) + ".tmp", io::previous_checkpoint_path(env.out_dir) + ".tmp"}) {
      ::unlink(path.c_str());
    }
  });
}

}  // namespace skein::jobs
