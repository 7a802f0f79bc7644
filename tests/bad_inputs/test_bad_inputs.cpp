// Runs the catalogue of bad inputs (cases_*.cpp) through the real `skein` under mpirun at 1 and 2 ranks,
// each run under a timeout. For every case it checks the exit code and the message fragments, that the run
// ended cleanly (no hang, no process left, no crash), and that the output folder holds exactly what it held
// before, byte for byte: a previous run's outputs (and, for the cases that resume, a checkpoint), and
// nothing half-written.
#include "tests/bad_inputs/catalogue.hpp"
#include "tests/e2e/cli_runner.hpp"

#include <gtest/gtest.h>

#include <sys/mount.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace {

using namespace skein::test;
using skein::bad_inputs::Case;
using skein::bad_inputs::Needs;
using skein::bad_inputs::Workspace;
namespace fs = std::filesystem;

// Outputs of earlier runs of every job, in the folder before each case runs (a shared results folder).
const std::vector<std::string> kPreviousOutputs = {"dsir.h5", "selected.jsonl", "poisson.h5", "hessian.h5",
                                                   "cca.h5"};

// What shows that a rank crashed instead of stopping with a message.
const std::vector<std::string> kCrashSigns = {
    "Segmentation fault", "terminate called", "core dumped", "Aborted",
    "Signal code",        "std::bad_alloc",   "Bus error",   "Floating point exception"};

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (auto table :
       {skein::bad_inputs::config_cases, skein::bad_inputs::dsir_cases, skein::bad_inputs::poisson_cases,
        skein::bad_inputs::hessian_cases, skein::bad_inputs::cca_cases, skein::bad_inputs::output_cases}) {
    for (auto& c : table()) cases.push_back(std::move(c));
  }
  return cases;
}

struct Param {
  Case c;
  int ranks;
};

void PrintTo(const Param& param, std::ostream* out) {
  *out << param.c.group << "/" << param.c.name << " at " << param.ranks << " ranks";
}

std::vector<Param> all_params() {
  std::vector<Param> params;
  for (const auto& c : all_cases()) {
    for (const int ranks : {1, 2}) params.push_back({c, ranks});
  }
  return params;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

bool can_mount_tmpfs() {
  static const bool ok = [] {
    const std::string dir = make_temp_dir("bad-inputs-mount");
    const bool mounted = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=64k") == 0;
    if (mounted) ::umount2(dir.c_str(), MNT_DETACH);
    fs::remove_all(dir);
    return mounted;
  }();
  return ok;
}

// Permission bits bind for a process that is not root; root gets them through the wrapper, which drops
// CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH with setpriv.
bool can_be_unprivileged() {
  static const bool ok =
      ::geteuid() != 0 ||
      std::system("setpriv --bounding-set=-dac_override,-dac_read_search true >/dev/null 2>&1") == 0;
  return ok;
}

std::map<std::string, std::string> folder_contents(const std::string& dir) {
  std::map<std::string, std::string> contents;
  for (const auto& name : dir_entries(dir)) {
    const std::string path = dir + "/" + name;
    contents[name] = fs::is_regular_file(path) ? read_file(path) : std::string("(not a file)");
  }
  return contents;
}

class BadInput : public ::testing::TestWithParam<Param> {};

TEST_P(BadInput, Case) {
  const Case& c = GetParam().c;
  const int ranks = GetParam().ranks;
  if (c.needs == Needs::tmpfs && !can_mount_tmpfs())
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): case not run";
  if (c.needs == Needs::unprivileged && !can_be_unprivileged())
    GTEST_SKIP() << "running as root without setpriv: permission bits do not bind, case not run";

  Workspace ws;
  ws.in = make_temp_dir("bad-in-" + c.name);
  const std::string out_root = make_temp_dir("bad-out-" + c.name);
  ws.out = out_root + "/out";
  fs::create_directories(ws.out);
  for (const auto& name : kPreviousOutputs) write_file(ws.out + "/" + name, "previous " + name + "\n");
  ws.previous = folder_contents(ws.out);
  // mpirun waits a second (twice) before it kills what is left of a job whose rank failed; every case here
  // fails, and its ranks must end on their own anyway (checked below: no process left, one message).
  ws.env.emplace_back("OMPI_MCA_odls_base_sigkill_timeout", "0");

  std::vector<std::string> args = {"run"};
  for (auto& arg : c.make(ws)) args.push_back(std::move(arg));
  args.push_back("--out");
  args.push_back(ws.out);

  if (c.damage_after_checkpoint) {
    // A run on the good inputs stopped by an injected error after its third step leaves a checkpoint.
    auto env = ws.env;
    env.emplace_back("SKEIN_FAULT", "throw:0:3");
    auto first_args = args;
    first_args.insert(first_args.end(), {"--checkpoint-steps", "1"});
    const BackgroundResult first = start_skein(ranks, first_args, env).wait(c.timeout_seconds);
    ASSERT_EQ(first.exit_code, 70) << first.output;
    ASSERT_TRUE(file_exists(ws.out + "/checkpoint.h5")) << join(dir_entries(ws.out));
    ws.previous = folder_contents(ws.out);
    c.damage_after_checkpoint(ws);
    args.push_back("--resume");
  }

  const BackgroundResult run = start_skein(ranks, args, ws.env).wait(c.timeout_seconds);

  // Every way the case can fail, so that a known failure can be told from one that is fixed.
  std::vector<std::string> problems;
  if (run.timed_out)
    problems.push_back("the run hung (killed after " + std::to_string(static_cast<int>(c.timeout_seconds)) +
                       " s)");
  if (!run.left_behind.empty())
    problems.push_back(std::to_string(run.left_behind.size()) + " processes were left behind");
  if (run.exit_code != c.exit_code)
    problems.push_back("exit code " + std::to_string(run.exit_code) + ", expected " +
                       std::to_string(c.exit_code));
  for (const auto& fragment : c.expect) {
    const std::string text = replace_all(replace_all(fragment, "{in}", ws.in), "{out}", ws.out);
    if (run.output.find(text) == std::string::npos) problems.push_back("no '" + text + "' in the output");
  }
  for (const auto& sign : kCrashSigns) {
    if (run.output.find(sign) != std::string::npos)
      problems.push_back("a crash: '" + sign + "' in the output");
  }
  // One message, not one per rank (an error agreed by the ranks is printed once, by rank 0).
  std::size_t messages = 0;
  for (std::size_t at = run.output.find("skein: error"); at != std::string::npos;
       at = run.output.find("skein: error", at + 1))
    ++messages;
  if (messages != 1) problems.push_back(std::to_string(messages) + " 'skein: error' messages, expected one");
  if (run.output.find("MPI_ABORT was invoked") != std::string::npos)
    problems.push_back("ended through MPI_ABORT: the ranks did not agree on the error");
  // Exactly what was there before: nothing half-written, nothing new, nothing changed.
  const auto after = folder_contents(ws.out);
  for (const auto& [name, bytes] : ws.previous) {
    const auto found = after.find(name);
    if (found == after.end()) {
      problems.push_back(ws.out + "/" + name + " was removed");
    } else if (found->second != bytes) {
      problems.push_back(ws.out + "/" + name + " was changed");
    }
  }
  for (const auto& [name, bytes] : after) {
    if (!ws.previous.count(name)) problems.push_back(ws.out + "/" + name + " was left in the output folder");
  }

  std::string report;
  for (const auto& problem : problems) report += "  - " + problem + "\n";
  if (!c.known_failure.empty()) {
    if (problems.empty()) {
      ADD_FAILURE() << "known failure now passes (remove its mark): " << c.known_failure << "\n"
                    << run.output;
    } else {
      GTEST_SKIP() << "known failure: " << c.known_failure << "\n" << report;
    }
  } else if (!problems.empty() || std::getenv("SKEIN_CATALOGUE_SHOW")) {
    ADD_FAILURE() << c.group << "/" << c.name << " at " << ranks << " ranks:\n"
                  << report << "output:\n"
                  << run.output;
  }

  std::error_code ignored;
  fs::permissions(ws.out, fs::perms::owner_all, fs::perm_options::add, ignored);
  ws.keep.reset();
  fs::remove_all(ws.in, ignored);
  fs::remove_all(out_root, ignored);
}

INSTANTIATE_TEST_SUITE_P(Catalogue, BadInput, ::testing::ValuesIn(all_params()),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           return info.param.c.group + "_" + info.param.c.name + "_np" +
                                  std::to_string(info.param.ranks);
                         });

// The table itself: names unique and usable as test names, every case with an expectation.
TEST(Catalogue, CasesAreWellFormed) {
  std::map<std::string, int> seen;
  for (const auto& c : all_cases()) {
    const std::string id = c.group + "_" + c.name;
    EXPECT_EQ(++seen[id], 1) << "duplicate case " << id;
    EXPECT_EQ(id.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_"), std::string::npos) << id;
    EXPECT_FALSE(c.expect.empty()) << id << " has no expected message";
    EXPECT_NE(c.exit_code, 0) << id;
  }
  EXPECT_GE(seen.size(), 30u);
}

}  // namespace

int main(int argc, char** argv) {
  // The wrapper (SKEIN_EXE of this binary) runs the real skein named here, as a case's environment asks.
  ::setenv("SKEIN_CATALOGUE_EXE", SKEIN_REAL_EXE, 1);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
