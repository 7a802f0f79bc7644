// Runs the skein executable (optionally under mpirun) in a test and captures its exit code and output.
#pragma once

#include <string>
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

// A fresh empty directory under the system temp dir.
std::string make_temp_dir(const std::string& tag);
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);
bool file_exists(const std::string& path);

}  // namespace skein::test
