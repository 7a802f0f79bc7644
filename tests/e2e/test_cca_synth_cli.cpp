// cca-synth end to end: the files decode back (io/plink's parsers and decoder) to exactly the genotypes and
// Y values of the model's formulas (jobs/cca_synth/model.hpp), ids match as the roster says, the files are
// byte-identical at 1, 2 and 3 ranks, and bad config values are clear errors (exit 2).
#include "engine/config.hpp"
#include "io/h5_reader.hpp"
#include "io/plink.hpp"
#include "jobs/cca_synth/model.hpp"
#include "jobs/cca_synth/settings.hpp"
#include "tests/e2e/cli_runner.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

using namespace skein::test;
namespace synth = skein::cca_synth;
namespace io = skein::io;

namespace {

// Small, with everything switched on: N = 53 + 3 .fam lines (not a multiple of 4), missing calls,
// unmatched ids both ways, shuffled Y.
const std::vector<std::pair<std::string, std::string>> kKeys = {
    {"samples", "53"},           {"snps", "41"},
    {"y_features", "5"},         {"components", "2"},
    {"correlations", "0.5,0.3"}, {"signal_fraction", "1"},
    {"missing_rate", "0.1"},     {"unmatched", "3"},
    {"shuffle_y", "true"},       {"seed", "7"},
    {"prefix", "toy"},
};

RunResult run_synth(int ranks, const std::string& out,
                    const std::vector<std::pair<std::string, std::string>>& keys) {
  std::vector<std::string> args = {"run", "cca-synth", "--out", out};
  for (const auto& [key, value] : keys) args.push_back("--cca-synth." + key + "=" + value);
  return run_skein(ranks, args, 120);
}

synth::Settings settings_of(const std::vector<std::pair<std::string, std::string>>& keys) {
  const auto config = skein::engine::Config::resolve("cca-synth", synth::job_spec().keys, "", "", keys);
  return synth::parse_settings(config);
}

std::uint64_t individual_of(const std::string& id) {
  EXPECT_EQ(id.rfind("id", 0), 0u) << id;
  return std::stoull(id.substr(2));
}

TEST(CcaSynthCli, FilesDecodeBackToTheModel) {
  const std::string out = make_temp_dir("cca-synth-model");
  const auto result = run_synth(2, out, kKeys);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const synth::Settings s = settings_of(kKeys);
  const synth::Roster roster = synth::make_roster(7, 53, 3, true);

  std::vector<std::string> family_ids, sample_ids;
  io::parse_fam(out + "/toy.fam", read_file(out + "/toy.fam"), family_ids, sample_ids);
  const auto variants = io::parse_bim(out + "/toy.bim", read_file(out + "/toy.bim"));
  ASSERT_EQ(sample_ids.size(), 56u);
  ASSERT_EQ(variants.size(), 41u);
  for (std::size_t i = 0; i < sample_ids.size(); ++i)
    EXPECT_EQ(sample_ids[i], synth::sample_id(roster.fam[i]));
  EXPECT_EQ(variants[5].id, "snp5");
  EXPECT_EQ(variants[5].a1, "A");
  EXPECT_EQ(variants[5].a2, "G");

  const std::string bed = read_file(out + "/toy.bed");
  const std::uint64_t record = io::plink::record_bytes(56);
  ASSERT_EQ(bed.size(), io::plink::bed_file_bytes(56, 41));
  EXPECT_EQ(bed.substr(0, 3), std::string("\x6c\x1b\x01"));
  std::int64_t missing = 0, signal = 0;
  for (std::uint64_t j = 0; j < 41; ++j) {
    const auto* rec = reinterpret_cast<const std::uint8_t*>(bed.data() + 3 + j * record);
    const synth::SnpModel snp = synth::snp_model(s.model, j);
    signal += snp.component >= 0;
    for (std::uint64_t i = 0; i < 56; ++i) {
      const double z = snp.component >= 0 ? synth::latent(s.model, roster.fam[i], snp.component) : 0.0;
      const unsigned expected = synth::genotype_code(s.model, snp, j, 56, i, z);
      const unsigned code = io::plink::code_at(rec, i);
      EXPECT_EQ(code, expected) << "SNP " << j << " sample " << i;
      missing += code == io::plink::kMissing;
    }
    // The padding of the last byte (56 = 14 * 4: none here) and the counts agree with the decoded calls.
    const auto counts = io::count_record(rec, 56);
    std::int64_t observed = 0, a2 = 0;
    for (std::uint64_t i = 0; i < 56; ++i) {
      const unsigned code = io::plink::code_at(rec, i);
      if (code == io::plink::kMissing) continue;
      ++observed;
      a2 += io::plink::a2_dosage(code);
    }
    EXPECT_EQ(counts.observed, observed);
    EXPECT_EQ(counts.a2_alleles, a2);
  }
  EXPECT_EQ(signal, 41);  // signal_fraction = 1
  EXPECT_GT(missing, 56 * 41 * 0.05);
  EXPECT_LT(missing, 56 * 41 * 0.15);

  const std::string h5 = out + "/toy_y.h5";
  const auto ids = io::read_strings(h5, "/sample_id");
  ASSERT_EQ(ids.size(), 56u);
  std::set<std::string> fam_set(sample_ids.begin(), sample_ids.end());
  int matched = 0;
  bool in_order = true;
  for (std::size_t r = 0; r < ids.size(); ++r) {
    EXPECT_EQ(ids[r], synth::sample_id(roster.y[r]));
    matched += fam_set.count(ids[r]) > 0;
    if (r > 0 && individual_of(ids[r]) < individual_of(ids[r - 1])) in_order = false;
  }
  EXPECT_EQ(matched, 53);
  EXPECT_FALSE(in_order);  // shuffle_y
  EXPECT_EQ(io::read_strings(h5, "/feature_names"), (std::vector<std::string>{"y0", "y1", "y2", "y3", "y4"}));
  EXPECT_EQ(io::dataset_shape(h5, "/Y"), (std::vector<std::uint64_t>{56, 5}));
  const auto y = io::read_dataset<float>(h5, "/Y");
  for (std::size_t r = 0; r < ids.size(); ++r) {
    for (std::int64_t f = 0; f < 5; ++f) {
      double expected = 0;
      for (std::int64_t c = 0; c < 5; ++c)
        expected +=
            synth::mixing(s.model, 5, f, c) * synth::channel(s.model, s.signal_weights, 5, roster.y[r], c);
      EXPECT_FLOAT_EQ(y[r * 5 + static_cast<std::size_t>(f)], static_cast<float>(expected))
          << "Y(" << r << ", " << f << ")";
    }
  }
  EXPECT_EQ(io::read_dataset<double>(h5, "/true_correlations"), (std::vector<double>{0.5, 0.3}));
  const auto weights = io::read_dataset<double>(h5, "/signal_weights");
  const auto r2 = io::read_dataset<double>(h5, "/genetic_r2");
  ASSERT_EQ(weights.size(), 2u);
  for (std::size_t c = 0; c < 2; ++c) EXPECT_NEAR(weights[c] * std::sqrt(r2[c]), c == 0 ? 0.5 : 0.3, 1e-12);
  EXPECT_EQ(io::read_string_attribute(h5, "/", "job"), "cca-synth");
}

TEST(CcaSynthCli, SameFilesAtOneTwoAndThreeRanks) {
  std::vector<std::string> outs;
  for (int ranks = 1; ranks <= 3; ++ranks) {
    outs.push_back(make_temp_dir("cca-synth-ranks" + std::to_string(ranks)));
    const auto result = run_synth(ranks, outs.back(), kKeys);
    ASSERT_EQ(result.exit_code, 0) << ranks << " ranks: " << result.output;
  }
  for (int i = 1; i < 3; ++i) {
    for (const char* name : {"/toy.bed", "/toy.bim", "/toy.fam"}) {
      EXPECT_EQ(read_file(outs[i] + name), read_file(outs[0] + name)) << name << " at " << i + 1 << " ranks";
    }
    const std::string a = outs[0] + "/toy_y.h5", b = outs[i] + "/toy_y.h5";
    EXPECT_EQ(io::read_dataset<float>(b, "/Y"), io::read_dataset<float>(a, "/Y"));
    EXPECT_EQ(io::read_strings(b, "/sample_id"), io::read_strings(a, "/sample_id"));
    EXPECT_EQ(io::read_dataset<double>(b, "/mixing"), io::read_dataset<double>(a, "/mixing"));
    EXPECT_EQ(io::read_int64_attribute(b, "/", "ranks"), i + 1);
  }
}

TEST(CcaSynthCli, DefaultsRunAndAreListed) {
  const std::string out = make_temp_dir("cca-synth-defaults");
  const auto result = run_skein(0, {"run", "cca-synth", "--out", out});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(read_file(out + "/synth.bed").size(), io::plink::bed_file_bytes(1000, 10000));
  EXPECT_EQ(io::dataset_shape(out + "/synth_y.h5", "/Y"), (std::vector<std::uint64_t>{1000, 20}));
  const auto jobs = run_skein(0, {"jobs"});
  EXPECT_NE(jobs.output.find("cca-synth.correlations"), std::string::npos) << jobs.output;
}

TEST(CcaSynthCli, BadConfigValuesAreClearErrors) {
  const std::string out = make_temp_dir("cca-synth-bad");
  const std::vector<std::pair<std::vector<std::pair<std::string, std::string>>, std::string>> cases = {
      {{{"components", "3"}, {"correlations", "0.5,0.4"}},
       "config key 'cca-synth.correlations': 2 values for 3 components"},
      {{{"correlations", "0.9,1.2,0.3"}},
       "config key 'cca-synth.correlations': value 2 (1.2) is not in (0, 1)"},
      {{{"snps", "50"}, {"correlations", "0.9,0.8,0.7"}},
       "config key 'cca-synth.correlations': component 1 asks for 0.9 but its SNPs explain only R2 ="},
      {{{"y_features", "2"}}, "config key 'cca-synth.y_features': 2 is fewer than the 3 components"},
      {{{"maf_max", "0.7"}}, "config key 'cca-synth.maf_max': 0.7 is not in (0, 0.5]"},
      {{{"maf_min", "0.3"}, {"maf_max", "0.2"}},
       "config key 'cca-synth.maf_max': 0.2 is below cca-synth.maf_min"},
      {{{"missing_rate", "-0.1"}}, "config key 'cca-synth.missing_rate': -0.1 is not in [0, 0.5]"},
      {{{"prefix", "a/b"}}, "config key 'cca-synth.prefix': 'a/b' must be a plain file name"},
      {{{"samples", "1"}}, "cca-synth.samples"},
  };
  int ranks = 2;  // the first case under mpirun, the others with skein alone (faster, the same check)
  for (const auto& [keys, expected] : cases) {
    const auto result = run_synth(ranks, out, keys);
    ranks = 0;
    EXPECT_EQ(result.exit_code, 2) << result.output;
    EXPECT_NE(result.output.find(expected), std::string::npos) << "expected '" << expected << "' in:\n"
                                                               << result.output;
  }
}

}  // namespace
