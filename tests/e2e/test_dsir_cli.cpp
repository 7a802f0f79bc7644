// The dsir job end to end through the `skein` executable: parity with the reference package's log weights,
// identical selections at 1, 2 and 3 ranks, selection quality on Brown, and every bad input's message and
// exit code (with no rank left running and nothing half-written).
#include "io/h5_reader.hpp"
#include "tests/e2e/cli_runner.hpp"

#include <gtest/gtest.h>
#include <zstd.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

using namespace skein::test;

namespace {

const std::string kData = std::string(SKEIN_TEST_DATA_DIR) + "/dsir";

struct GoldenRow {
  std::int64_t length;
  double log_weight;
};

std::vector<GoldenRow> read_golden(const std::string& path) {
  std::ifstream in(path);
  std::vector<GoldenRow> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::int64_t index;
    GoldenRow row{};
    fields >> index >> row.length >> row.log_weight;
    EXPECT_EQ(index, static_cast<std::int64_t>(rows.size()));
    rows.push_back(row);
  }
  return rows;
}

std::vector<std::int64_t> read_indices(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::int64_t> indices;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] != '#') indices.push_back(std::stoll(line));
  }
  return indices;
}

// Byte offset of every line of a file.
std::vector<std::uint64_t> line_offsets(const std::string& path) {
  const std::string bytes = read_file(path);
  std::vector<std::uint64_t> offsets;
  std::uint64_t start = 0;
  for (std::uint64_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] == '\n') {
      offsets.push_back(start);
      start = i + 1;
    }
  }
  if (start < bytes.size()) offsets.push_back(start);
  return offsets;
}

std::vector<std::string> split_lines(const std::string& bytes) {
  std::vector<std::string> lines;
  std::istringstream in(bytes);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

struct ParityCase {
  std::string name, raw, target, field;
};

void check_parity(const ParityCase& c, int ranks) {
  const std::string out = make_temp_dir("parity-" + c.name);
  const auto golden = read_golden(kData + "/golden_" + c.name + ".tsv");
  const auto topk = read_indices(kData + "/golden_" + c.name + "_topk.txt");
  const RunResult run = run_skein(ranks, {"run", "dsir", "--out", out, "--dsir.raw=" + kData + "/" + c.raw,
                                          "--dsir.target=" + kData + "/" + c.target, "--dsir.text_field=" + c.field,
                                          "--dsir.hash=sha256", "--dsir.save_weights=true", "--dsir.top_k=true",
                                          "--dsir.num_select=" + std::to_string(topk.size())});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const std::string h5 = out + "/dsir.h5";
  const auto weights = skein::io::read_dataset<double>(h5, "/raw/log_weight");
  const auto tokens = skein::io::read_dataset<std::int64_t>(h5, "/raw/num_tokens");
  EXPECT_EQ(skein::io::read_string_attribute(h5, "/model", "hash"), "sha256");
  EXPECT_EQ(skein::io::read_double_attribute(h5, "/model", "bucket_version"), 1);
  ASSERT_EQ(weights.size(), golden.size());
  for (std::size_t i = 0; i < golden.size(); ++i) {
    EXPECT_NEAR(weights[i], golden[i].log_weight, 1e-6 * std::fabs(golden[i].log_weight)) << c.name << " doc " << i;
    EXPECT_EQ(tokens[i], golden[i].length) << c.name << " doc " << i;
  }
  // The deterministic top-k picks exactly the reference's documents.
  const auto offsets = line_offsets(kData + "/" + c.raw);
  std::set<std::uint64_t> expected;
  for (const auto index : topk) expected.insert(offsets.at(static_cast<std::size_t>(index)));
  const auto selected = skein::io::read_dataset<std::uint64_t>(h5, "/selected/byte_offset");
  EXPECT_EQ(std::set<std::uint64_t>(selected.begin(), selected.end()), expected);
  EXPECT_TRUE(std::is_sorted(selected.begin(), selected.end()));
}

}  // namespace

class DsirRanks : public ::testing::TestWithParam<int> {};

TEST_P(DsirRanks, LogWeightsMatchReferencePackageOnItsToyData) {
  check_parity({"toy", "toy_pile_data.jsonl", "toy_target_data_2.jsonl", "contents"}, GetParam());
}

TEST_P(DsirRanks, LogWeightsMatchReferencePackageOnBrown) {
  check_parity({"brown", "brown_raw.jsonl", "brown_target.jsonl", "text"}, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Ranks, DsirRanks, ::testing::Values(1, 2, 3));

// Brown mix: raw = 1200 press documents + 100 'government' documents; target = 50 other government ones.
class BrownMix : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = make_temp_dir("brown-mix");
    const auto government = split_lines(read_file(kData + "/brown_target.jsonl"));
    std::string raw = read_file(kData + "/brown_raw.jsonl"), target;
    for (std::size_t i = 0; i < government.size(); ++i) {
      (i % 3 == 0 ? target : raw) += government[i] + "\n";
    }
    write_file(dir_ + "/raw.jsonl", raw);
    write_file(dir_ + "/target.jsonl", target);
  }
  static std::vector<std::string> args(const std::string& out) {
    return {"run", "dsir", "--out", out, "--dsir.raw=" + dir_ + "/raw.jsonl", "--dsir.target=" + dir_ + "/target.jsonl",
            "--dsir.num_select=100", "--dsir.seed=11"};
  }
  static std::string dir_;
};
std::string BrownMix::dir_;

TEST_F(BrownMix, SelectionIsIdenticalAtOneTwoAndThreeRanks) {
  std::string reference_jsonl;
  std::vector<std::uint64_t> reference_offsets;
  for (const int ranks : {1, 2, 3}) {
    const std::string out = make_temp_dir("brown-ranks");
    const RunResult run = run_skein(ranks, args(out));
    ASSERT_EQ(run.exit_code, 0) << run.output;
    const std::string jsonl = read_file(out + "/selected.jsonl");
    const auto offsets = skein::io::read_dataset<std::uint64_t>(out + "/dsir.h5", "/selected/byte_offset");
    EXPECT_EQ(split_lines(jsonl).size(), 100u);
    EXPECT_EQ(skein::io::read_double_attribute(out + "/dsir.h5", "/", "ranks"), ranks);
    // The default hash, xxh3, with its version-2 buckets (token hashes combined; version 1 hashed the text).
    EXPECT_EQ(skein::io::read_string_attribute(out + "/dsir.h5", "/model", "hash"), "xxh3");
    EXPECT_EQ(skein::io::read_double_attribute(out + "/dsir.h5", "/model", "bucket_version"), 2);
    EXPECT_EQ(skein::io::read_double_attribute(out + "/dsir.h5", "/model", "num_buckets"), 10000);
    if (ranks == 1) {
      reference_jsonl = jsonl;
      reference_offsets = offsets;
    } else {
      EXPECT_EQ(jsonl, reference_jsonl) << "selected.jsonl differs at " << ranks << " ranks";
      EXPECT_EQ(offsets, reference_offsets);
    }
  }
}

TEST_F(BrownMix, SelectionFindsTheTargetGenreFarAboveRandom) {
  const std::string out = make_temp_dir("brown-genre");
  const RunResult run = run_skein(2, args(out));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const auto lines = split_lines(read_file(out + "/selected.jsonl"));
  std::size_t government = 0;
  for (const auto& line : lines) government += line.find("\"genre\": \"government\"") != std::string::npos;
  const double share = static_cast<double>(government) / static_cast<double>(lines.size());
  const double random_share = 100.0 / 1300.0;
  EXPECT_GT(share, 5 * random_share) << government << " of " << lines.size();
  const std::string h5 = out + "/dsir.h5";
  const double kl_reduction = skein::io::read_double_attribute(h5, "/metrics", "kl_reduction");
  const double kl_reduction_random = skein::io::read_double_attribute(h5, "/metrics", "kl_reduction_random");
  EXPECT_GT(kl_reduction, 0);
  EXPECT_GT(kl_reduction, kl_reduction_random + 0.1);
  EXPECT_GT(skein::io::read_double_attribute(h5, "/metrics", "kl_gain_over_random"), 0.1);
  // Each selected line is an original raw line, byte for byte.
  const std::string raw = read_file(dir_ + "/raw.jsonl");
  for (const auto& line : lines) EXPECT_NE(raw.find(line + "\n"), std::string::npos);
}

TEST_F(BrownMix, CompressedInputGivesTheSameSelection) {
  const std::string raw = read_file(dir_ + "/raw.jsonl");
  std::string compressed(ZSTD_compressBound(raw.size()), '\0');
  compressed.resize(ZSTD_compress(compressed.data(), compressed.size(), raw.data(), raw.size(), 3));
  write_file(dir_ + "/raw.jsonl.zst", compressed);
  const std::string plain_out = make_temp_dir("brown-plain"), zst_out = make_temp_dir("brown-zst");
  auto zst_args = args(zst_out);
  zst_args[4] = "--dsir.raw=" + dir_ + "/raw.jsonl.zst";
  const RunResult plain = run_skein(2, args(plain_out));
  const RunResult zst = run_skein(2, zst_args);
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  ASSERT_EQ(zst.exit_code, 0) << zst.output;
  EXPECT_EQ(read_file(plain_out + "/selected.jsonl"), read_file(zst_out + "/selected.jsonl"));
}

// --- Bad input: message, exit code, no rank left running, nothing half-written -------------------------------

struct BadInput {
  std::string name;
  std::string raw_bytes;           // the raw corpus (after a good document)
  std::vector<std::string> extra;  // extra arguments
  int exit_code;
  std::string message;  // must appear in the output
};

class DsirBadInput : public ::testing::TestWithParam<BadInput> {};

TEST_P(DsirBadInput, ClearMessageAndExitCodeAtThreeRanks) {
  const BadInput& bad = GetParam();
  const std::string dir = make_temp_dir("bad-" + bad.name);
  std::string good;
  for (int i = 0; i < 40; ++i) {
    good += "{\"text\": \"document " + std::to_string(i) + " is about apples and pears and plums\"}\n";
  }
  write_file(dir + "/target.jsonl", good);
  write_file(dir + "/raw.jsonl", good + bad.raw_bytes + good);
  write_file(dir + "/empty.jsonl", "");
  std::vector<std::string> args = {"run",
                                   "dsir",
                                   "--out",
                                   dir + "/out",
                                   "--dsir.raw=" + dir + "/raw.jsonl",
                                   "--dsir.target=" + dir + "/target.jsonl",
                                   "--dsir.num_select=5",
                                   "--dsir.min_tokens=3"};
  for (const auto& a : bad.extra) {
    if (a.rfind("--dsir.raw=", 0) == 0) {
      args[4] = a.substr(0, 11) + dir + "/" + a.substr(11);
    } else if (a.rfind("--dsir.num_select=", 0) == 0) {
      args[6] = a;
    } else {
      args.push_back(a);
    }
  }
  const RunResult run = run_skein(3, args, 60);
  EXPECT_EQ(run.exit_code, bad.exit_code) << run.output;
  EXPECT_NE(run.output.find(bad.message), std::string::npos) << "expected '" << bad.message << "' in:\n" << run.output;
  EXPECT_LT(run.seconds, 50) << "ranks were left running";
  EXPECT_FALSE(file_exists(dir + "/out/dsir.h5"));
  EXPECT_FALSE(file_exists(dir + "/out/dsir.h5.tmp"));
  EXPECT_FALSE(file_exists(dir + "/out/selected.jsonl.tmp"));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, DsirBadInput,
    ::testing::Values(
        BadInput{"malformed_json", "{\"text\": \"unterminated\n", {}, 65, "raw.jsonl:41: not valid JSON"},
        BadInput{"missing_field", "{\"body\": \"no text here\"}\n", {}, 65, "raw.jsonl:41: no field 'text'"},
        BadInput{"not_a_string", "{\"text\": 17}\n", {}, 65, "raw.jsonl:41: field 'text' is not a string"},
        BadInput{"empty_file", "", {"--dsir.raw=empty.jsonl"}, 65, "empty.jsonl"},
        BadInput{"missing_file", "", {"--dsir.raw=nope.jsonl"}, 65, "nope.jsonl"},
        BadInput{"unknown_key", "", {"--dsir.num_bukets=5"}, 2, "did you mean '--dsir.num_buckets'"},
        BadInput{"bad_value", "", {"--dsir.ngrams=two"}, 2, "dsir.ngrams"},
        BadInput{"bad_choice", "", {"--dsir.hash=md5"}, 2, "xxh3|sha256"},
        BadInput{"too_many", "", {"--dsir.num_select=1000"}, 2, "only 80 of 80 raw documents are eligible"}),
    [](const ::testing::TestParamInfo<BadInput>& info) { return info.param.name; });

TEST(DsirInput, BadLinesAreSkippedAndCountedWhenAsked) {
  const std::string dir = make_temp_dir("skip");
  std::string good;
  for (int i = 0; i < 30; ++i) good += "{\"text\": \"apples and pears number " + std::to_string(i) + "\"}\n";
  write_file(dir + "/target.jsonl", good);
  write_file(dir + "/raw.jsonl", good + "{broken\n{\"other\": 1}\n" + "{\"text\": \"bad \xff\xfe bytes here ok\"}\n");
  const RunResult run = run_skein(2, {"run", "dsir", "--out", dir, "--dsir.raw=" + dir + "/raw.jsonl",
                                      "--dsir.target=" + dir + "/target.jsonl", "--dsir.num_select=3",
                                      "--dsir.min_tokens=1", "--dsir.on_bad_line=skip"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const std::string h5 = dir + "/dsir.h5";
  EXPECT_EQ(skein::io::read_double_attribute(h5, "/metrics", "docs_read"), 33);
  EXPECT_EQ(skein::io::read_double_attribute(h5, "/metrics", "docs_skipped_bad_json"), 1);
  EXPECT_EQ(skein::io::read_double_attribute(h5, "/metrics", "docs_skipped_missing_field"), 1);
  EXPECT_EQ(skein::io::read_double_attribute(h5, "/metrics", "docs_invalid_utf8"), 1);
  EXPECT_EQ(skein::io::read_double_attribute(h5, "/metrics", "docs_scored"), 31);
}

TEST(SkeinCli, HelpJobsAndInspect) {
  const RunResult help = run_skein(0, {"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("skein run JOB"), std::string::npos) << help.output;
  const RunResult jobs = run_skein(0, {"jobs"});
  EXPECT_EQ(jobs.exit_code, 0);
  EXPECT_NE(jobs.output.find("dsir.num_buckets  = 10000"), std::string::npos) << jobs.output;
  const RunResult unknown = run_skein(0, {"rnu"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.output.find("did you mean 'run'"), std::string::npos) << unknown.output;
  const RunResult no_job = run_skein(2, {"run", "dsri"});
  EXPECT_EQ(no_job.exit_code, 2);
  EXPECT_NE(no_job.output.find("did you mean 'dsir'"), std::string::npos) << no_job.output;
  const RunResult missing = run_skein(0, {"inspect", "/nonexistent/file.h5"});
  EXPECT_EQ(missing.exit_code, 65);
  EXPECT_NE(missing.output.find("/nonexistent/file.h5"), std::string::npos) << missing.output;

  const std::string dir = make_temp_dir("inspect");
  const RunResult run = run_skein(2, {"run", "dsir", "--out", dir, "--dsir.raw=" + kData + "/brown_raw.jsonl",
                                      "--dsir.target=" + kData + "/brown_target.jsonl", "--dsir.num_select=10"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const RunResult inspect = run_skein(0, {"inspect", dir + "/dsir.h5"});
  EXPECT_EQ(inspect.exit_code, 0) << inspect.output;
  for (const char* expected : {"dsir", "complete", "/selected/byte_offset", "/model/raw_log_prob", "kl_reduction",
                               "num_select = 10"}) {
    EXPECT_NE(inspect.output.find(expected), std::string::npos) << expected << " not in:\n" << inspect.output;
  }
}
