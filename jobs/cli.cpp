#include "jobs/cli.hpp"

#include "cluster/submit.hpp"
#include "comm/communicator.hpp"
#include "engine/context.hpp"
#include "engine/error.hpp"
#include "engine/log.hpp"
#include "engine/watchdog.hpp"
#include "io/h5_summary.hpp"
#include "io/hdf5.hpp"
#include "io/output_dir.hpp"
#include "jobs/registry.hpp"
#include "jobs/runner.hpp"

#include <boost/program_options.hpp>

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

namespace skein::jobs {
namespace po = boost::program_options;
using engine::UsageError;

namespace {

constexpr const char* kUsage =
    "skein — a distributed compute engine (MPI + Kokkos + HDF5)\n"
    "\n"
    "usage:\n"
    "  skein run JOB [--config FILE.ini] [--JOB.KEY=VALUE ...] [--out DIR] [--resume]\n"
    "                                                    run a job (under mpirun or srun)\n"
    "  skein submit JOB --config FILE.ini --nodes N --ntasks-per-node M --time HH:MM:SS [...]\n"
    "                                                    submit to Slurm (checkpoint + requeue on "
    "preemption)\n"
    "  skein inspect FILE.h5                                                  summarise an output file\n"
    "  skein jobs                                                             list jobs and their config "
    "keys\n"
    "  skein --version\n"
    "\n"
    "`skein COMMAND --help` and `skein run JOB --help` tell more.\n"
    "exit codes: 0 done, 2 usage or config error, 65 bad input data, 70 internal error,\n"
    "            74 cannot write outputs or checkpoints (disk full, permission), 75 checkpointed for "
    "requeue\n";

std::string job_names() {
  std::string names;
  for (const auto& entry : all_jobs()) names += (names.empty() ? "" : ", ") + entry.spec.name;
  return names;
}

const JobEntry& job_or_throw(const std::string& name) {
  if (const JobEntry* entry = find_job(name)) return *entry;
  std::vector<std::string> names;
  for (const auto& entry : all_jobs()) names.push_back(entry.spec.name);
  const std::string suggestion = engine::closest_match(name, names);
  throw UsageError("unknown job '" + name + "'" +
                   (suggestion.empty() ? "" : "; did you mean '" + suggestion + "'?") +
                   " (jobs: " + job_names() + ")");
}

std::string describe_keys(const engine::JobSpec& spec) {
  std::ostringstream out;
  out << "[" << spec.name << "] config keys (INI section [" << spec.name << "], or --" << spec.name
      << ".KEY=VALUE):\n";
  for (const auto& key : spec.keys) {
    out << "  " << spec.name << "." << key.name;
    out << (key.required ? "  (required)" : "  = " + (key.default_value.empty() ? "\"\"" : key.default_value))
        << "\n";
    out << "      " << key.help << "\n";
  }
  return out.str();
}

std::vector<std::string> tail_args(int argc, char** argv, int first) {
  return std::vector<std::string>(argv + first, argv + argc);
}

void print_jobs() {
  for (const auto& entry : all_jobs()) {
    std::cout << entry.spec.name << " — " << entry.spec.summary << "\n" << describe_keys(entry.spec) << "\n";
  }
}

int inspect(const comm::Communicator& world, const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    if (world.rank() == 0) {
      std::cout
          << "usage: skein inspect FILE.h5\n\nPrints the job, status and config of a skein output, every "
             "dataset with its shape and first values, and its metrics.\n";
    }
    if (args.empty()) throw UsageError("inspect: missing FILE.h5");
    return 0;
  }
  if (args.size() > 1) throw UsageError("inspect: expected one FILE.h5, got " + std::to_string(args.size()));
  std::string summary;
  world.agree([&] {
    if (world.rank() == 0) summary = io::summarize_h5(args[0]);
  });
  if (world.rank() == 0) std::cout << summary << std::flush;
  return 0;
}

// Words that are not options are mistakes (`skein run dsir my.ini`); say what was probably meant.
void reject_positional(const std::vector<std::string>& words, const std::string& job) {
  if (words.empty()) return;
  const std::string& word = words.front();
  std::string hint;
  struct stat info {};
  if (word.size() > 4 && word.compare(word.size() - 4, 4, ".ini") == 0 && ::stat(word.c_str(), &info) == 0) {
    hint = "; did you mean `--config " + word + "`?";
  }
  throw UsageError("run " + job + ": unexpected argument '" + word + "'" + hint +
                   " (options start with --; `skein run " + job + " --help` lists them)");
}

int run(const comm::Communicator& world, const std::vector<std::string>& args) {
  const auto started = std::chrono::steady_clock::now();
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    if (world.rank() == 0) {
      std::cout
          << "usage: skein run JOB [--config FILE.ini] [--JOB.KEY=VALUE ...] [--out DIR] [--resume|--fresh]\n"
             "                     [--checkpoint-every SECONDS] [--checkpoint-steps N] [--log-level L]\n"
             "                     [--debug-log DIR]\n\njobs: "
          << job_names() << "\n`skein run JOB --help` lists the job's config keys.\n";
    }
    if (args.empty()) throw UsageError("run: missing JOB (jobs: " + job_names() + ")");
    return 0;
  }
  const JobEntry& entry = job_or_throw(args[0]);
  const std::string& name = entry.spec.name;

  po::options_description general("options");
  general.add_options()("help,h", "this help and the job's config keys")(
      "config", po::value<std::string>(), ("INI file with a [" + name + "] section").c_str())(
      "out", po::value<std::string>()->default_value("out"), "output directory (created if missing)")(
      "log-level", po::value<std::string>()->default_value("info"), "error|warn|info|debug")(
      "debug-log", po::value<std::string>()->default_value(""), "directory for per-rank debug logs")(
      "resume", "continue from the newest valid checkpoint in --out (start fresh if there is none)")(
      "fresh", "start from the beginning even though --out holds a checkpoint (it is deleted)")(
      "checkpoint-every", po::value<double>()->default_value(0),
      "checkpoint every SECONDS (0: only on a signal)")(
      "checkpoint-steps", po::value<std::int64_t>()->default_value(0), "checkpoint every N steps (0: never)");
  po::options_description job_keys(name + " keys");
  std::vector<std::string> valid;
  for (const auto& key : entry.spec.keys) {
    job_keys.add_options()((name + "." + key.name).c_str(), po::value<std::string>(), key.help.c_str());
    valid.push_back("--" + name + "." + key.name);
  }
  for (const char* option : {"--help", "--config", "--out", "--log-level", "--debug-log", "--resume",
                             "--fresh", "--checkpoint-every", "--checkpoint-steps"}) {
    valid.push_back(option);
  }
  po::options_description all;
  all.add(general).add(job_keys);

  po::variables_map vm;
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    const po::parsed_options parsed = po::command_line_parser(rest).options(all).run();
    po::store(parsed, vm);
    reject_positional(po::collect_unrecognized(parsed.options, po::include_positional), name);
  } catch (const po::unknown_option& e) {
    const std::string suggestion = engine::closest_match(e.get_option_name(), valid);
    throw UsageError("unknown option '" + e.get_option_name() + "'" +
                     (suggestion.empty() ? "" : "; did you mean '" + suggestion + "'?") + " (`skein run " +
                     name + " --help` lists them)");
  } catch (const po::error& e) {
    throw UsageError(std::string("run ") + name + ": " + e.what());
  }
  if (vm.count("help")) {
    if (world.rank() == 0)
      std::cout << "usage: skein run " << name << " [options]\n\n"
                << general << "\n"
                << describe_keys(entry.spec);
    return 0;
  }
  const std::string level = vm["log-level"].as<std::string>();
  if (level != "error" && level != "warn" && level != "info" && level != "debug") {
    throw UsageError("--log-level: '" + level + "' is not one of error|warn|info|debug");
  }

  std::vector<std::pair<std::string, std::string>> overrides;
  for (const auto& key : entry.spec.keys) {
    const auto it = vm.find(name + "." + key.name);
    if (it != vm.end()) overrides.emplace_back(key.name, it->second.as<std::string>());
  }
  const std::string config_path = vm.count("config") ? vm["config"].as<std::string>() : "";
  const std::string out_dir = vm["out"].as<std::string>();
  const std::string debug_dir = vm["debug-log"].as<std::string>();

  if (vm.count("resume") && vm.count("fresh")) throw UsageError("--resume and --fresh exclude each other");

  // Rank 0 reads the file and creates the log directory; every rank sees the same text.
  std::string ini_text;
  world.agree([&] {
    if (world.rank() != 0) return;
    if (!config_path.empty()) ini_text = engine::read_config_file(config_path);
    if (!debug_dir.empty()) {
      try {
        io::make_directories(debug_dir);
      } catch (const engine::Error& e) {
        throw UsageError(std::string("--debug-log: ") + e.what());
      }
    }
  });
  world.bcast(ini_text, 0);
  engine::Log::setup(world.rank(), world.size(), level, debug_dir);

  engine::Config config;
  std::unique_ptr<engine::Job> job;
  std::string run_id;
  if (world.rank() == 0) {
    std::random_device entropy;
    char text[17];
    std::snprintf(text, sizeof text, "%08x%08x", entropy(), entropy());
    run_id = text;
  }
  world.bcast(run_id, 0);
  const JobEnv env{world, config, out_dir, started, run_id};
  double comm_timeout = 0;
  world.agree([&] {
    config = engine::Config::resolve(name, entry.spec.keys, ini_text, config_path, overrides);
    comm_timeout = config.get_double(kCommTimeoutKey);
    if (comm_timeout < 0) {
      throw UsageError("config key '" + name + "." + kCommTimeoutKey + "': '" + config.get(kCommTimeoutKey) +
                       "' must be 0 (wait forever) or a number of seconds");
    }
    job = entry.make(env);
  });
  // From here a rank that stops responding ends the run instead of holding the others forever.
  engine::start_watchdog(comm_timeout, world.rank());
  auto& log = engine::Log::user();
  log.info("{} on {} rank{}, skein {}, output {}/", name, world.size(), world.size() == 1 ? "" : "s",
           SKEIN_VERSION, out_dir);
  if (const char* slurm_job = std::getenv("SLURM_JOB_ID")) {
    log.info("slurm job {} ({} nodes, {} tasks)", slurm_job,
             std::getenv("SLURM_JOB_NUM_NODES") ? std::getenv("SLURM_JOB_NUM_NODES") : "?",
             std::getenv("SLURM_NTASKS") ? std::getenv("SLURM_NTASKS") : "?");
  }
  engine::Log::rank_log().debug("resolved config:\n{}", config.to_ini());

  // The output folder is checked (writable, not in use, no stale temporaries) before any work.
  std::vector<std::string> outputs = entry.spec.outputs;
  for (const char* name : {"checkpoint.h5", "checkpoint.prev.h5"}) outputs.push_back(name);
  const io::OutputDir output_dir(world, out_dir, outputs);

  RunOptions options;
  options.resume = vm.count("resume") > 0;
  options.fresh = vm.count("fresh") > 0;
  options.checkpoint_every_seconds = vm["checkpoint-every"].as<double>();
  options.checkpoint_every_steps = vm["checkpoint-steps"].as<std::int64_t>();
  if (options.checkpoint_every_seconds < 0 || options.checkpoint_every_steps < 0) {
    throw UsageError("--checkpoint-every and --checkpoint-steps must not be negative");
  }
  run_job(*job, env, entry.spec.keys, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  log.info("{} finished in {}", name, engine::human_duration(seconds));
  return 0;
}

int dispatch(const comm::Communicator& world, int argc, char** argv) {
  if (argc < 2) {
    if (world.rank() == 0) std::cerr << kUsage;
    throw UsageError("missing command");
  }
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    if (world.rank() == 0) std::cout << kUsage;
    return 0;
  }
  if (command == "--version") {
    if (world.rank() == 0) std::cout << "skein " << SKEIN_VERSION << "\n";
    return 0;
  }
  if (command == "run") return run(world, tail_args(argc, argv, 2));
  if (command == "submit") {
    std::vector<engine::JobSpec> specs;
    for (const auto& entry : all_jobs()) specs.push_back(entry.spec);
    // Submission is one process's business; under mpirun only rank 0 submits.
    int code = 0;
    world.agree([&] {
      if (world.rank() == 0)
        code = cluster::submit_command(tail_args(argc, argv, 2), specs, cluster::current_executable());
    });
    return code;
  }
  if (command == "inspect") return inspect(world, tail_args(argc, argv, 2));
  if (command == "jobs") {
    if (world.rank() == 0) print_jobs();
    return 0;
  }
  const std::string suggestion = engine::closest_match(command, {"run", "submit", "inspect", "jobs"});
  throw UsageError("unknown command '" + command + "'" +
                   (suggestion.empty() ? "" : "; did you mean '" + suggestion + "'?") + " (`skein --help`)");
}

}  // namespace

int run_cli(int argc, char** argv) {
  const comm::Communicator world(MPI_COMM_WORLD);
  try {
    const int code = dispatch(world, argc, argv);
    io::close_abandoned_files();
    return code;
  } catch (const engine::Error& e) {
    // Deterministic errors (bad command line) are the same on every rank, and agreed errors have been
    // replayed on every rank: rank 0 reports and all end normally. Anything else ends all ranks now.
    const bool everywhere = e.agreed() || world.size() == 1 || e.code() == engine::ExitCode::usage;
    if (everywhere) {
      // Every rank is here: HDF5 files an error left open are closed now, not from MPI_Finalize.
      if (e.agreed() || world.size() == 1) io::close_abandoned_files();
      const bool stopped = e.code() == engine::ExitCode::checkpointed;
      if (world.rank() == 0) std::cerr << (stopped ? "skein: " : "skein: error: ") << e.what() << std::endl;
      return static_cast<int>(e.code());
    }
    std::cerr << "skein: error on rank " << world.rank() << ": " << e.what() << std::endl;
    engine::Context::abort_all(static_cast<int>(e.code()));
  } catch (const std::exception& e) {
    std::cerr << "skein: internal error on rank " << world.rank() << ": " << e.what() << std::endl;
    engine::Context::abort_all(static_cast<int>(engine::ExitCode::internal));
  }
}

}  // namespace skein::jobs
