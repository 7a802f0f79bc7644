// `skein submit`: turns a job, its config and a resource request into a Slurm batch script that survives
// preemption (signal -> checkpoint -> exit 75 -> requeue -> --resume), writes it and hands it to sbatch.
#pragma once

#include "engine/job.hpp"

#include <string>
#include <utility>
#include <vector>

namespace skein::cluster {

enum class Launcher { srun, mpirun };

// Everything the batch script depends on, already validated, with absolute paths. render_sbatch() is a
// pure function of it (the golden tests build one by hand).
struct SubmitOptions {
  std::string job;          // a registered job name
  std::string config_path;  // absolute; with --array, "%a" stands for the array task id
  std::vector<std::pair<std::string, std::string>> overrides;  // KEY, VALUE: passed as --JOB.KEY=VALUE
  std::string out_dir;           // absolute: submit.sbatch, the Slurm logs, and skein's --out
  std::string workdir;           // absolute: the job runs here (#SBATCH --chdir), so relative inputs resolve
  std::string skein_executable;  // absolute
  std::string job_name;          // Slurm's --job-name; "" means "skein-JOB"
  int nodes = 1;
  int ntasks_per_node = 1;
  std::string time;               // HH:MM:SS or D-HH:MM:SS
  std::string partition;          // "" = the cluster's default
  std::string account;            // "" = the user's default
  int cpus_per_task = 0;          // 0 = not requested
  int gpus_per_node = 0;          // 0 = not requested
  std::string signal = "USR2";    // USR1, USR2 or TERM: what skein's ranks checkpoint on
  int signal_lead_seconds = 120;  // how long before the time limit Slurm sends it
  int max_requeues = 3;           // requeues after exit 75, counted by SLURM_RESTART_COUNT
  Launcher launcher = Launcher::srun;
  std::string srun_mpi = "pmix";         // srun --mpi=...: Debian's Slurm 22.05 + Open MPI 4.1 work with pmix
  std::string array;                     // "" or a Slurm --array spec (0-9, 1,3,5, 0-15:4, 0-99%10)
  double checkpoint_every = 0;           // skein run --checkpoint-every (0: only on the signal)
  std::vector<std::string> sbatch_args;  // extra #SBATCH options, e.g. "--mem=8G"
};

// The batch script for `options`: sorted, quoted #SBATCH lines, then a bash body that starts the launch in
// the background, forwards the signal to it, and requeues on exit 75.
std::string render_sbatch(const SubmitOptions& options);

// Parses and validates the words after `skein submit` (everything but --dry-run and --help) into options;
// reads and resolves the config file(s). `cwd` makes relative paths absolute. Throws engine::UsageError
// naming the option and the expected format.
SubmitOptions parse_submit_options(const std::vector<std::string>& args,
                                   const std::vector<engine::JobSpec>& jobs,
                                   const std::string& skein_executable, const std::string& cwd);

// `skein submit ...`: validates everything, writes OUT/submit.sbatch and runs sbatch (the program named by
// $SKEIN_SBATCH, default `sbatch` on PATH), printing the job id on stdout; `--dry-run` prints the script
// and submits nothing; `--help` prints the usage. Returns 0; errors throw engine::UsageError (exit 2) or
// engine::InternalError (exit 70: sbatch missing or failing for a reason other than the request).
// `skein_executable` "" means this process's /proc/self/exe.
int submit_command(const std::vector<std::string>& args, const std::vector<engine::JobSpec>& jobs,
                   const std::string& skein_executable);

// The absolute path of the running executable (/proc/self/exe resolved).
std::string current_executable();

// The usage text of `skein submit`.
std::string submit_usage();

}  // namespace skein::cluster
