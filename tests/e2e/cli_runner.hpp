// Runs the skein executable (optionally under mpirun) in a test, in the foreground or in the background (to
// signal or kill it mid-run), and captures its exit code and output.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace skein::test {

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
  double seconds = 0;
};

// `ranks` 0 runs skein directly; otherwise under mpirun -np ranks. Killed after `timeout_seconds`
// (exit code 124), so a hang fails the test instead of blocking it.
RunResult run_skein(int ranks, const std::vector<std::string>& args, int timeout_seconds = 120);

// What a background run ended with, beyond RunResult.
struct BackgroundResult : RunResult {
  bool timed_out = false;          // wait() gave up and killed what was left (exit_code 124)
  int most_ranks_seen = 0;         // rank processes seen alive at once while waiting
  double all_gone_after = -1;      // seconds from the first rank process ending to the last process of the
                                   // run ending (polled every 20 ms; -1: no rank was seen)
  std::vector<pid_t> left_behind;  // processes of the run still alive at the deadline (wait killed them)
};

// A skein run in the background (mpirun -np RANKS, or skein alone for ranks 0), for tests that signal or kill
// it mid-run. The launcher is fork/exec'd as the leader of its own process group, with stdout and stderr
// going to a file. Open MPI puts every rank in a process group of its own, so the run's processes are found
// by a tag in their environment (SKEIN_TEST_RUN_TAG, inherited by every rank) instead. Destroying a
// BackgroundRun SIGKILLs whatever is left of the run, so no failing test leaves a process behind.
class BackgroundRun {
 public:
  BackgroundRun(int ranks, const std::vector<std::string>& args,
                const std::vector<std::pair<std::string, std::string>>& env = {});
  BackgroundRun(BackgroundRun&& other) noexcept;
  BackgroundRun& operator=(BackgroundRun&&) = delete;
  BackgroundRun(const BackgroundRun&) = delete;
  ~BackgroundRun();

  pid_t pid() const { return pid_; }  // the launcher's pid, also its process group id
  double seconds() const;             // since start
  // Whether the launcher is still running (reaps it when it ended).
  bool running();
  // The run's live processes (not zombies): all of them, or only the ranks (everything but the launcher).
  std::vector<pid_t> processes() const;
  std::vector<pid_t> ranks() const;

  void signal_launcher(int signal_number);  // kill(pid)
  void signal_group(int signal_number);     // killpg(pid): the launcher's group (without Open MPI's ranks)
  void signal_ranks(int signal_number);     // every rank process, directly
  // SIGKILL to the launcher's group and to every process of the run, at once: a lost node.
  void kill_all();

  // Waits until the launcher and every rank ended; past `timeout_seconds` (from now) kills everything left
  // and reports exit code 124.
  BackgroundResult wait(double timeout_seconds);
  // Polls every 20 ms until `done()` holds (returns true), or the launcher ended or `timeout_seconds` passed
  // first (returns done() then).
  bool wait_until(const std::function<bool()>& done, double timeout_seconds);
  std::string output() const;  // stdout and stderr so far

 private:
  void reap(int status);
  pid_t pid_ = -1;
  bool reaped_ = false;
  int exit_code_ = -1;
  std::string tag_;
  std::string log_path_;
  std::chrono::steady_clock::time_point start_;
};

// Starts `skein ARGS` like run_skein, in the background; `env` adds environment variables.
BackgroundRun start_skein(int ranks, const std::vector<std::string>& args,
                          const std::vector<std::pair<std::string, std::string>>& env = {});

// Live processes (not zombies) whose environment holds NAME=VALUE.
std::vector<pid_t> processes_with_env(const std::string& name, const std::string& value);

// The names in a directory (none if it is missing), and them joined by spaces ("(empty)" if none).
std::set<std::string> dir_entries(const std::string& dir);
std::string join(const std::set<std::string>& names);
// Whether a directory holds a "*.tmp" entry (something half-written).
bool has_tmp_file(const std::string& dir);
// `args` with the option named like `option` (up to its '=') set to `option` instead.
std::vector<std::string> with_option(std::vector<std::string> args, const std::string& option);

// A fresh empty directory under the system temp dir.
std::string make_temp_dir(const std::string& tag);
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);
bool file_exists(const std::string& path);

}  // namespace skein::test
