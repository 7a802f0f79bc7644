// dsir on compressed shards with more ranks than files: a raw corpus of two .jsonl.zst shards (one
// single-frame, one multi-frame) and a target in one frame that declares no size give, at 1, 2 and 3 ranks,
// exactly the selection, log weights and metrics of the same corpus uncompressed; a run killed with SIGKILL
// resumes at another rank count to the same outputs, also when a slow rank's pieces were taken by the others;
// a truncated shard is a clear error (file and
// decompressed offset, exit 65) on every rank, with no rank left running and nothing written.
#include "io/h5_reader.hpp"
#include "tests/e2e/cli_runner.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <zstd.h>

#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

using namespace skein::test;

namespace {

const std::string kData = std::string(SKEIN_TEST_DATA_DIR) + "/dsir";
constexpr double kRunTimeout = 90;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string compress(const std::string& bytes, bool declare_size) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, declare_size ? 1 : 0);
  std::string out(ZSTD_compressBound(bytes.size()), '\0');
  const std::size_t n = ZSTD_compress2(cctx, out.data(), out.size(), bytes.data(), bytes.size());
  ZSTD_freeCCtx(cctx);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(ZSTD_isError(n) ? 0 : n);
  return out;
}

// Frames of `frame_bytes` of text each, cut wherever that falls (mid-line), concatenated.
std::string compress_frames(const std::string& bytes, std::size_t frame_bytes) {
  std::string out;
  for (std::size_t begin = 0; begin < bytes.size(); begin += frame_bytes) {
    out += compress(bytes.substr(begin, frame_bytes), true);
  }
  return out;
}

std::int64_t checkpoint_step(const std::string& path) {
  try {
    return skein::io::read_int64_attribute(path, "/", "checkpoint_step");
  } catch (const std::exception&) {
    return -1;
  }
}

template <class T>
void expect_same_dataset(const std::string& out, const std::string& reference, const std::string& name) {
  const auto got = skein::io::read_dataset<T>(out + "/dsir.h5", name);
  const auto want = skein::io::read_dataset<T>(reference + "/dsir.h5", name);
  EXPECT_EQ(got.size(), want.size()) << name;
  EXPECT_TRUE(got == want) << out << ": " << name << " differs from " << reference << "'s";
}

// `out` holds exactly `reference`'s results: the selected lines byte for byte, every selected and raw
// document's (file, decompressed offset), log weight and length, the model and the metrics.
void expect_same_outputs(const std::string& out, const std::string& reference) {
  ASSERT_TRUE(file_exists(out + "/dsir.h5")) << out;
  EXPECT_TRUE(read_file(out + "/selected.jsonl") == read_file(reference + "/selected.jsonl"))
      << out << "/selected.jsonl differs from " << reference << "'s";
  expect_same_dataset<std::uint64_t>(out, reference, "/selected/file_index");
  expect_same_dataset<std::uint64_t>(out, reference, "/selected/byte_offset");
  expect_same_dataset<double>(out, reference, "/selected/log_weight");
  expect_same_dataset<std::uint64_t>(out, reference, "/raw/file_index");
  expect_same_dataset<std::uint64_t>(out, reference, "/raw/byte_offset");
  expect_same_dataset<double>(out, reference, "/raw/log_weight");
  expect_same_dataset<std::int64_t>(out, reference, "/raw/num_tokens");
  expect_same_dataset<double>(out, reference, "/model/target_log_prob");
  expect_same_dataset<double>(out, reference, "/model/raw_log_prob");
  for (const char* name : {"kl_target_selected", "kl_target_random", "docs_read", "docs_scored",
                           "docs_eligible", "target_docs_read"}) {
    EXPECT_EQ(skein::io::read_double_attribute(out + "/dsir.h5", "/metrics", name),
              skein::io::read_double_attribute(reference + "/dsir.h5", "/metrics", name))
        << out << ": /metrics " << name;
  }
}

// Raw: the Brown press documents and two thirds of the 'government' ones, in two shards; target: the other
// government documents. plain/ holds them as .jsonl, zst/ as .jsonl.zst: shard 0 in one frame, shard 1 in
// frames of 40 kB cut mid-line, the target in one frame that does not declare its size (as streaming
// writers leave it).
class CompressedShards : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = make_temp_dir("dsir-zst");
    const auto government = lines_of(read_file(kData + "/brown_target.jsonl"));
    std::string raw = read_file(kData + "/brown_raw.jsonl"), target;
    for (std::size_t i = 0; i < government.size(); ++i) (i % 3 == 0 ? target : raw) += government[i] + "\n";
    const std::size_t cut = raw.find('\n', raw.size() / 2) + 1;
    shards_ = {raw.substr(0, cut), raw.substr(cut)};
    std::filesystem::create_directories(dir_ + "/plain");
    std::filesystem::create_directories(dir_ + "/zst");
    write_file(dir_ + "/plain/shard0.jsonl", shards_[0]);
    write_file(dir_ + "/plain/shard1.jsonl", shards_[1]);
    write_file(dir_ + "/plain/target.jsonl", target);
    write_file(dir_ + "/zst/shard0.jsonl.zst", compress(shards_[0], true));
    write_file(dir_ + "/zst/shard1.jsonl.zst", compress_frames(shards_[1], 40000));
    write_file(dir_ + "/zst/target.jsonl.zst", compress(target, false));
    reference_ = make_temp_dir("dsir-zst-plain");
    const RunResult plain = run_skein(1, args("plain", reference_, ".jsonl"));
    ASSERT_EQ(plain.exit_code, 0) << plain.output;
  }
  static std::vector<std::string> args(const std::string& kind, const std::string& out,
                                       const std::string& ext, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> a = {"run", "dsir", "--out", out,
                                  "--dsir.raw=" + dir_ + "/" + kind + "/shard*" + ext,
                                  "--dsir.target=" + dir_ + "/" + kind + "/target" + ext,
                                  "--dsir.num_select=100", "--dsir.seed=11", "--dsir.save_weights=true",
                                  // Small pieces: a rank entering the single-frame shard mid-way
                                  // decodes its lead-in over several steps (4 pieces' worth each).
                                  "--dsir.piece_size=16k"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  static std::vector<std::string> zst_args(const std::string& out,
                                           const std::vector<std::string>& extra = {}) {
    return args("zst", out, ".jsonl.zst", extra);
  }
  static std::string dir_, reference_;
  static std::vector<std::string> shards_;
};
std::string CompressedShards::dir_, CompressedShards::reference_;
std::vector<std::string> CompressedShards::shards_;

TEST_F(CompressedShards, SameSelectionAtOneTwoThreeRanksAsUncompressed) {
  EXPECT_EQ(skein::io::read_dataset<std::uint64_t>(reference_ + "/dsir.h5", "/raw/byte_offset").size(),
            lines_of(shards_[0]).size() + lines_of(shards_[1]).size());
  for (const int ranks : {1, 2, 3}) {
    const std::string out = make_temp_dir("dsir-zst-" + std::to_string(ranks));
    const RunResult run = run_skein(ranks, zst_args(out));
    ASSERT_EQ(run.exit_code, 0) << run.output;
    SCOPED_TRACE(std::to_string(ranks) + " ranks");
    expect_same_outputs(out, reference_);
    // The single-frame shard is split at 3 ranks (not at 1): the log says what that costs and the remedy.
    const bool hint = run.output.find("1 .jsonl.zst file is one zstd frame read by several ranks (" + dir_ +
                                      "/zst/shard0.jsonl.zst by ") != std::string::npos &&
                      run.output.find("pzstd") != std::string::npos;
    if (ranks == 1) EXPECT_FALSE(hint) << run.output;
    if (ranks == 3) EXPECT_TRUE(hint) << run.output;
    std::filesystem::remove_all(out);
  }
}

// SIGKILL to every process (a lost node) once a checkpoint of a given step exists, then --resume at another
// rank count: the outputs are the uncompressed run's.
TEST_F(CompressedShards, KilledAndResumedAtAnotherRankCount) {
  struct Case {
    int ranks, resume_ranks;
    std::int64_t kill_after_step;
  };
  for (const Case c : {Case{3, 2, 2}, Case{2, 3, 12}}) {
    SCOPED_TRACE("killed at " + std::to_string(c.ranks) + " ranks after step " +
                 std::to_string(c.kill_after_step) + ", resumed at " + std::to_string(c.resume_ranks));
    const std::string out = make_temp_dir("dsir-zst-kill");
    BackgroundRun run = start_skein(c.ranks, zst_args(out, {"--checkpoint-steps", "1"}));
    run.wait_until([&] { return checkpoint_step(out + "/checkpoint.h5") >= c.kill_after_step; }, kRunTimeout);
    const bool finished = !run.running();
    run.kill_all();
    const BackgroundResult killed = run.wait(15);
    EXPECT_FALSE(killed.timed_out);
    EXPECT_FALSE(finished) << "the run ended before it could be killed:\n" << run.output();
    EXPECT_GE(checkpoint_step(out + "/checkpoint.h5"), c.kill_after_step);
    const RunResult resumed = run_skein(c.resume_ranks, zst_args(out, {"--resume"}));
    ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
    EXPECT_NE(resumed.output.find("resuming from " + out + "/checkpoint"), std::string::npos)
        << resumed.output;
    expect_same_outputs(out, reference_);
    std::filesystem::remove_all(out);
  }
}

// A straggler (SKEIN_TEST_DSIR_SLOW_RANK: rank 1 takes 20 ms longer over each piece) at 2 and 3 ranks: the
// others read at their own speed, run out first and take rank 1's last pieces (its debug log and theirs
// count them), in the plain files and the multi-frame shard; the outputs are still the uncompressed 1-rank
// run's, and so are they after a kill in the middle and a resume at another rank count.
TEST_F(CompressedShards, ASlowRanksLastPiecesAreTakenByTheOthers) {
  const std::vector<std::pair<std::string, std::string>> slow = {{"SKEIN_TEST_DSIR_SLOW_RANK", "1:0.02"}};
  for (const int ranks : {2, 3}) {
    SCOPED_TRACE(std::to_string(ranks) + " ranks");
    for (const std::string kind : {"plain", "zst"}) {
      const std::string out = make_temp_dir("dsir-zst-slow"), logs = out + "-logs";
      const std::string ext = kind == "plain" ? ".jsonl" : ".jsonl.zst";
      const BackgroundResult run =
          start_skein(ranks, args(kind, out, ext, {"--debug-log", logs}), slow).wait(kRunTimeout);
      ASSERT_EQ(run.exit_code, 0) << run.output;
      expect_same_outputs(out, reference_);
      std::uint64_t taken = 0;
      const std::regex moved("fitting raw model: .* ([0-9]+) pieces taken over from slower ranks");
      for (int r = 0; r < ranks; ++r) {
        const std::string log = read_file(logs + "/rank-" + std::to_string(r) + ".log");
        std::smatch m;
        ASSERT_TRUE(std::regex_search(log, m, moved)) << log;
        if (r != 1) taken += std::stoull(m[1]);
      }
      EXPECT_GT(taken, 0u) << kind;
      std::filesystem::remove_all(out);
      std::filesystem::remove_all(logs);
    }
  }
  const std::string out = make_temp_dir("dsir-zst-slow-kill");
  BackgroundRun run = start_skein(2, zst_args(out, {"--checkpoint-steps", "1"}), slow);
  run.wait_until([&] { return checkpoint_step(out + "/checkpoint.h5") >= 8; }, kRunTimeout);
  const bool finished = !run.running();
  run.kill_all();
  EXPECT_FALSE(run.wait(15).timed_out);
  EXPECT_FALSE(finished) << "the run ended before it could be killed:\n" << run.output();
  const RunResult resumed = run_skein(3, zst_args(out, {"--resume"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  expect_same_outputs(out, reference_);
  std::filesystem::remove_all(out);
}

// dsir.index_cache: the first run indexes the three .zst files and keeps their indexes, the next one reads
// them all from the cache (at another rank count) and selects the same; `off` keeps nothing.
TEST_F(CompressedShards, IndexCacheSkipsIndexingOnTheNextRun) {
  const std::string cache = make_temp_dir("dsir-zst-index-cache");
  for (const auto& [ranks, from_cache] : {std::pair<int, int>{2, 0}, std::pair<int, int>{3, 3}}) {
    SCOPED_TRACE(std::to_string(ranks) + " ranks");
    const std::string out = make_temp_dir("dsir-zst-cached");
    const RunResult run = run_skein(ranks, zst_args(out, {"--dsir.index_cache=" + cache}));
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_NE(run.output.find("dsir: indexed 3 .jsonl.zst files, " + std::to_string(from_cache) +
                              " from the index cache " + cache),
              std::string::npos)
        << run.output;
    expect_same_outputs(out, reference_);
    std::filesystem::remove_all(out);
  }
  const std::string out = make_temp_dir("dsir-zst-uncached");
  const RunResult run = run_skein(1, zst_args(out, {"--dsir.index_cache=off"}));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("dsir: indexed 3 .jsonl.zst files\n"), std::string::npos) << run.output;
  std::filesystem::remove_all(out);
  std::filesystem::remove_all(cache);
}

// A checkpoint from a skein that cut .zst files by compressed bytes (no /state zstd_pieces) is refused, not
// resumed with pieces that now mean other documents.
TEST_F(CompressedShards, ResumeRefusesACheckpointWithCompressedPieces) {
  const std::string out = make_temp_dir("dsir-zst-old");
  BackgroundRun run = start_skein(2, zst_args(out, {"--checkpoint-steps", "1"}));
  run.wait_until([&] { return checkpoint_step(out + "/checkpoint.h5") >= 2; }, kRunTimeout);
  run.kill_all();
  run.wait(15);
  // While a checkpoint is committed, checkpoint.prev.h5 is a hard link to checkpoint.h5: a kill in that
  // window leaves both names on one file, whose attribute the first deletion already removed.
  int deleted = 0;
  for (const char* name : {"/checkpoint.h5", "/checkpoint.prev.h5"}) {
    if (!file_exists(out + name)) continue;
    const hid_t file = H5Fopen((out + name).c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    if (H5Aexists_by_name(file, "/state", "zstd_pieces", H5P_DEFAULT) > 0) {
      EXPECT_GE(H5Adelete_by_name(file, "/state", "zstd_pieces", H5P_DEFAULT), 0);
      ++deleted;
    }
    H5Fclose(file);
  }
  EXPECT_GE(deleted, 1) << "no checkpoint in " << out << " held /state zstd_pieces";
  const RunResult resumed = run_skein(2, zst_args(out, {"--resume"}));
  EXPECT_EQ(resumed.exit_code, 2) << resumed.output;
  EXPECT_NE(
      resumed.output.find("cannot resume: the checkpoint was written by an older skein that cut .jsonl.zst"),
      std::string::npos)
      << resumed.output;
  std::filesystem::remove_all(out);
}

// A shard cut short (mid-frame): exit 65 on every rank, promptly, naming the file and the decompressed byte
// where its data ends; no output is left.
TEST_F(CompressedShards, TruncatedShardIsAClearErrorOnEveryRank) {
  struct Case {
    std::string name;        // the shard cut short
    std::string compressed;  // its bytes before the cut
    std::size_t text_bytes;  // its decompressed size when whole
  };
  const std::string bad = make_temp_dir("dsir-zst-bad");
  const std::string single = compress(shards_[0], true), multi = compress_frames(shards_[1], 40000);
  for (const Case& c : {Case{"shard0.jsonl.zst", single.substr(0, single.size() / 2), shards_[0].size()},
                        Case{"shard1.jsonl.zst", multi.substr(0, multi.size() - 5000), shards_[1].size()}}) {
    SCOPED_TRACE(c.name);
    std::filesystem::remove_all(bad + "/zst");
    std::filesystem::create_directories(bad + "/zst");
    for (const char* name : {"shard0.jsonl.zst", "shard1.jsonl.zst", "target.jsonl.zst"}) {
      std::filesystem::copy_file(dir_ + "/zst/" + name, bad + "/zst/" + name);
    }
    write_file(bad + "/zst/" + c.name, c.compressed);
    const std::string out = bad + "/out";
    auto a = zst_args(out);
    a[4] = "--dsir.raw=" + bad + "/zst/shard*.jsonl.zst";
    const RunResult run = run_skein(3, a, 60);
    EXPECT_EQ(run.exit_code, 65) << run.output;
    const std::string path = bad + "/zst/" + c.name;
    std::smatch match;
    ASSERT_TRUE(std::regex_search(
        run.output, match,
        std::regex(path +
                   ": truncated zstd stream: the file ends mid-frame, after decompressed byte (\\d+)")))
        << run.output;
    EXPECT_LT(std::stoull(match[1].str()), c.text_bytes);
    EXPECT_FALSE(file_exists(out + "/dsir.h5"));
    EXPECT_FALSE(file_exists(out + "/selected.jsonl"));
  }
  std::filesystem::remove_all(bad);
}

}  // namespace
