#include "tests/e2e/cli_runner.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace skein::test {

namespace {
std::string shell_quote(const std::string& s) {
  std::string quoted = "'";
  for (const char c : s) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}
// Where the runs' default caches go (dsir.index_cache = auto follows XDG_CACHE_HOME): scratch space, not the
// user's ~/.cache.
std::string test_cache_home() {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp ? tmp : "/tmp") + "/skein-test-cache";
}
}  // namespace

RunResult run_skein(int ranks, const std::vector<std::string>& args, int timeout_seconds) {
  std::string command = "XDG_CACHE_HOME=" + shell_quote(test_cache_home()) + " timeout -k 5 " +
                        std::to_string(timeout_seconds) + " ";
  if (ranks > 0) {
    command += std::string(SKEIN_MPIEXEC) + " -np " + std::to_string(ranks) + " " + SKEIN_MPIEXEC_FLAGS + " ";
  }
  command += shell_quote(SKEIN_EXE);
  for (const auto& arg : args) command += " " + shell_quote(arg);
  command += " 2>&1";
  const auto start = std::chrono::steady_clock::now();
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  RunResult result;
  std::array<char, 4096> buffer{};
  std::size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

// --- background runs ------------------------------------------------------------------------------------

namespace {

constexpr const char* kTagName = "SKEIN_TEST_RUN_TAG";
constexpr auto kPoll = std::chrono::milliseconds(20);

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

// Whether /proc/PID/stat says the process is a zombie or dead (or it is gone).
bool ended(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return true;
  const auto paren = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (paren == std::string::npos || paren + 2 >= stat.size()) return true;
  const char state = stat[paren + 2];
  return state == 'Z' || state == 'X' || state == 'x';
}

std::string unique_tag() {
  static std::atomic<int> counter{0};
  std::random_device random;
  return std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(random());
}

}  // namespace

std::vector<pid_t> processes_with_env(const std::string& name, const std::string& value) {
  std::vector<pid_t> found;
  DIR* proc = ::opendir("/proc");
  if (!proc) return found;
  const std::string needle = std::string(1, '\0') + name + "=" + value + std::string(1, '\0');
  while (const dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0' || pid == ::getpid()) continue;
    std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
    if (!in) continue;
    std::string environment(1, '\0');
    environment.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    environment.push_back('\0');
    if (environment.find(needle) == std::string::npos) continue;
    if (!ended(static_cast<pid_t>(pid))) found.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(proc);
  std::sort(found.begin(), found.end());
  return found;
}

BackgroundRun::BackgroundRun(int ranks, const std::vector<std::string>& args,
                             const std::vector<std::pair<std::string, std::string>>& test_env)
    : tag_(unique_tag()), start_(std::chrono::steady_clock::now()) {
  std::vector<std::pair<std::string, std::string>> env = test_env;
  if (std::none_of(env.begin(), env.end(), [](const auto& kv) { return kv.first == "XDG_CACHE_HOME"; }))
    env.emplace_back("XDG_CACHE_HOME", test_cache_home());
  // Everything the child needs is built before fork: between fork and exec it only calls async-signal-safe
  // functions.
  std::vector<std::string> argv_strings;
  if (ranks > 0) {
    argv_strings = {SKEIN_MPIEXEC, "-np", std::to_string(ranks)};
    for (const auto& flag : split_words(SKEIN_MPIEXEC_FLAGS)) argv_strings.push_back(flag);
  }
  argv_strings.push_back(SKEIN_EXE);
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<std::string> env_strings;
  auto overridden = [&](const std::string& entry) {
    const std::string name = entry.substr(0, entry.find('='));
    if (name == kTagName) return true;
    for (const auto& [key, value] : env) {
      if (key == name) return true;
    }
    return false;
  };
  for (char** e = environ; *e; ++e) {
    if (!overridden(*e)) env_strings.emplace_back(*e);
  }
  for (const auto& [key, value] : env) env_strings.push_back(key + "=" + value);
  env_strings.push_back(std::string(kTagName) + "=" + tag_);
  std::vector<char*> argv, envp;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  const char* base = std::getenv("TMPDIR");
  std::string log = std::string(base ? base : "/tmp") + "/skein-run-XXXXXX.log";
  const int log_fd = ::mkstemps(log.data(), 4);
  if (log_fd < 0) throw std::runtime_error("mkstemps failed for " + log + ": " + std::strerror(errno));
  log_path_ = log;
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    // A shell starts background jobs with SIGINT and SIGQUIT ignored, and that is inherited through exec:
    // the run must see signals as a user's mpirun would.
    for (const int signal_number : {SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2})
      ::signal(signal_number, SIG_DFL);
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    for (const int signal_number : {SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGPIPE, SIGHUP}) {
      ::sigaction(signal_number, &action, nullptr);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execvpe(argv[0], argv.data(), envp.data());
    const char message[] = "start_skein: exec failed\n";
    (void)!::write(STDERR_FILENO, message, sizeof message - 1);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here, so that the group exists before the parent signals it
  pid_ = pid;
  ::close(log_fd);
  if (null_fd >= 0) ::close(null_fd);
}

BackgroundRun::BackgroundRun(BackgroundRun&& other) noexcept
    : pid_(other.pid_),
      reaped_(other.reaped_),
      exit_code_(other.exit_code_),
      tag_(std::move(other.tag_)),
      log_path_(std::move(other.log_path_)),
      start_(other.start_) {
  other.pid_ = -1;
  other.log_path_.clear();
}

BackgroundRun::~BackgroundRun() {
  if (pid_ > 0) {
    kill_all();
    if (!reaped_) {
      int status = 0;
      if (::waitpid(pid_, &status, 0) == pid_) reap(status);
    }
    // Ranks end a moment after their SIGKILL; make sure of it, and kill any that appeared meanwhile.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!processes().empty() && std::chrono::steady_clock::now() < deadline) {
      kill_all();
      std::this_thread::sleep_for(kPoll);
    }
  }
  if (!log_path_.empty()) ::unlink(log_path_.c_str());
}

double BackgroundRun::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void BackgroundRun::reap(int status) {
  reaped_ = true;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool BackgroundRun::running() {
  if (pid_ <= 0 || reaped_) return false;
  int status = 0;
  const pid_t got = ::waitpid(pid_, &status, WNOHANG);
  if (got == pid_) reap(status);
  if (got < 0 && errno == ECHILD) reaped_ = true;  // not ours any more: nothing to wait for
  return !reaped_;
}

std::vector<pid_t> BackgroundRun::processes() const {
  if (tag_.empty()) return {};
  return processes_with_env(kTagName, tag_);
}

std::vector<pid_t> BackgroundRun::ranks() const {
  auto all = processes();
  all.erase(std::remove(all.begin(), all.end(), pid_), all.end());
  return all;
}

void BackgroundRun::signal_launcher(int signal_number) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, signal_number);
}

void BackgroundRun::signal_group(int signal_number) {
  // While the launcher is not reaped its group id cannot have been reused.
  if (pid_ > 0 && !reaped_) ::killpg(pid_, signal_number);
}

void BackgroundRun::signal_ranks(int signal_number) {
  for (const pid_t pid : ranks()) ::kill(pid, signal_number);
}

void BackgroundRun::kill_all() {
  const auto all = processes();
  signal_group(SIGKILL);
  for (const pid_t pid : all) ::kill(pid, SIGKILL);
}

bool BackgroundRun::wait_until(const std::function<bool()>& done, double timeout_seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (true) {
    if (done()) return true;
    if (!running() || std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(kPoll);
  }
}

BackgroundResult BackgroundRun::wait(double timeout_seconds) {
  BackgroundResult result;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  std::set<pid_t> seen;
  std::chrono::steady_clock::time_point first_rank_end{}, all_gone{};
  bool a_rank_ended = false;
  while (true) {
    running();  // reaps the launcher once it ended
    const auto now = std::chrono::steady_clock::now();
    const auto alive = processes();
    const auto alive_ranks = ranks();
    result.most_ranks_seen = std::max(result.most_ranks_seen, static_cast<int>(alive_ranks.size()));
    seen.insert(alive_ranks.begin(), alive_ranks.end());
    if (!a_rank_ended) {
      for (const pid_t pid : seen) {
        if (std::find(alive_ranks.begin(), alive_ranks.end(), pid) == alive_ranks.end()) a_rank_ended = true;
      }
      if (a_rank_ended) first_rank_end = now;
    }
    if (reaped_ && alive.empty()) {
      all_gone = now;
      break;
    }
    if (now >= deadline) {
      result.timed_out = true;
      result.left_behind = alive;
      kill_all();
      if (!reaped_) {
        int status = 0;
        if (::waitpid(pid_, &status, 0) == pid_) reap(status);
      }
      const auto grace = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!processes().empty() && std::chrono::steady_clock::now() < grace) {
        kill_all();
        std::this_thread::sleep_for(kPoll);
      }
      break;
    }
    std::this_thread::sleep_for(kPoll);
  }
  result.exit_code = result.timed_out ? 124 : exit_code_;
  result.output = output();
  result.seconds = seconds();
  if (!seen.empty() && !result.timed_out) {
    result.all_gone_after =
        a_rank_ended ? std::chrono::duration<double>(all_gone - first_rank_end).count() : 0;
  }
  return result;
}

std::string BackgroundRun::output() const {
  if (log_path_.empty()) return "";
  std::ifstream in(log_path_, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

BackgroundRun start_skein(int ranks, const std::vector<std::string>& args,
                          const std::vector<std::pair<std::string, std::string>>& env) {
  return BackgroundRun(ranks, args, env);
}

std::string make_temp_dir(const std::string& tag) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base ? base : "/tmp") + "/skein-" + tag + "-XXXXXX";
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
  return pattern;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  if (!out) throw std::runtime_error("cannot write " + path);
}

bool file_exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

std::set<std::string> dir_entries(const std::string& dir) {
  std::set<std::string> names;
  DIR* listing = ::opendir(dir.c_str());
  if (listing == nullptr) return names;
  while (const dirent* entry = ::readdir(listing)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.insert(name);
  }
  ::closedir(listing);
  return names;
}

std::string join(const std::set<std::string>& names) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "" : " ") + name;
  return text.empty() ? "(empty)" : text;
}

bool has_tmp_file(const std::string& dir) {
  for (const auto& name : dir_entries(dir)) {
    if (name.size() >= 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) return true;
  }
  return false;
}

std::vector<std::string> with_option(std::vector<std::string> args, const std::string& option) {
  const std::string name = option.substr(0, option.find('=') + 1);
  for (auto& arg : args) {
    if (arg.compare(0, name.size(), name) == 0) arg = option;
  }
  return args;
}

}  // namespace skein::test
