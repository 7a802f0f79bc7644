#include "jobs/runner.hpp"

#include "engine/log.hpp"
#include "engine/signals.hpp"
#include "engine/watchdog.hpp"
#include "io/checkpoint.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <thread>

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
void check_resumable(const io::CheckpointInfo& info, const JobEnv& env,
                     const std::vector<engine::ConfigKey>& keys) {
  if (info.job != env.config.section()) {
    throw engine::UsageError("cannot resume: " + info.path + " is a checkpoint of job '" + info.job +
                             "', not '" + env.config.section() + "'");
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
      differences += "\n  " + env.config.section() + "." + key.name + ": checkpoint has '" + before +
                     "', now '" + now + "'";
    }
  }
  throw engine::UsageError("cannot resume from " + info.path +
                           ": the config differs in keys that change results:" + differences +
                           "\nrun with the checkpoint's config, or without --resume into a new --out");
}

// Test hook: SKEIN_FAULT=KIND:RANK:STEP makes rank RANK fail at step STEP, to test that every rank ends
// promptly. KIND: throw (an error agreed at the step boundary), abort (an error on one rank only),
// kill (the process dies with SIGKILL), stop (the process stops itself with SIGSTOP: the others wait in
// the step's first collective until comm_timeout ends the run).
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

std::string fmt_seconds(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", seconds);
  return text;
}

// Refuses to start over a checkpoint unless told to (--fresh deletes it), naming its step and age.
void check_fresh_start(const comm::Communicator& comm, const std::string& out_dir, bool fresh) {
  comm.agree([&] {
    if (comm.rank() != 0) return;
    const std::vector<std::string> paths = {io::checkpoint_path(out_dir),
                                            io::previous_checkpoint_path(out_dir)};
    if (fresh) {
      for (const auto& path : paths) {
        if (::unlink(path.c_str()) == 0) engine::Log::user().info("--fresh: deleted {}", path);
      }
      return;
    }
    for (const auto& path : paths) {
      if (::access(path.c_str(), F_OK) != 0) continue;
      std::string what;
      try {
        const io::CheckpointInfo info = io::read_checkpoint_info(path);
        what = "a checkpoint of " + info.job + " at step " + std::to_string(info.step) + ", written " +
               engine::human_duration(unix_now() - info.written_unix) + " ago";
      } catch (const std::exception& e) {
        what = "a checkpoint that cannot be used (" + std::string(e.what()) + ")";
      }
      throw engine::UsageError(path + " is " + what +
                               "; continue it with --resume, or start over with --fresh " +
                               "(which deletes it), or choose another --out");
    }
  });
}

// When the ranks next agree on stopping and checkpointing. Agreement is an allreduce, which costs more
// than a step of a small solve, so it happens about every kAgreementSeconds, every rank counting the same
// steps: the interval is chosen from the slowest rank's step time at the previous agreement.
constexpr double kAgreementSeconds = 0.2;
constexpr std::int64_t kMaxStepsBetweenAgreements = 1000;

}  // namespace

void run_job(engine::Job& job, const JobEnv& env, const std::vector<engine::ConfigKey>& keys,
             const RunOptions& options) {
  const comm::Communicator& comm = env.comm;
  auto& log = engine::Log::user();
  engine::install_stop_signal_handlers();
  const Fault fault = fault_from_environment();
  const bool faults = !fault.kind.empty();
  // Test hook: SKEIN_TEST_STEP_DELAY=SECONDS slows every step, so a test can signal a run mid-way.
  const char* delay_text = std::getenv("SKEIN_TEST_STEP_DELAY");
  const double step_delay = delay_text != nullptr ? std::atof(delay_text) : 0.0;

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
  } else {
    check_fresh_start(comm, env.out_dir, options.fresh);
  }
  if (!resumed) job.load();

  using Clock = std::chrono::steady_clock;
  auto last_checkpoint = Clock::now();
  double last_checkpoint_seconds = -1;  // how long the last checkpoint took (max over ranks); -1: none yet
  std::int64_t steps_since_checkpoint = 0;
  auto checkpoint = [&] {
    // HDF5's collective writes are out of comm/'s sight: the whole write is one deadline.
    const engine::BlockingScope blocking("writing a checkpoint");
    const auto begin = Clock::now();
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
    last_checkpoint = Clock::now();
    last_checkpoint_seconds =
        comm.allreduce(std::chrono::duration<double>(last_checkpoint - begin).count(), comm::Op::max);
    steps_since_checkpoint = 0;
    engine::Log::rank_log().debug("checkpoint written at step {} in {:.3f} s", step, last_checkpoint_seconds);
  };

  std::int64_t next_agreement = step + 1;
  std::int64_t last_interval = 1;
  auto interval_start = Clock::now();
  std::int64_t interval_first_step = step;
  while (true) {
    if (faults) {
      if (fault.rank == comm.rank() && fault.step == step) {
        if (fault.kind == "kill") ::raise(SIGKILL);
        if (fault.kind == "stop") ::raise(SIGSTOP);
        if (fault.kind == "abort")
          throw engine::InternalError("injected fault (SKEIN_FAULT) on this rank only");
      }
      comm.agree([&] {
        if (fault.kind == "throw" && fault.rank == comm.rank() && fault.step == step) {
          throw engine::InternalError("injected fault (SKEIN_FAULT) at step " + std::to_string(step));
        }
      });
    }
    const bool done = job.step();
    if (step_delay > 0) std::this_thread::sleep_for(std::chrono::duration<double>(step_delay));
    ++step;
    ++steps_since_checkpoint;
    if (done) break;
    const bool job_wants_checkpoint = job.checkpoint_due();
    if (step < next_agreement && !job_wants_checkpoint) continue;
    job.at_agreement();

    const auto now = Clock::now();
    const double since = std::chrono::duration<double>(now - last_checkpoint).count();
    const double seconds_per_step =
        std::chrono::duration<double>(now - interval_start).count() /
        static_cast<double>(std::max<std::int64_t>(1, step - interval_first_step));
    // [stop signal, periodic checkpoint due, slowest step, seconds since the signal, since the last
    // checkpoint]
    double flags[5] = {
        static_cast<double>(engine::received_stop_signal()),
        job_wants_checkpoint ||
                (options.checkpoint_every_seconds > 0 && since >= options.checkpoint_every_seconds) ||
                (options.checkpoint_every_steps > 0 &&
                 steps_since_checkpoint >= options.checkpoint_every_steps)
            ? 1.0
            : 0.0,
        seconds_per_step, engine::seconds_since_stop_signal(), since};
    comm.allreduce_inplace(flags, 5, comm::Op::max);
    const int signal_number = static_cast<int>(flags[0]);
    std::int64_t interval =
        std::clamp<std::int64_t>(static_cast<std::int64_t>(kAgreementSeconds / std::max(flags[2], 1e-9)), 1,
                                 kMaxStepsBetweenAgreements);
    // The step time is a guess from the last interval: one fast step (a cheap first iteration, a small
    // target file) must not set 1000 steps of a slower phase between agreements, which delayed periodic
    // checkpoints and stop signals by seconds (bench/faults found it). So the interval at most doubles,
    // and starts again at 1 after a step the job marked as the end of a unit (a new pass or epoch).
    interval = std::min(interval, job_wants_checkpoint ? std::int64_t{1} : 2 * last_interval);
    if (options.checkpoint_every_steps > 0) {
      interval = std::min(interval,
                          std::max<std::int64_t>(1, options.checkpoint_every_steps - steps_since_checkpoint));
    }
    if (options.checkpoint_every_seconds > 0) {
      const double left =
          options.checkpoint_every_seconds - flags[4];  // agreed, so every rank picks the same
      interval = std::min(
          interval, std::max<std::int64_t>(1, static_cast<std::int64_t>(left / std::max(flags[2], 1e-9))));
    }
    next_agreement = step + interval;
    last_interval = interval;
    interval_start = Clock::now();
    interval_first_step = step;

    if (signal_number != 0) {
      const double grace = engine::stop_grace_seconds(signal_number);
      const double left = grace - flags[3];
      const std::string stopped = std::string("stopped by ") + engine::signal_name(signal_number) +
                                  " after step " + std::to_string(step);
      // A checkpoint cut off by the launcher's SIGKILL is lost work and a wasted write: skip it when the
      // last one took longer than the time left (the previous checkpoint, if any, stays valid).
      if (grace >= 0 && last_checkpoint_seconds >= 0 && last_checkpoint_seconds > left) {
        // Only reached after this run wrote a checkpoint (its duration is known), so one is there.
        engine::throw_agreed_error(
            engine::ExitCode::checkpointed,
            stopped + "; no checkpoint: the launcher kills the ranks " + fmt_seconds(grace) +
                " after the signal and the last checkpoint took " + fmt_seconds(last_checkpoint_seconds) +
                "; the newest checkpoint in " + env.out_dir + " stays; run again with --resume");
      }
      checkpoint();
      engine::throw_agreed_error(engine::ExitCode::checkpointed,
                                 stopped + "; checkpoint written to " + env.out_dir +
                                     "/checkpoint.h5; run again with --resume to continue");
    }
    if (flags[1] != 0) checkpoint();
  }
  {
    const engine::BlockingScope blocking("finalize (writing the outputs)");
    job.finalize();
  }
  // The outputs are complete: the checkpoints describe an unfinished run and would only mislead a --resume.
  comm.agree([&] {
    if (comm.rank() != 0) return;
    for (const auto& path :
         {io::checkpoint_path(env.out_dir), io::previous_checkpoint_path(env.out_dir),
          io::checkpoint_path(env.out_dir) + ".tmp", io::previous_checkpoint_path(env.out_dir) + ".tmp"}) {
      ::unlink(path.c_str());
    }
  });
}

}  // namespace skein::jobs
