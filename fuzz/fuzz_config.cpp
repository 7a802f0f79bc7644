// libFuzzer target: `skein run` with a fuzzed command line and INI file. The input up to its first NUL
// byte is the command line after `skein run`, one argument per line (the job name first); the rest is the
// --config file. Whatever the job, the output folder is /dev/null/... (not a folder), so a run whose
// command line and config are accepted ends there, after the config is resolved and the job's settings
// parsed and validated, before anything is read or written. run_cli turns skein errors into exit codes;
// anything else (a std::exception from a parser) ends in engine::Context::abort_all, which
// fuzz_common.cpp's MPI_Abort makes a crash.
#include "fuzz/fuzz_common.hpp"
#include "jobs/cli.hpp"

#include <string>
#include <vector>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  skein::fuzz::world();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace skein;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find('\0');
  const std::string_view command_line = input.substr(0, split);
  const std::string_view ini = split == std::string_view::npos ? std::string_view() : input.substr(split + 1);
  const std::string ini_path = fuzz::write_scratch("config.ini", ini);

  std::vector<std::string> args{"skein", "run"};
  std::size_t at = 0;
  while (at <= command_line.size() && !command_line.empty()) {
    const std::size_t end = std::min(command_line.find('\n', at), command_line.size());
    std::string word(command_line.substr(at, end - at));
    // --debug-log creates folders where it is told: not where a fuzzer tells it.
    if (word.find("debug-log") == std::string::npos) args.push_back(std::move(word));
    at = end + 1;
  }
  args.insert(args.end(), {"--config", ini_path, "--out", "/dev/null/skein-fuzz-out"});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int code = jobs::run_cli(static_cast<int>(args.size()), argv.data());
  // 0 (--help) or a usage, data or I/O error; 70 (internal) is a parser's failure that should have been
  // a usage error naming the key.
  if (code == static_cast<int>(engine::ExitCode::internal)) fuzz::finding("exit code 70 (internal error)");
  return 0;
}
