#include "cluster/submit.hpp"

#include "engine/config.hpp"
#include "engine/error.hpp"

#include <boost/program_options.hpp>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

extern char** environ;

namespace skein::cluster {
namespace po = boost::program_options;
namespace fs = std::filesystem;
using engine::InternalError;
using engine::UsageError;

namespace {

// The Slurm array task id inside the script, where "%a" stood in paths.
constexpr const char* kTaskId = "\"${SLURM_ARRAY_TASK_ID}\"";

bool shell_safe(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_@%+=:,./-", c) != nullptr;
}

// One shell word that reads back as `text` (single quotes unless every character is safe bare).
std::string shell_quote(const std::string& text) {
  if (!text.empty() && std::all_of(text.begin(), text.end(), shell_safe)) return text;
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// Like shell_quote, but with --array every "%a" becomes the running task's id.
std::string shell_word(const std::string& text, bool array) {
  if (!array || text.find("%a") == std::string::npos) return shell_quote(text);
  std::string word;
  std::size_t start = 0;
  while (true) {
    const std::size_t at = text.find("%a", start);
    const std::string part = text.substr(start, at == std::string::npos ? std::string::npos : at - start);
    if (!part.empty()) word += shell_quote(part);
    if (at == std::string::npos) break;
    word += kTaskId;
    start = at + 2;
  }
  return word;
}

std::string format_number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// ---- validation of option values; every message names the option and the expected format ----

int parse_count(const std::string& option, const std::string& text, int min_value, int max_value) {
  const std::string expected =
      min_value > 0 ? "a positive integer" : "an integer >= " + std::to_string(min_value);
  bool digits = !text.empty() && text.size() <= 9 && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
  const long value = digits ? std::stol(text) : -1;
  if (!digits || value < min_value || value > max_value) {
    throw UsageError("--" + option + ": expected " + expected + " (at most " + std::to_string(max_value) +
                     "), got '" + text + "'");
  }
  return static_cast<int>(value);
}

bool all_digits(const std::string& text, std::size_t min_size, std::size_t max_size) {
  return text.size() >= min_size && text.size() <= max_size &&
         std::all_of(text.begin(), text.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

// HH:MM:SS or D-HH:MM:SS; returns seconds.
long parse_time_limit(const std::string& text) {
  const auto fail = [&]() -> long {
    throw UsageError(
        "--time: expected HH:MM:SS or D-HH:MM:SS (minutes and seconds two digits, below 60; e.g. "
        "01:30:00 or 2-00:00:00), got '" +
        text + "'");
  };
  std::string rest = text;
  long days = 0;
  if (const auto dash = rest.find('-'); dash != std::string::npos) {
    const std::string day_text = rest.substr(0, dash);
    if (!all_digits(day_text, 1, 3)) fail();
    days = std::stol(day_text);
    rest = rest.substr(dash + 1);
  }
  if (rest.empty()) fail();
  std::vector<std::string> parts;
  std::istringstream in(rest);
  for (std::string part; std::getline(in, part, ':');) parts.push_back(part);
  if (parts.size() != 3 || rest.back() == ':' || !all_digits(parts[0], 1, 4) || !all_digits(parts[1], 2, 2) ||
      !all_digits(parts[2], 2, 2)) {
    fail();
  }
  const long hours = std::stol(parts[0]), minutes = std::stol(parts[1]), seconds = std::stol(parts[2]);
  if (minutes >= 60 || seconds >= 60 || (days > 0 && hours >= 24)) fail();
  const long total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds;
  if (total == 0) throw UsageError("--time: the time limit must be longer than 00:00:00");
  return total;
}

// SIG@SECONDS (or SIG alone: 120 s), SIG one of the signals skein's ranks checkpoint on.
void parse_signal(const std::string& text, SubmitOptions& options) {
  const auto fail = [&](const std::string& why) {
    throw UsageError(
        "--signal: expected SIG@SECONDS with SIG one of USR2, USR1, TERM and SECONDS 1..65535 "
        "(e.g. USR2@120), got '" +
        text + "'" + (why.empty() ? "" : ": " + why));
  };
  std::string spec = text;
  if (spec.rfind("B:", 0) == 0) spec = spec.substr(2);  // the script always asks for B: (the batch shell)
  const auto at = spec.find('@');
  std::string name = spec.substr(0, at);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::toupper(c); });
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  if (name != "USR1" && name != "USR2" && name != "TERM") {
    fail(name.empty() ? "" : "skein's ranks checkpoint on USR1, USR2 and TERM only");
  }
  int seconds = 120;
  if (at != std::string::npos) {
    const std::string lead = spec.substr(at + 1);
    if (!all_digits(lead, 1, 5) || std::stol(lead) < 1 || std::stol(lead) > 65535) fail("");
    seconds = static_cast<int>(std::stol(lead));
  }
  options.signal = name;
  options.signal_lead_seconds = seconds;
}

// Slurm's --array syntax: comma-separated N, N-M or N-M:STEP, then optionally %MAX_RUNNING. Returns the ids.
std::vector<long> parse_array(const std::string& text) {
  const auto fail = [&]() -> std::vector<long> {
    throw UsageError(
        "--array: expected Slurm's array syntax, comma-separated N, N-M or N-M:STEP, optionally "
        "followed by %MAX_RUNNING (e.g. 0-9, 1,3,5, 0-15:4, 0-99%10), got '" +
        text + "'");
  };
  std::string spec = text;
  if (const auto percent = spec.find('%'); percent != std::string::npos) {
    const std::string limit = spec.substr(percent + 1);
    if (!all_digits(limit, 1, 6) || std::stol(limit) == 0) fail();
    spec = spec.substr(0, percent);
  }
  if (spec.empty() || spec.back() == ',') fail();
  std::set<long> ids;
  std::istringstream in(spec);
  for (std::string item; std::getline(in, item, ',');) {
    std::string range = item, step_text = "1";
    if (const auto colon = item.find(':'); colon != std::string::npos) {
      range = item.substr(0, colon);
      step_text = item.substr(colon + 1);
    }
    const auto dash = range.find('-');
    const std::string first_text = range.substr(0, dash);
    const std::string last_text = dash == std::string::npos ? first_text : range.substr(dash + 1);
    if (!all_digits(first_text, 1, 7) || !all_digits(last_text, 1, 7) || !all_digits(step_text, 1, 7)) fail();
    const long first = std::stol(first_text), last = std::stol(last_text), step = std::stol(step_text);
    if (last < first || step == 0 || (dash == std::string::npos && item.find(':') != std::string::npos))
      fail();
    for (long id = first; id <= last; id += step) {
      ids.insert(id);
      if (ids.size() > 100000) throw UsageError("--array: '" + text + "' has more than 100000 tasks");
    }
  }
  return {ids.begin(), ids.end()};
}

void reject_newlines(const std::string& option, const std::string& value) {
  if (value.find_first_of("\n\r") != std::string::npos) {
    throw UsageError("--" + option + ": the value must be one line");
  }
}

std::string absolute_path(const std::string& path, const std::string& cwd) {
  fs::path p(path);
  if (p.is_relative()) p = fs::path(cwd) / p;
  std::string text = p.lexically_normal().string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return text;
}

std::string read_config(const std::string& path) {
  try {
    return engine::read_config_file(path);
  } catch (const UsageError& e) {
    throw UsageError(std::string("--config: ") + e.what());
  }
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// Options the script sets itself; --sbatch-arg may not override them.
const std::set<std::string>& managed_sbatch_options() {
  static const std::set<std::string> names = {"--nodes",
                                              "--ntasks-per-node",
                                              "--time",
                                              "--partition",
                                              "--account",
                                              "--cpus-per-task",
                                              "--gpus-per-node",
                                              "--signal",
                                              "--array",
                                              "--requeue",
                                              "--no-requeue",
                                              "--open-mode",
                                              "--output",
                                              "--error",
                                              "--chdir",
                                              "--job-name",
                                              "--ntasks",
                                              "-N",
                                              "-n",
                                              "-t",
                                              "-p",
                                              "-A",
                                              "-c",
                                              "-a",
                                              "-o",
                                              "-e",
                                              "-D",
                                              "-J"};
  return names;
}

// ---- running sbatch ----

// The environment sbatch passes on to the job. This process may be an MPI singleton whose MPI_Init added
// launcher variables (PMIX_*, OMPI_MCA_ess, ...) that would confuse the job's own launch, so start from the
// environment the process was started with (/proc/self/environ) and drop launcher variables from it too.
std::vector<std::string> job_environment() {
  std::vector<std::string> variables;
  std::ifstream in("/proc/self/environ", std::ios::binary);
  if (in) {
    for (std::string entry; std::getline(in, entry, '\0');) variables.push_back(entry);
  } else {
    for (char** entry = environ; *entry; ++entry) variables.emplace_back(*entry);
  }
  const auto launcher_variable = [](const std::string& entry) {
    const std::string name = entry.substr(0, entry.find('='));
    const auto starts = [&](const char* prefix) { return name.rfind(prefix, 0) == 0; };
    return (starts("PMIX_") && !starts("PMIX_MCA_")) || starts("PMI_") || starts("OMPI_MCA_ess") ||
           starts("OMPI_MCA_orte_") || starts("OMPI_MCA_pmix") || starts("OMPI_COMM_WORLD_") ||
           starts("OMPI_APP_CTX_") || name == "OMPI_COMMAND" || name == "OMPI_ARGV" ||
           name == "OMPI_UNIVERSE_SIZE" || name == "OMPI_NUM_APP_CTX" || name == "OMPI_FIRST_RANKS" ||
           name == "OMPI_FILE_LOCATION";
  };
  variables.erase(std::remove_if(variables.begin(), variables.end(), launcher_variable), variables.end());
  return variables;
}

std::string find_on_path(const std::string& program) {
  if (program.find('/') != std::string::npos) return ::access(program.c_str(), X_OK) == 0 ? program : "";
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

struct ProcessResult {
  int exit_code = -1;
  std::string out, err;
};

ProcessResult run_process(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  int out_pipe[2], err_pipe[2];
  if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0) {
    throw InternalError(std::string("cannot create a pipe for sbatch: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]})
    posix_spawn_file_actions_addclose(&actions, fd);
  std::vector<char*> args, envp;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  for (const auto& entry : env) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (spawned != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    throw InternalError("cannot run " + argv[0] + ": " + std::strerror(spawned));
  }
  ProcessResult result;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buffer[4096];
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& fd : fds) {
    if (fd.fd >= 0) ::close(fd.fd);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

void make_directories(const std::string& path) {
  std::error_code error;
  fs::create_directories(path, error);
  if (error || !fs::is_directory(path)) {
    throw UsageError("--out: cannot create directory " + path +
                     (error ? ": " + error.message() : ": not a directory"));
  }
}

void write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) throw UsageError("cannot write " + tmp + ": " + std::strerror(errno));
  }
  ::chmod(tmp.c_str(), 0755);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw UsageError("cannot write " + path + ": " + std::strerror(errno));
  }
}

}  // namespace

std::string submit_usage() {
  return "usage: skein submit JOB --config FILE.ini --nodes N --ntasks-per-node M --time HH:MM:SS [options]\n"
         "\n"
         "Writes OUT/submit.sbatch, a Slurm batch script that runs `skein run JOB --resume` on the "
         "allocation, and\n"
         "submits it with sbatch; prints the job id. On the preemption signal (sent --signal's SECONDS "
         "before the\n"
         "time limit, or by `scancel --signal=USR2 --batch JOBID`) the ranks finish their step, checkpoint "
         "to\n"
         "OUT/checkpoint.h5 and exit 75; the script then requeues the job, which resumes from the "
         "checkpoint.\n"
         "\n"
         "options:\n"
         "  --config FILE.ini         the job's config (checked before anything is submitted); with "
         "--array,\n"
         "                            %a in the path stands for the array task id\n"
         "  --JOB.KEY=VALUE           override a config key, as for `skein run`\n"
         "  --out DIR                 output directory (default out): submit.sbatch, the Slurm logs\n"
         "                            (slurm-JOBID.log) and the job's outputs; with --array, OUT/task-ID\n"
         "  --nodes N                 nodes (required)\n"
         "  --ntasks-per-node M       MPI ranks per node (required)\n"
         "  --time HH:MM:SS           time limit, or D-HH:MM:SS (required)\n"
         "  --partition P             Slurm partition (default: the cluster's default)\n"
         "  --account A               Slurm account\n"
         "  --cpus-per-task C         CPUs per rank (also sets OMP_NUM_THREADS)\n"
         "  --gpus-per-node G         GPUs per node\n"
         "  --signal SIG@SECONDS      preemption signal and its lead time before the time limit (default\n"
         "                            USR2@120; USR2, USR1 or TERM; USR1 may be taken by NCCL's debug "
         "dumps)\n"
         "  --max-requeues R          requeue at most R times after a checkpoint (default 3)\n"
         "  --launcher srun|mpirun    how the ranks are started (default srun)\n"
         "  --mpi TYPE                srun's --mpi plugin (default pmix, what Debian's Slurm and Open MPI "
         "use)\n"
         "  --array SPEC              a job array (Slurm syntax: 0-9, 1,3,5, 0-99%10)\n"
         "  --checkpoint-every S      also checkpoint every S seconds (skein run --checkpoint-every)\n"
         "  --job-name NAME           Slurm job name (default skein-JOB)\n"
         "  --sbatch-arg ARG          an extra #SBATCH option, e.g. --sbatch-arg=--mem=8G (repeatable)\n"
         "  --dry-run                 print the script; submit nothing, write nothing\n"
         "  --help                    this help\n";
}

std::string current_executable() {
  std::error_code error;
  const fs::path path = fs::read_symlink("/proc/self/exe", error);
  if (error) throw InternalError("cannot resolve /proc/self/exe: " + error.message());
  return path.string();
}

SubmitOptions parse_submit_options(const std::vector<std::string>& args,
                                   const std::vector<engine::JobSpec>& jobs,
                                   const std::string& skein_executable, const std::string& cwd) {
  std::vector<std::string> names;
  for (const auto& spec : jobs) names.push_back(spec.name);
  std::string all_names;
  for (const auto& name : names) all_names += (all_names.empty() ? "" : ", ") + name;
  if (args.empty() || args[0].empty() || args[0][0] == '-') {
    throw UsageError("submit: missing JOB before the options (jobs: " + all_names +
                     "; `skein submit --help`)");
  }
  const auto found =
      std::find_if(jobs.begin(), jobs.end(), [&](const engine::JobSpec& s) { return s.name == args[0]; });
  if (found == jobs.end()) {
    const std::string suggestion = engine::closest_match(args[0], names);
    throw UsageError("submit: unknown job '" + args[0] + "'" +
                     (suggestion.empty() ? "" : "; did you mean '" + suggestion + "'?") +
                     " (jobs: " + all_names + ")");
  }
  const engine::JobSpec& spec = *found;

  po::options_description description;
  const char* string_options[] = {
      "config",           "out",           "nodes",  "ntasks-per-node", "time",     "partition", "account",
      "cpus-per-task",    "gpus-per-node", "signal", "max-requeues",    "launcher", "mpi",       "array",
      "checkpoint-every", "job-name"};
  std::vector<std::string> valid;
  for (const char* name : string_options) {
    description.add_options()(name, po::value<std::string>());
    valid.push_back(std::string("--") + name);
  }
  description.add_options()("sbatch-arg", po::value<std::vector<std::string>>()->composing());
  valid.push_back("--sbatch-arg");
  for (const auto& key : spec.keys) {
    description.add_options()((spec.name + "." + key.name).c_str(), po::value<std::string>());
    valid.push_back("--" + spec.name + "." + key.name);
  }
  valid.push_back("--dry-run");
  valid.push_back("--help");

  po::variables_map vm;
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    po::store(po::command_line_parser(rest)
                  .options(description)
                  .style(po::command_line_style::unix_style ^ po::command_line_style::allow_guessing)
                  .run(),
              vm);
  } catch (const po::unknown_option& e) {
    const std::string option = e.get_option_name().substr(0, e.get_option_name().find('='));
    const std::string suggestion = engine::closest_match(option, valid);
    throw UsageError("submit: unknown option '" + option + "'" +
                     (suggestion.empty() ? "" : "; did you mean '" + suggestion + "'?") +
                     " (`skein submit --help` lists them)");
  } catch (const po::error& e) {
    throw UsageError(std::string("submit ") + spec.name + ": " + e.what());
  }
  const auto value = [&](const std::string& name) -> std::string {
    const auto it = vm.find(name);
    if (it == vm.end()) return "";
    const std::string text = it->second.as<std::string>();
    reject_newlines(name, text);
    return text;
  };
  for (const char* required : {"config", "nodes", "ntasks-per-node", "time"}) {
    if (!vm.count(required)) {
      throw UsageError(std::string("submit: --") + required + " is required (`skein submit --help`)");
    }
  }

  SubmitOptions options;
  options.job = spec.name;
  options.workdir = absolute_path(cwd, "/");
  options.skein_executable = skein_executable;
  options.nodes = parse_count("nodes", value("nodes"), 1, 100000);
  options.ntasks_per_node = parse_count("ntasks-per-node", value("ntasks-per-node"), 1, 100000);
  options.time = value("time");
  const long time_seconds = parse_time_limit(options.time);
  if (vm.count("cpus-per-task"))
    options.cpus_per_task = parse_count("cpus-per-task", value("cpus-per-task"), 1, 100000);
  if (vm.count("gpus-per-node"))
    options.gpus_per_node = parse_count("gpus-per-node", value("gpus-per-node"), 1, 1024);
  if (vm.count("max-requeues"))
    options.max_requeues = parse_count("max-requeues", value("max-requeues"), 0, 100000);
  if (vm.count("signal")) parse_signal(value("signal"), options);
  if (options.signal_lead_seconds >= time_seconds) {
    throw UsageError("--signal: the lead time " + std::to_string(options.signal_lead_seconds) +
                     " s is not shorter than --time " + options.time +
                     "; give a shorter lead (e.g. --signal " + options.signal + "@" +
                     std::to_string(std::max(1L, time_seconds / 10)) + ") or a longer --time");
  }
  for (const char* name : {"partition", "account", "job-name"}) {
    if (vm.count(name) && value(name).empty())
      throw UsageError(std::string("--") + name + ": expected a name, got ''");
  }
  options.partition = value("partition");
  options.account = value("account");
  options.job_name = value("job-name");
  if (vm.count("launcher")) {
    const std::string launcher = value("launcher");
    if (launcher == "srun") {
      options.launcher = Launcher::srun;
    } else if (launcher == "mpirun") {
      options.launcher = Launcher::mpirun;
    } else {
      throw UsageError("--launcher: expected srun or mpirun, got '" + launcher + "'");
    }
  }
  if (vm.count("mpi")) {
    options.srun_mpi = value("mpi");
    const bool plain = !options.srun_mpi.empty() &&
                       std::all_of(options.srun_mpi.begin(), options.srun_mpi.end(), [](char c) {
                         return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                       });
    if (!plain) {
      throw UsageError(
          "--mpi: expected an srun MPI plugin name such as pmix, pmix_v4, pmi2 or none (`srun "
          "--mpi=list` shows them), got '" +
          options.srun_mpi + "'");
    }
  }
  std::vector<long> array_ids;
  if (vm.count("array")) {
    options.array = value("array");
    array_ids = parse_array(options.array);
  }
  if (vm.count("checkpoint-every")) {
    const std::string text = value("checkpoint-every");
    char* end = nullptr;
    errno = 0;
    const double seconds = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno != 0 || !(seconds >= 0) || seconds > 1e9) {
      throw UsageError("--checkpoint-every: expected a number of seconds >= 0, got '" + text + "'");
    }
    options.checkpoint_every = seconds;
  }
  if (vm.count("sbatch-arg")) {
    for (const auto& arg : vm["sbatch-arg"].as<std::vector<std::string>>()) {
      reject_newlines("sbatch-arg", arg);
      if (arg.size() < 2 || arg[0] != '-') {
        throw UsageError("--sbatch-arg: expected an sbatch option such as --mem=8G, got '" + arg + "'");
      }
      const std::string name = arg.substr(0, arg.find('='));
      if (managed_sbatch_options().count(name)) {
        throw UsageError("--sbatch-arg: " + name +
                         " is set by skein submit itself; use its own option instead (`skein "
                         "submit --help`)");
      }
      options.sbatch_args.push_back(arg);
    }
  }

  options.out_dir = absolute_path(vm.count("out") ? value("out") : "out", options.workdir);
  if (options.out_dir.find('%') != std::string::npos) {
    throw UsageError("--out: '" + options.out_dir +
                     "' contains '%', which Slurm reads as a file-name pattern");
  }
  options.config_path = absolute_path(value("config"), options.workdir);
  if (options.config_path.find("%a") != std::string::npos && options.array.empty()) {
    throw UsageError("--config: '%a' in " + options.config_path +
                     " stands for the array task id, but there is no --array");
  }

  for (const auto& key : spec.keys) {
    const auto it = vm.find(spec.name + "." + key.name);
    if (it == vm.end()) continue;
    const std::string text = it->second.as<std::string>();
    reject_newlines(spec.name + "." + key.name, text);
    options.overrides.emplace_back(key.name, text);
  }

  // The config is resolved here, as `skein run` will resolve it, so mistakes show before anything is queued.
  std::vector<std::string> config_files;
  if (options.config_path.find("%a") != std::string::npos) {
    for (long id : array_ids)
      config_files.push_back(replace_all(options.config_path, "%a", std::to_string(id)));
  } else {
    config_files.push_back(options.config_path);
  }
  for (const auto& path : config_files) {
    // The [comm] section (comm.backend, comm.gpu_aware) is every job's; `skein run` checks it on the nodes.
    engine::Config::resolve(spec.name, spec.keys, engine::split_ini_section(read_config(path), "comm").second,
                            path, options.overrides);
  }
  return options;
}

std::string render_sbatch(const SubmitOptions& options) {
  const bool array = !options.array.empty();
  std::vector<std::pair<std::string, std::string>> directives = {
      {"--chdir", options.workdir},
      {"--job-name", options.job_name.empty() ? "skein-" + options.job : options.job_name},
      {"--nodes", std::to_string(options.nodes)},
      {"--ntasks-per-node", std::to_string(options.ntasks_per_node)},
      {"--open-mode", "append"},
      {"--output", options.out_dir + (array ? "/slurm-%A_%a.log" : "/slurm-%j.log")},
      {"--requeue", ""},
      {"--signal", "B:" + options.signal + "@" + std::to_string(options.signal_lead_seconds)},
      {"--time", options.time},
  };
  if (!options.partition.empty()) directives.emplace_back("--partition", options.partition);
  if (!options.account.empty()) directives.emplace_back("--account", options.account);
  if (options.cpus_per_task > 0)
    directives.emplace_back("--cpus-per-task", std::to_string(options.cpus_per_task));
  if (options.gpus_per_node > 0)
    directives.emplace_back("--gpus-per-node", std::to_string(options.gpus_per_node));
  if (array) directives.emplace_back("--array", options.array);
  std::vector<std::string> lines;
  for (const auto& [name, value] : directives) {
    lines.push_back("#SBATCH " + name + (value.empty() ? "" : "=" + shell_quote(value)));
  }
  for (const auto& arg : options.sbatch_args) {
    const auto eq = arg.find('=');
    lines.push_back("#SBATCH " + (eq == std::string::npos
                                      ? arg
                                      : arg.substr(0, eq + 1) + shell_quote(arg.substr(eq + 1))));
  }
  std::sort(lines.begin(), lines.end());

  const std::string out_word = shell_word(array ? options.out_dir + "/task-%a" : options.out_dir, array);
  const std::string script_path = options.out_dir + "/submit.sbatch";
  const std::string log_name = array ? "slurm-JOBID_TASK.log" : "slurm-JOBID.log";
  const std::string sig = options.signal;
  // Open MPI's mpirun ends the job on SIGTERM instead of passing it on; USR2 reaches the ranks either way.
  const std::string forwarded_term = options.launcher == Launcher::mpirun ? "USR2" : "TERM";
  const std::string forwarded_sig = options.launcher == Launcher::mpirun && sig == "TERM" ? "USR2" : sig;

  std::ostringstream s;
  s << "#!/bin/bash\n";
  s << "# Generated by `skein submit` for job " << options.job << ": " << options.nodes << " node"
    << (options.nodes == 1 ? "" : "s") << " x " << options.ntasks_per_node << " rank"
    << (options.ntasks_per_node == 1 ? "" : "s") << ", time limit " << options.time << ".\n";
  s << "# Logs: " << options.out_dir << "/" << log_name << ". Submit again with `sbatch " << script_path
    << "`: it resumes from the checkpoint.\n";
  for (const auto& line : lines) s << line << "\n";
  s << "\n";
  s << "# Preemption: Slurm sends SIG" << sig << " to this shell " << options.signal_lead_seconds
    << " s before the time limit, and\n# `scancel --signal=" << sig << " --batch JOBID` sends it at once. "
    << "The shell passes it to the ranks, which finish\n"
    << "# their step, write checkpoint.h5 and exit 75; the shell then requeues the job (at most "
    << options.max_requeues << " times)\n# and the restart resumes from the checkpoint.\n";
  s << "set -u\n";
  s << "export HDF5_USE_FILE_LOCKING=FALSE  # parallel HDF5 on network file systems\n";
  if (options.cpus_per_task > 0) {
    s << "export OMP_NUM_THREADS=" << options.cpus_per_task << " OMP_PROC_BIND=spread OMP_PLACES=threads\n";
  }
  if (options.launcher == Launcher::mpirun) {
    s << "if [ \"$(id -u)\" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; "
         "fi\n";
  }
  s << "max_requeues=" << options.max_requeues << "\n";
  s << "restarts=${SLURM_RESTART_COUNT:-0}\n";
  s << "out=" << out_word << "\n";
  s << "\n";
  s << "launch=(";
  if (options.launcher == Launcher::srun) {
    s << "srun --unbuffered --kill-on-bad-exit=1 --mpi=" << options.srun_mpi;
    // srun does not inherit sbatch's --cpus-per-task (Slurm >= 22.05).
    if (options.cpus_per_task > 0) s << " --cpus-per-task=" << options.cpus_per_task;
  } else {
    s << "mpirun -np " << static_cast<long>(options.nodes) * options.ntasks_per_node
      << " --map-by ppr:" << options.ntasks_per_node << ":node";
    if (options.cpus_per_task > 1) s << ":PE=" << options.cpus_per_task;
  }
  s << "\n  " << shell_quote(options.skein_executable) << " run " << shell_quote(options.job) << " --config "
    << shell_word(options.config_path, array);
  for (const auto& [key, value] : options.overrides) {
    s << " " << shell_quote("--" + options.job + "." + key + "=" + value);
  }
  s << "\n  --out \"$out\" --resume";
  if (options.checkpoint_every > 0) s << " --checkpoint-every " << format_number(options.checkpoint_every);
  s << ")\n";
  s << "\n";
  s << "launcher=\"\"\n";
  s << "stop=\"\"\n";
  s << "on_signal() {  # SIGNAL-RECEIVED SIGNAL-TO-SEND\n";
  s << "  echo \"skein-submit: SIG$1 at $(date '+%F %T'): asking the ranks to checkpoint and stop\"\n";
  s << "  stop=$2\n";
  s << "  if [ -n \"$launcher\" ]; then kill -s \"$2\" \"$launcher\" 2>/dev/null || true; fi\n";
  s << "}\n";
  s << "trap 'on_signal " << sig << " " << forwarded_sig << "' " << sig << "\n";
  if (sig != "TERM") s << "trap 'on_signal TERM " << forwarded_term << "' TERM\n";
  s << "\n";
  s << "echo \"skein-submit: job ${SLURM_JOB_ID:-?} (restart ${restarts}) on ${SLURM_JOB_NODELIST:-?} at "
       "$(date '+%F "
       "%T'): ${launch[*]}\"\n";
  s << "if [ -z \"$stop\" ]; then\n";
  s << "  \"${launch[@]}\" &\n";
  s << "  launcher=$!\n";
  s << "  # `wait` returns early when a trapped signal arrives: wait until the launcher has ended, then "
       "collect\n";
  s << "  # its exit code (bash keeps it).\n";
  s << "  while kill -0 \"$launcher\" 2>/dev/null; do wait \"$launcher\"; done\n";
  s << "  wait \"$launcher\"\n";
  s << "  status=$?\n";
  s << "else\n";
  s << "  status=75  # stopped before the launch: nothing to checkpoint, requeue as if checkpointed\n";
  s << "fi\n";
  s << "\n";
  s << "requeue=\"\"\n";
  s << "if [ \"$status\" -eq 75 ]; then\n";
  s << "  requeue=\"checkpointed (exit 75)\"\n";
  s << "elif [ \"$status\" -eq 0 ] && { [ -e \"$out/checkpoint.h5\" ] || [ ! -e \"$out/" << options.job
    << ".h5\" ]; }; then\n";
  s << "  # A complete run writes " << options.job
    << ".h5 and removes its checkpoints; srun (Slurm 22.05) exits 0 when a step fails\n";
  s << "  # to launch.\n";
  s << "  echo \"skein-submit: the launcher exited 0, but $out/" << options.job
    << ".h5 is missing or a checkpoint is left: the ranks did not run to the end\"\n";
  s << "  status=70\n";
  s << "  requeue=\"not run to the end\"\n";
  s << "fi\n";
  s << "if [ -n \"$requeue\" ]; then\n";
  s << "  if [ \"$restarts\" -lt \"$max_requeues\" ]; then\n";
  s << "    echo \"skein-submit: $requeue at $(date '+%F %T'); requeueing job ${SLURM_JOB_ID} (restart "
       "$((restarts + 1)) of at most $max_requeues)\"\n";
  s << "    scontrol requeue \"${SLURM_JOB_ID}\" && exit \"$status\"\n";
  s << "    echo \"skein-submit: scontrol requeue failed; submit again with: sbatch "
    << shell_quote(script_path) << "\"\n";
  s << "  else\n";
  s << "    echo \"skein-submit: $requeue, but the job was requeued $restarts times already "
       "(--max-requeues); "
       "submit again with: sbatch "
    << shell_quote(script_path) << "\"\n";
  s << "  fi\n";
  s << "fi\n";
  s << "echo \"skein-submit: skein ended with exit code $status at $(date '+%F %T')\"\n";
  s << "exit \"$status\"\n";
  return s.str();
}

int submit_command(const std::vector<std::string>& args, const std::vector<engine::JobSpec>& jobs,
                   const std::string& skein_executable) {
  bool dry_run = false, help = args.empty();
  std::vector<std::string> rest;
  for (const auto& arg : args) {
    if (arg == "--dry-run") {
      dry_run = true;
    } else if (arg == "--help" || arg == "-h") {
      help = true;
    } else {
      rest.push_back(arg);
    }
  }
  if (help) {
    std::cout << submit_usage();
    if (args.empty()) throw UsageError("submit: missing JOB (`skein submit --help`)");
    return 0;
  }
  std::error_code error;
  const std::string cwd = fs::current_path(error).string();
  if (error) throw InternalError("cannot read the current directory: " + error.message());
  const std::string executable =
      skein_executable.empty() ? current_executable() : absolute_path(skein_executable, cwd);
  const SubmitOptions options = parse_submit_options(rest, jobs, executable, cwd);
  const std::string script = render_sbatch(options);
  if (dry_run) {
    std::cout << script << std::flush;
    return 0;
  }

  const char* sbatch_override = std::getenv("SKEIN_SBATCH");
  const std::string sbatch_name = sbatch_override && *sbatch_override ? sbatch_override : "sbatch";
  const std::string sbatch = find_on_path(sbatch_name);
  if (sbatch.empty()) {
    throw InternalError(
        "submit: '" + sbatch_name +
        "' not found on PATH: run this on a Slurm login node "
        "(cluster/local-slurm.sh start makes a single-node Slurm here); `--dry-run` prints the "
        "script without submitting it");
  }
  make_directories(options.out_dir);
  const std::string script_path = options.out_dir + "/submit.sbatch";
  write_file(script_path, script);
  const ProcessResult result = run_process({sbatch, "--parsable", script_path}, job_environment());
  if (result.exit_code != 0) {
    throw UsageError("submit: sbatch refused " + script_path + " (exit " + std::to_string(result.exit_code) +
                     "): " + trim(result.err + result.out));
  }
  const std::string job_id = trim(trim(result.out).substr(0, trim(result.out).find(';')));
  if (job_id.empty() || !std::all_of(job_id.begin(), job_id.end(),
                                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    throw InternalError("submit: sbatch printed no job id (stdout '" + trim(result.out) + "', stderr '" +
                        trim(result.err) + "')");
  }
  if (!trim(result.err).empty()) std::cerr << trim(result.err) << "\n";
  const std::string log =
      options.out_dir + "/slurm-" + job_id + (options.array.empty() ? "" : "_TASK") + ".log";
  std::cerr << "skein submit: job " << job_id << " submitted (" << options.nodes << " node"
            << (options.nodes == 1 ? "" : "s") << " x " << options.ntasks_per_node << " rank"
            << (options.ntasks_per_node == 1 ? "" : "s") << ", " << options.time << "); script "
            << script_path << ", log " << log << "; follow it with `squeue -j " << job_id << "`\n";
  std::cout << job_id << std::endl;
  return 0;
}

}  // namespace skein::cluster
