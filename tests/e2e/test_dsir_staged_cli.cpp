// dsir's staged runs end to end: fit once, score the raw corpus in shard tasks at different rank counts,
// merge, and get byte for byte the selection (and the log weights) of one run; models and shard sets that do
// not belong together are refused with a message naming the file and the key.
#include "io/h5_reader.hpp"
#include "tests/e2e/cli_runner.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

using namespace skein::test;

namespace {

const std::string kData = std::string(SKEIN_TEST_DATA_DIR) + "/dsir";

std::vector<std::string> split_lines(const std::string& bytes) {
  std::vector<std::string> lines;
  std::istringstream in(bytes);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

template <class T>
std::vector<T> dataset(const std::string& dir, const std::string& name) {
  return skein::io::read_dataset<T>(dir + "/dsir.h5", name);
}

// Raw: the Brown press documents and two thirds of the 'government' ones, cut into three files; target: the
// other third. Small pieces (4k), so each file is many pieces and the shards cut through files.
class DsirStaged : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = make_temp_dir("dsir-staged");
    const auto government = split_lines(read_file(kData + "/brown_target.jsonl"));
    auto raw = split_lines(read_file(kData + "/brown_raw.jsonl"));
    std::string target;
    for (std::size_t i = 0; i < government.size(); ++i) {
      if (i % 3 == 0) {
        target += government[i] + "\n";
      } else {
        raw.push_back(government[i]);
      }
    }
    write_file(dir_ + "/target.jsonl", target);
    std::string parts[3];
    for (std::size_t i = 0; i < raw.size(); ++i) parts[i * 3 / raw.size()] += raw[i] + "\n";
    for (int f = 0; f < 3; ++f) write_file(dir_ + "/raw-" + std::to_string(f) + ".jsonl", parts[f]);

    // One run, the reference for every staged one.
    one_ = dir_ + "/one";
    const RunResult run = run_skein(2, args(one_, {}));
    ASSERT_EQ(run.exit_code, 0) << run.output;
    fit_ = dir_ + "/fit";
    const RunResult fit = run_skein(2, args(fit_, {"--dsir.stage=fit"}));
    ASSERT_EQ(fit.exit_code, 0) << fit.output;
    // Shard i of 3 at i+1 ranks.
    for (int shard = 0; shard < 3; ++shard) {
      shards_[shard] = dir_ + "/score/task-" + std::to_string(shard);
      const RunResult score =
          run_skein(shard + 1, args(shards_[shard], {"--dsir.stage=score", "--dsir.model=" + model(),
                                                     "--dsir.shard=" + std::to_string(shard) + "/3"}));
      ASSERT_EQ(score.exit_code, 0) << score.output;
    }
  }
  // The same config for every stage, as a user would keep it in one file.
  static std::vector<std::string> args(const std::string& out, const std::vector<std::string>& extra) {
    std::vector<std::string> a = {"run",
                                  "dsir",
                                  "--out",
                                  out,
                                  "--dsir.raw=" + dir_ + "/raw-*.jsonl",
                                  "--dsir.target=" + dir_ + "/target.jsonl",
                                  "--dsir.num_select=60",
                                  "--dsir.seed=11",
                                  "--dsir.piece_size=4k",
                                  "--dsir.save_weights=true"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  static std::string model() { return fit_ + "/dsir.h5"; }
  static std::string shard_list(const std::vector<std::string>& dirs) {
    std::string list;
    for (const auto& d : dirs) list += (list.empty() ? "" : ",") + d + "/dsir.h5";
    return list;
  }
  static std::string dir_, one_, fit_, shards_[3];
};
std::string DsirStaged::dir_, DsirStaged::one_, DsirStaged::fit_, DsirStaged::shards_[3];

void expect_same_selection(const std::string& one, const std::string& staged) {
  EXPECT_EQ(read_file(one + "/selected.jsonl"), read_file(staged + "/selected.jsonl"));
  EXPECT_EQ(split_lines(read_file(staged + "/selected.jsonl")).size(), 60u);
  EXPECT_EQ(dataset<std::uint32_t>(one, "/selected/file_index"),
            dataset<std::uint32_t>(staged, "/selected/file_index"));
  EXPECT_EQ(dataset<std::uint64_t>(one, "/selected/byte_offset"),
            dataset<std::uint64_t>(staged, "/selected/byte_offset"));
  EXPECT_EQ(dataset<double>(one, "/selected/log_weight"), dataset<double>(staged, "/selected/log_weight"));
  // Every document's log weight, bit for bit, in the same order.
  EXPECT_EQ(dataset<double>(one, "/raw/log_weight"), dataset<double>(staged, "/raw/log_weight"));
  EXPECT_EQ(dataset<std::uint64_t>(one, "/raw/byte_offset"),
            dataset<std::uint64_t>(staged, "/raw/byte_offset"));
  EXPECT_EQ(dataset<std::int64_t>(one, "/raw/num_tokens"), dataset<std::int64_t>(staged, "/raw/num_tokens"));
  EXPECT_EQ(dataset<double>(one, "/model/target_log_prob"),
            dataset<double>(staged, "/model/target_log_prob"));
  EXPECT_EQ(dataset<double>(one, "/model/raw_log_prob"), dataset<double>(staged, "/model/raw_log_prob"));
  for (const char* metric : {"kl_target_raw", "kl_target_selected", "kl_target_random", "docs_read",
                             "docs_scored", "docs_eligible", "docs_raw_fit", "target_docs_read"}) {
    EXPECT_EQ(skein::io::read_double_attribute(one + "/dsir.h5", "/metrics", metric),
              skein::io::read_double_attribute(staged + "/dsir.h5", "/metrics", metric))
        << metric;
  }
  EXPECT_EQ(skein::io::read_strings(one + "/dsir.h5", "/inputs/target_files"),
            skein::io::read_strings(staged + "/dsir.h5", "/inputs/target_files"));
}

TEST_F(DsirStaged, FitScoreInShardsAndMergeSelectExactlyWhatOneRunSelects) {
  const std::string& one = one_;
  const std::string merged = dir_ + "/merged";
  // The fit stage writes the model and nothing to select.
  EXPECT_FALSE(file_exists(fit_ + "/selected.jsonl"));
  EXPECT_EQ(skein::io::read_string_attribute(model(), "/", "stage"), "fit");
  // Shards cut the raw pieces in three; each holds at most num_select candidates of its own documents.
  std::uint64_t docs = 0;
  for (const auto& shard : shards_) {
    EXPECT_LE(dataset<std::uint64_t>(shard, "/shard/selection_id").size(), 60u);
    docs += dataset<double>(shard, "/raw/log_weight").size();
  }
  EXPECT_EQ(docs, dataset<double>(one, "/raw/log_weight").size());
  // The merge at 3 ranks, given the shards in another order than their indices.
  const RunResult merge = run_skein(
      3, args(merged,
              {"--dsir.stage=merge", "--dsir.shards=" + shard_list({shards_[2], shards_[0], shards_[1]})}));
  ASSERT_EQ(merge.exit_code, 0) << merge.output;
  expect_same_selection(one, merged);
  // A whole run with the saved model (no fitting) selects the same too.
  const std::string with_model = dir_ + "/with-model";
  const RunResult reuse = run_skein(1, args(with_model, {"--dsir.model=" + model()}));
  ASSERT_EQ(reuse.exit_code, 0) << reuse.output;
  EXPECT_NE(reuse.output.find("no fitting"), std::string::npos) << reuse.output;
  expect_same_selection(one, with_model);
}

// kill -9 mid-stage, then --resume at another rank count: the same shard, the same selection.
TEST_F(DsirStaged, ScoreAndMergeStagesResumeAfterKill) {
  const std::string shard = dir_ + "/killed-shard", merged = dir_ + "/killed-merge";
  const auto score_args = args(shard, {"--dsir.stage=score", "--dsir.model=" + model(), "--dsir.shard=1/3",
                                       "--checkpoint-steps", "2"});
  const auto killed = start_skein(2, score_args, {{"SKEIN_FAULT", "kill:0:4"}}).wait(120);
  ASSERT_NE(killed.exit_code, 0) << killed.output;
  ASSERT_TRUE(file_exists(shard + "/checkpoint.h5")) << killed.output;
  auto resume_args = score_args;
  resume_args.push_back("--resume");
  const RunResult resumed = run_skein(3, resume_args);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming while scoring raw documents"), std::string::npos) << resumed.output;
  auto sorted = [](std::vector<std::uint64_t> ids) {
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  EXPECT_EQ(sorted(dataset<std::uint64_t>(shard, "/shard/selection_id")),
            sorted(dataset<std::uint64_t>(shards_[1], "/shard/selection_id")));
  EXPECT_EQ(sorted(dataset<std::uint64_t>(shard, "/shard/baseline_id")),
            sorted(dataset<std::uint64_t>(shards_[1], "/shard/baseline_id")));
  EXPECT_EQ(dataset<double>(shard, "/raw/log_weight"), dataset<double>(shards_[1], "/raw/log_weight"));

  const auto merge_args =
      args(merged, {"--dsir.stage=merge", "--dsir.shards=" + shard_list({shards_[0], shard, shards_[2]}),
                    "--checkpoint-steps", "2"});
  const auto killed_merge = start_skein(2, merge_args, {{"SKEIN_FAULT", "kill:1:6"}}).wait(120);
  ASSERT_NE(killed_merge.exit_code, 0) << killed_merge.output;
  auto resume_merge = merge_args;
  resume_merge.push_back("--resume");
  const RunResult merge = run_skein(1, resume_merge);
  ASSERT_EQ(merge.exit_code, 0) << merge.output;
  expect_same_selection(one_, merged);
}

TEST_F(DsirStaged, ModelWithOtherBucketsIsRefusedNamingFileAndKey) {
  for (const std::string& setting : {std::string("num_buckets=5000"), std::string("ngrams=1"),
                                     std::string("hash=sha256"), std::string("lowercase=false")}) {
    const std::string out = make_temp_dir("dsir-staged-bad-model");
    const RunResult run = run_skein(2, args(out, {"--dsir.stage=score", "--dsir.model=" + model(),
                                                  "--dsir.shard=0/3", "--dsir." + setting}));
    EXPECT_EQ(run.exit_code, 2) << setting << ": " << run.output;
    const std::string key = setting.substr(0, setting.find('='));
    EXPECT_NE(run.output.find("dsir.model = " + model() + " was fitted with " + key + " = "),
              std::string::npos)
        << setting << ": " << run.output;
    EXPECT_FALSE(file_exists(out + "/dsir.h5"));
  }
  // A model file that is not there: exit 65 naming the key and the file.
  const std::string missing = dir_ + "/no-such-model.h5";
  const RunResult run =
      run_skein(2, args(make_temp_dir("dsir-staged-no-model"), {"--dsir.model=" + missing}));
  EXPECT_EQ(run.exit_code, 65) << run.output;
  EXPECT_NE(run.output.find("dsir.model = " + missing + ": no such file"), std::string::npos) << run.output;
}

TEST_F(DsirStaged, MergeRefusesMissingDuplicatedAndMixedShards) {
  struct Case {
    std::string name;
    std::vector<std::string> shards;
    std::string message;
  };
  // A second model (another fit run) and shard 1 scored with it.
  const std::string other_fit = dir_ + "/fit-2", other_shard = dir_ + "/score-2/task-1";
  ASSERT_EQ(run_skein(1, args(other_fit, {"--dsir.stage=fit"})).exit_code, 0);
  const RunResult other = run_skein(
      1, args(other_shard,
              {"--dsir.stage=score", "--dsir.model=" + other_fit + "/dsir.h5", "--dsir.shard=1/3"}));
  ASSERT_EQ(other.exit_code, 0) << other.output;
  const std::string copy = dir_ + "/copy-of-1";
  std::filesystem::create_directories(copy);
  std::filesystem::copy_file(shards_[1] + "/dsir.h5", copy + "/dsir.h5",
                             std::filesystem::copy_options::overwrite_existing);
  const std::vector<Case> cases = {
      {"missing", {shards_[0], shards_[2]}, "1 of 3 shards are missing (index 1)"},
      {"duplicated", {shards_[0], shards_[1], copy, shards_[2]}, "shard 1 of 3 is given twice: "},
      {"mixed models",
       {shards_[0], other_shard, shards_[2]},
       "every shard must be scored with the same dsir.model"},
  };
  for (const auto& c : cases) {
    const std::string out = make_temp_dir("dsir-staged-bad-merge");
    const RunResult run =
        run_skein(2, args(out, {"--dsir.stage=merge", "--dsir.shards=" + shard_list(c.shards)}));
    EXPECT_EQ(run.exit_code, 65) << c.name << ": " << run.output;
    EXPECT_NE(run.output.find(c.message), std::string::npos) << c.name << ": " << run.output;
    EXPECT_FALSE(file_exists(out + "/dsir.h5")) << c.name;
  }
  // Shards scored with other selection settings than the merge's: exit 2 naming the key.
  const std::string out = make_temp_dir("dsir-staged-bad-merge");
  const RunResult run = run_skein(
      2, with_option(args(out, {"--dsir.stage=merge",
                                "--dsir.shards=" + shard_list({shards_[0], shards_[1], shards_[2]})}),
                     "--dsir.seed=12"));
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_NE(run.output.find("was scored with dsir.seed = 11, this merge has dsir.seed = 12"),
            std::string::npos)
      << run.output;
}

TEST_F(DsirStaged, StageKeysAreCheckedBeforeAnyWork) {
  struct Case {
    std::vector<std::string> extra;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--dsir.stage=score", "--dsir.shard=0/3"}, "stage = score needs config key 'dsir.model'"},
      {{"--dsir.stage=score", "--dsir.model=" + model()}, "stage = score needs config key 'dsir.shard'"},
      {{"--dsir.stage=score", "--dsir.model=" + model(), "--dsir.shard=3/3"}, "needs 0 <= I < N"},
      {{"--dsir.stage=score", "--dsir.model=" + model(), "--dsir.shard=array"}, "not a Slurm array task"},
      {{"--dsir.stage=merge"}, "stage = merge needs config key 'dsir.shards'"},
      {{"--dsir.shard=0/2"}, "'dsir.shard' is only read with stage = score"},
  };
  for (const auto& c : cases) {
    const std::string out = make_temp_dir("dsir-staged-keys");
    const RunResult run = run_skein(0, args(out, c.extra));
    EXPECT_EQ(run.exit_code, 2) << run.output;
    EXPECT_NE(run.output.find(c.message), std::string::npos) << run.output;
  }
}

}  // namespace
