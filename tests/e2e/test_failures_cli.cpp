// Failure paths through the `skein` executable at 1 and 2 ranks, each under a timeout: a full disk (a small
// tmpfs) while writing outputs and checkpoints, a failed rerun that must leave the previous outputs whole,
// output-folder problems found in the first second, a forgotten --resume, stop signals sent to mpirun, and
// command-line mistakes. Each asserts the exit code, the message, that no process is left, that nothing
// half-written remains and that earlier good files are intact. This is where tests/bad_inputs/ grows from.
#include "io/h5_reader.hpp"
#include "tests/e2e/cli_runner.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace skein::test;
namespace fs = std::filesystem;

namespace {

const std::string kData = std::string(SKEIN_TEST_DATA_DIR) + "/dsir";
constexpr double kTimeout = 60;  // seconds before a run counts as hung




bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::string> dsir_args(const std::string& out, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"run",
                                   "dsir",
                                   "--out",
                                   out,
                                   "--dsir.raw=" + kData + "/brown_raw.jsonl",
                                   "--dsir.target=" + kData + "/brown_target.jsonl",
                                   "--dsir.num_select=100",
                                   "--dsir.save_weights=true",
                                   "--dsir.piece_size=64k",
                                   "--dsir.seed=7"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}


std::vector<std::string> with_resume(std::vector<std::string> args) {
  args.push_back("--resume");
  return args;
}

// Runs in the background and waits: the exit code, the output, and whether every process ended.
BackgroundResult run_and_wait(int ranks, const std::vector<std::string>& args,
                              const std::vector<std::pair<std::string, std::string>>& env = {}) {
  BackgroundRun run = start_skein(ranks, args, env);
  return run.wait(kTimeout);
}

void expect_clean_end(const BackgroundResult& result) {
  EXPECT_FALSE(result.timed_out) << "the run hung:\n" << result.output;
  EXPECT_TRUE(result.left_behind.empty()) << result.left_behind.size() << " processes left behind";
}

// A tmpfs of `kilobytes` mounted on a fresh directory, unmounted at the end; ok() is false where this
// machine does not let the test mount one (not root, no CAP_SYS_ADMIN), and the test is skipped.
class SmallDisk {
 public:
  explicit SmallDisk(int kilobytes) : path_(make_temp_dir("skein-full")) {
    const std::string options = "size=" + std::to_string(kilobytes) + "k";
    mounted_ = ::mount("tmpfs", path_.c_str(), "tmpfs", 0, options.c_str()) == 0;
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  bool ok() const { return mounted_; }
  const std::string& path() const { return path_; }
  // Fills the disk up to `free_kilobytes` left.
  void fill_leaving(int free_kilobytes) {
    const auto space = fs::space(path_);
    const std::uintmax_t keep = static_cast<std::uintmax_t>(free_kilobytes) * 1024;
    if (space.available > keep) write_file(path_ + "/filler", std::string(space.available - keep, 'x'));
  }

 private:
  std::string path_;
  bool mounted_ = false;
};

class Failures : public ::testing::TestWithParam<int> {
 protected:
  int ranks() const { return GetParam(); }
};

// A full disk while writing the outputs: exit 74 with the file and the cause, promptly on every rank, no
// .tmp left, the previous run's outputs untouched.
TEST_P(Failures, FullDiskWhileWritingOutputs) {
  for (const int free_kilobytes : {8, 120}) {  // selected.jsonl does not fit / it fits but dsir.h5 does not
    SmallDisk disk(400);
    if (!disk.ok())
      GTEST_SKIP() << "cannot mount a tmpfs here (needs root): the full-disk case is not tested";
    const std::string out = disk.path() + "/out";
    fs::create_directories(out);
    write_file(out + "/dsir.h5", "previous dsir.h5");
    write_file(out + "/selected.jsonl", "previous selected.jsonl\n");
    disk.fill_leaving(free_kilobytes);
    const BackgroundResult result = run_and_wait(ranks(), dsir_args(out));
    expect_clean_end(result);
    EXPECT_EQ(result.exit_code, 74) << result.output;
    EXPECT_TRUE(contains(result.output, "no space left on device")) << result.output;
    EXPECT_TRUE(contains(result.output, out + (free_kilobytes == 8 ? "/selected.jsonl" : "/dsir.h5")))
        << result.output;
    EXPECT_FALSE(contains(result.output, "Segmentation")) << result.output;
    EXPECT_FALSE(has_tmp_file(out)) << join(dir_entries(out));
    EXPECT_EQ(read_file(out + "/dsir.h5"), "previous dsir.h5");
    EXPECT_EQ(read_file(out + "/selected.jsonl"), "previous selected.jsonl\n");
    EXPECT_EQ(dir_entries(out), (std::set<std::string>{"dsir.h5", "selected.jsonl"}))
        << join(dir_entries(out));
  }
}

// A full disk while writing a checkpoint: exit 74, the previous checkpoint intact and still usable.
TEST_P(Failures, FullDiskWhileWritingACheckpoint) {
  SmallDisk disk(1024);
  if (!disk.ok()) GTEST_SKIP() << "cannot mount a tmpfs here (needs root): the full-disk case is not tested";
  const std::string out = disk.path() + "/out";
  // A checkpoint from a run stopped after its first checkpoint (step 2 fails: SKEIN_FAULT).
  const BackgroundResult first =
      run_and_wait(ranks(), dsir_args(out, {"--checkpoint-steps", "1"}), {{"SKEIN_FAULT", "throw:0:2"}});
  ASSERT_EQ(first.exit_code, 70) << first.output;
  ASSERT_TRUE(file_exists(out + "/checkpoint.h5")) << join(dir_entries(out));
  fs::remove(out + "/checkpoint.prev.h5");
  const std::int64_t step = skein::io::read_int64_attribute(out + "/checkpoint.h5", "/", "checkpoint_step");
  const std::string before = read_file(out + "/checkpoint.h5");
  disk.fill_leaving(16);

  const BackgroundResult result =
      run_and_wait(ranks(), dsir_args(out, {"--resume", "--checkpoint-steps", "1"}));
  expect_clean_end(result);
  EXPECT_EQ(result.exit_code, 74) << result.output;
  EXPECT_TRUE(contains(result.output, out + "/checkpoint.h5: no space left on device")) << result.output;
  EXPECT_FALSE(has_tmp_file(out)) << join(dir_entries(out));
  EXPECT_EQ(read_file(out + "/checkpoint.h5"), before) << "the previous checkpoint changed";
  EXPECT_EQ(skein::io::read_int64_attribute(out + "/checkpoint.h5", "/", "checkpoint_step"), step);

  fs::remove(disk.path() + "/filler");  // with room again, the run resumes from it and finishes
  const BackgroundResult resumed = run_and_wait(ranks(), dsir_args(out, {"--resume"}));
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "resuming from")) << resumed.output;
  EXPECT_EQ(dir_entries(out), (std::set<std::string>{"dsir.h5", "selected.jsonl"})) << join(dir_entries(out));
}

// A rerun that fails leaves the previous complete set of outputs as it was; a stale tmp *directory* in the
// way is reported at the start, before any work.
TEST_P(Failures, FailedRerunLeavesThePreviousOutputsWhole) {
  const std::string out = make_temp_dir("skein-rerun");
  const BackgroundResult good = run_and_wait(ranks(), dsir_args(out));
  ASSERT_EQ(good.exit_code, 0) << good.output;
  const std::string h5 = read_file(out + "/dsir.h5"), jsonl = read_file(out + "/selected.jsonl");
  const std::string run_id = skein::io::read_string_attribute(out + "/dsir.h5", "/", "run_id");
  EXPECT_EQ(run_id.size(), 16u);
  EXPECT_EQ(skein::io::read_int64_attribute(out + "/dsir.h5", "/outputs/selected.jsonl", "bytes"),
            static_cast<std::int64_t>(jsonl.size()));

  fs::create_directories(out + "/dsir.h5.tmp/inside");
  const std::vector<std::string> seed8 = with_option(dsir_args(out), "--dsir.seed=8");
  const BackgroundResult rerun = run_and_wait(ranks(), seed8);
  expect_clean_end(rerun);
  EXPECT_EQ(rerun.exit_code, 2) << rerun.output;
  EXPECT_TRUE(contains(rerun.output, out + "/dsir.h5.tmp is a directory")) << rerun.output;
  EXPECT_FALSE(contains(rerun.output, "fitting target model")) << "found only after the work:\n"
                                                               << rerun.output;
  EXPECT_EQ(read_file(out + "/dsir.h5"), h5);
  EXPECT_EQ(read_file(out + "/selected.jsonl"), jsonl);

  // A stale tmp *file* (a killed run's) is removed, and the next run replaces both files together.
  fs::remove_all(out + "/dsir.h5.tmp");
  write_file(out + "/selected.jsonl.tmp", "half-written");
  const BackgroundResult next = run_and_wait(ranks(), seed8);
  EXPECT_EQ(next.exit_code, 0) << next.output;
  EXPECT_EQ(dir_entries(out), (std::set<std::string>{"dsir.h5", "selected.jsonl"})) << join(dir_entries(out));
  EXPECT_TRUE(read_file(out + "/selected.jsonl") != jsonl) << "seed 8 selects differently";
  EXPECT_NE(skein::io::read_string_attribute(out + "/dsir.h5", "/", "run_id"), run_id);
  fs::remove_all(out);
}

// An output folder that cannot be written is an error in the first second, exit 74, naming the path.
TEST_P(Failures, UnwritableOutputFolderIsFoundAtOnce) {
  SmallDisk disk(64);
  if (!disk.ok()) GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  fs::create_directories(disk.path() + "/out");
  ASSERT_EQ(::mount("tmpfs", disk.path().c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, "size=64k"), 0);
  const BackgroundResult result = run_and_wait(ranks(), dsir_args(disk.path() + "/out"));
  expect_clean_end(result);
  EXPECT_EQ(result.exit_code, 74) << result.output;
  EXPECT_TRUE(contains(result.output, disk.path() + "/out")) << result.output;
  EXPECT_TRUE(contains(result.output, "read-only file system")) << result.output;
  EXPECT_FALSE(contains(result.output, "fitting target model")) << result.output;

  const std::string file = make_temp_dir("skein-notdir") + "/plain-file";
  write_file(file, "x");
  const BackgroundResult not_a_dir = run_and_wait(ranks(), dsir_args(file + "/out"));
  EXPECT_EQ(not_a_dir.exit_code, 74) << not_a_dir.output;
  EXPECT_TRUE(contains(not_a_dir.output, file)) << not_a_dir.output;
  EXPECT_TRUE(contains(not_a_dir.output, "not a directory")) << not_a_dir.output;
}

// Two runs never write into one folder: the second is refused while the first holds the folder's lock.
TEST_P(Failures, ABusyOutputFolderIsRefused) {
  const std::string out = make_temp_dir("skein-busy");
  const int fd = ::open((out + "/.skein.lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  ASSERT_EQ(::write(fd, "pid 12345 on elsewhere\n", 23), 23);
  const BackgroundResult result = run_and_wait(ranks(), dsir_args(out));
  ::close(fd);
  expect_clean_end(result);
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_TRUE(contains(result.output, "another skein run (pid 12345 on elsewhere) is writing into " + out))
      << result.output;
  const BackgroundResult after = run_and_wait(ranks(), dsir_args(out));
  EXPECT_EQ(after.exit_code, 0) << after.output;
  EXPECT_EQ(dir_entries(out), (std::set<std::string>{"dsir.h5", "selected.jsonl"})) << join(dir_entries(out));
  fs::remove_all(out);
}

// A run into a folder holding a checkpoint, without --resume, is refused (exit 2, naming its step and
// age); --fresh deletes it and starts over.
TEST_P(Failures, ForgottenResumeIsRefused) {
  const std::string out = make_temp_dir("skein-forgot");
  const BackgroundResult first =
      run_and_wait(ranks(), dsir_args(out, {"--checkpoint-steps", "1"}), {{"SKEIN_FAULT", "throw:0:3"}});
  ASSERT_EQ(first.exit_code, 70) << first.output;
  ASSERT_TRUE(file_exists(out + "/checkpoint.h5"));
  const std::string checkpoint = read_file(out + "/checkpoint.h5");

  const BackgroundResult refused = run_and_wait(ranks(), dsir_args(out));
  expect_clean_end(refused);
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_TRUE(contains(refused.output, out + "/checkpoint.h5 is a checkpoint of dsir at step 3"))
      << refused.output;
  EXPECT_TRUE(contains(refused.output, "ago; continue it with --resume, or start over with --fresh"))
      << refused.output;
  EXPECT_EQ(read_file(out + "/checkpoint.h5"), checkpoint);

  const BackgroundResult both = run_and_wait(ranks(), dsir_args(out, {"--resume", "--fresh"}));
  EXPECT_EQ(both.exit_code, 2) << both.output;

  const BackgroundResult fresh = run_and_wait(ranks(), dsir_args(out, {"--fresh"}));
  EXPECT_EQ(fresh.exit_code, 0) << fresh.output;
  EXPECT_TRUE(contains(fresh.output, "--fresh: deleted " + out + "/checkpoint.h5")) << fresh.output;
  EXPECT_EQ(dir_entries(out), (std::set<std::string>{"dsir.h5", "selected.jsonl"})) << join(dir_entries(out));
  fs::remove_all(out);
}

// Words that are not options are refused, with a hint when the word names an .ini file.
TEST_P(Failures, ExtraArgumentsAreRefused) {
  const std::string dir = make_temp_dir("skein-args");
  const std::string ini = dir + "/my.ini";
  write_file(ini, "[dsir]\nnum_select = 3\n");
  const BackgroundResult positional = run_and_wait(ranks(), {"run", "dsir", ini, "--out", dir + "/out"});
  EXPECT_EQ(positional.exit_code, 2) << positional.output;
  EXPECT_TRUE(
      contains(positional.output, "unexpected argument '" + ini + "'; did you mean `--config " + ini + "`?"))
      << positional.output;
  const BackgroundResult junk = run_and_wait(ranks(), {"run", "dsir", "--config", ini, "junk"});
  EXPECT_EQ(junk.exit_code, 2) << junk.output;
  EXPECT_TRUE(contains(junk.output, "unexpected argument 'junk'")) << junk.output;
  EXPECT_FALSE(fs::exists(dir + "/out"));
  fs::remove_all(dir);
}

// `skein --help` starts with skein's usage, not Kokkos's option banner; config values that users get wrong
// are named with their fix.
TEST(Usage, HelpAndConfigMistakes) {
  const RunResult help = run_skein(0, {"--help"});
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_EQ(help.output.rfind("skein", 0), 0u) << help.output;
  EXPECT_FALSE(contains(help.output, "--kokkos-")) << "Kokkos's option banner:\n" << help.output;

  const std::string out = make_temp_dir("skein-usage");
  const RunResult tiny = run_skein(1, with_option(dsir_args(out), "--dsir.piece_size=1"));
  EXPECT_EQ(tiny.exit_code, 2) << tiny.output;
  EXPECT_TRUE(contains(tiny.output, "'dsir.piece_size': '1' is 1 bytes; use at least 4k")) << tiny.output;

  const RunResult sampled = run_skein(1, dsir_args(out, {"--dsir.raw_fit=0.000000001"}));
  EXPECT_EQ(sampled.exit_code, 2) << sampled.output;
  EXPECT_TRUE(contains(sampled.output, "dsir.raw_fit = 0.000000001 sampled none of the raw documents"))
      << sampled.output;

  // Input files that are not what their names say, or whose names cannot be.
  write_file(out + "/plain.jsonl.zst", "{\"text\": \"not compressed\"}\n");
  const RunResult not_zstd =
      run_skein(1, with_option(dsir_args(out + "/o"), "--dsir.target=" + out + "/plain.jsonl.zst"));
  EXPECT_EQ(not_zstd.exit_code, 65) << not_zstd.output;
  EXPECT_TRUE(contains(not_zstd.output, out + "/plain.jsonl.zst is named .zst but is not zstd-compressed"))
      << not_zstd.output;
  const std::string long_name = out + "/" + std::string(300, 'x') + ".jsonl";
  const RunResult too_long = run_skein(1, with_option(dsir_args(out + "/o"), "--dsir.target=" + long_name));
  EXPECT_EQ(too_long.exit_code, 65) << too_long.output;
  EXPECT_TRUE(contains(too_long.output, "File name too long")) << too_long.output;

  // More documents asked for than are eligible: found after the raw fit, before scoring.
  const RunResult too_many = run_skein(1, with_option(dsir_args(out), "--dsir.num_select=100000"));
  EXPECT_EQ(too_many.exit_code, 2) << too_many.output;
  EXPECT_TRUE(contains(too_many.output, "dsir.num_select = 100000 but only")) << too_many.output;
  EXPECT_FALSE(contains(too_many.output, "scoring raw documents")) << too_many.output;
  fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(Ranks, Failures, ::testing::Values(1, 2),
                         [](const auto& info) { return "np" + std::to_string(info.param); });

// Ctrl-C, SIGTERM and SIGHUP to mpirun (Open MPI 4.1): mpirun sends the ranks SIGCONT at once, SIGTERM
// odls_base_sigkill_timeout seconds later and SIGKILL as long again after that (measured); given that time,
// the ranks write a valid checkpoint. mpirun itself then exits 1 (its own code for "killed on request").
TEST(Signals, StopSignalsToMpirunLeaveACheckpoint) {
  for (const int signal_number : {SIGINT, SIGTERM, SIGHUP}) {
    const std::string out = make_temp_dir("skein-signal");
    const std::vector<std::string> args =
        with_option(dsir_args(out, {"--checkpoint-steps", "5"}), "--dsir.piece_size=16k");
    BackgroundRun run =
        start_skein(2, args, {{"OMPI_MCA_odls_base_sigkill_timeout", "3"}, {"SKEIN_TEST_STEP_DELAY", "0.2"}});
    // Steps are running once the first periodic checkpoint is there; then the launcher gets the signal.
    ASSERT_TRUE(run.wait_until([&] { return file_exists(out + "/checkpoint.h5"); }, kTimeout))
        << run.output();
    run.signal_launcher(signal_number);
    const BackgroundResult result = run.wait(kTimeout);
    expect_clean_end(result);
    EXPECT_NE(result.exit_code, 0) << result.output;
    EXPECT_TRUE(contains(result.output, "stopped by SIGTERM")) << result.output;
    EXPECT_TRUE(contains(result.output, "checkpoint written to " + out + "/checkpoint.h5")) << result.output;
    ASSERT_TRUE(file_exists(out + "/checkpoint.h5")) << join(dir_entries(out));
    EXPECT_FALSE(has_tmp_file(out)) << join(dir_entries(out));
    const BackgroundResult resumed = run_and_wait(2, with_resume(args));
    EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
    EXPECT_EQ(dir_entries(out), (std::set<std::string>{"dsir.h5", "selected.jsonl"}))
        << join(dir_entries(out));
    fs::remove_all(out);
  }
}

// When the launcher's kill would come before a checkpoint could finish (the last one took longer than the
// grace left), none is started: the previous checkpoint stays, and the message says so.
TEST(Signals, NoCheckpointIsStartedThatCannotFinish) {
  const std::string out = make_temp_dir("skein-grace");
  const std::vector<std::string> args =
      with_option(dsir_args(out, {"--checkpoint-steps", "3"}), "--dsir.piece_size=4k");
  BackgroundRun run =
      start_skein(2, args, {{"SKEIN_STOP_GRACE_SECONDS", "0"}, {"SKEIN_TEST_STEP_DELAY", "0.02"}});
  ASSERT_TRUE(run.wait_until([&] { return file_exists(out + "/checkpoint.h5"); }, kTimeout)) << run.output();
  run.signal_ranks(SIGTERM);
  const BackgroundResult result = run.wait(kTimeout);
  expect_clean_end(result);
  EXPECT_EQ(result.exit_code, 75) << result.output;
  EXPECT_TRUE(contains(result.output, "no checkpoint: the launcher kills the ranks 0.0 s after the signal"))
      << result.output;
  EXPECT_TRUE(contains(result.output, "the newest checkpoint in " + out + " stays")) << result.output;
  EXPECT_TRUE(file_exists(out + "/checkpoint.h5"));
  EXPECT_FALSE(has_tmp_file(out)) << join(dir_entries(out));
  fs::remove_all(out);
}

}  // namespace
