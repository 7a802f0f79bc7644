#include "jobs/cca_synth/settings.hpp"

#include "engine/error.hpp"

#include <cmath>
#include <cstdio>

namespace skein::cca_synth {

using engine::UsageError;

namespace {

std::string key_name(const std::string& key) {
  return "config key 'cca-synth." + key + "'";
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4g", value);
  return text;
}

double in_range(const engine::Config& config, const std::string& key, double low, double high, bool low_open,
                bool high_open) {
  const double value = config.get_double(key);
  const bool ok = (low_open ? value > low : value >= low) && (high_open ? value < high : value <= high);
  if (!ok) {
    throw UsageError(key_name(key) + ": " + config.get(key) + " is not in " + (low_open ? "(" : "[") +
                     number(low) + ", " + number(high) + (high_open ? ")" : "]"));
  }
  return value;
}

}  // namespace

engine::JobSpec job_spec() {
  return {
      "cca-synth",
      "planted-signal genotypes and imaging-like features for the cca job: PLINK NAME.bed/.bim/.fam and "
      "NAME_y.h5 (/Y, /sample_id, /feature_names), written in parallel, the same files at any rank count",
      {
          {"samples", "1000", "individuals in both the .fam and Y (n)"},
          {"snps", "10000", "SNPs (p)"},
          {"y_features", "20", "Y columns (q), at least `components`"},
          {"components", "3", "planted components (k)"},
          {"correlations", "0.9,0.8,0.7",
           "the population canonical correlations planted, one per component, each in (0, 1)"},
          {"signal_fraction", "0.1", "share of SNPs loading on a latent (each on one, chosen at random)"},
          {"effect", "1",
           "loading size in (0, 1]: a signal SNP's allele probability moves by effect * min(f, 1-f) / 6 "
           "per unit of its latent"},
          {"maf_min", "0.05", "smallest minor-allele frequency (MAF ~ U(maf_min, maf_max))"},
          {"maf_max", "0.5", "largest minor-allele frequency, at most 0.5"},
          {"missing_rate", "0.01", "share of genotype calls written as missing (01), in [0, 0.5]"},
          {"shuffle_y", "true", "Y rows in a random order (matched to the .fam by id), else by individual"},
          {"unmatched", "0", "individuals only in the .fam, and as many only in Y, to exercise matching"},
          {"seed", "1", "random seed: every value is keyed by (seed, stream, global index)"},
          {"prefix", "synth", "output name NAME: OUT/NAME.bed, .bim, .fam and OUT/NAME_y.h5"},
      },
      {"synth.bed", "synth.bim", "synth.fam", "synth_y.h5"}};
}

Settings parse_settings(const engine::Config& config) {
  Settings s;
  constexpr std::int64_t kMaxCount = std::int64_t{1} << 40;
  s.samples = static_cast<std::uint64_t>(config.get_int("samples", 2, kMaxCount));
  s.snps = static_cast<std::uint64_t>(config.get_int("snps", 1, kMaxCount));
  s.unmatched = static_cast<std::uint64_t>(config.get_int("unmatched", 0, kMaxCount));
  s.model.components = config.get_int("components", 1, 1000);
  s.y_features = config.get_int("y_features", 1, 100000);
  if (s.y_features < s.model.components) {
    throw UsageError(key_name("y_features") + ": " + config.get("y_features") + " is fewer than the " +
                     config.get("components") + " components (cca-synth.components)");
  }
  s.correlations = config.get_double_list("correlations");
  if (static_cast<std::int64_t>(s.correlations.size()) != s.model.components) {
    throw UsageError(key_name("correlations") + ": " + std::to_string(s.correlations.size()) +
                     " values for " + config.get("components") + " components (cca-synth.components)");
  }
  for (std::size_t c = 0; c < s.correlations.size(); ++c) {
    if (!(s.correlations[c] > 0 && s.correlations[c] < 1)) {
      throw UsageError(key_name("correlations") + ": value " + std::to_string(c + 1) + " (" +
                       number(s.correlations[c]) + ") is not in (0, 1)");
    }
  }
  s.model.signal_fraction = in_range(config, "signal_fraction", 0, 1, true, false);
  s.model.effect = in_range(config, "effect", 0, 1, true, false);
  s.model.maf_min = in_range(config, "maf_min", 0, 0.5, true, false);
  s.model.maf_max = in_range(config, "maf_max", 0, 0.5, true, false);
  if (s.model.maf_max < s.model.maf_min) {
    throw UsageError(key_name("maf_max") + ": " + config.get("maf_max") + " is below cca-synth.maf_min (" +
                     config.get("maf_min") + ")");
  }
  s.model.missing_rate = in_range(config, "missing_rate", 0, 0.5, false, false);
  s.shuffle_y = config.get_bool("shuffle_y");
  s.model.seed = static_cast<std::uint64_t>(config.get_int("seed", 0, INT64_MAX));
  s.prefix = config.get("prefix");
  if (s.prefix.empty() || s.prefix.find('/') != std::string::npos || s.prefix == "." || s.prefix == "..") {
    throw UsageError(key_name("prefix") + ": '" + s.prefix +
                     "' must be a plain file name (no '/'): the files go "
                     "into --out");
  }

  s.genetic_r2 = genetic_r2(s.model, s.snps);
  for (std::size_t c = 0; c < s.correlations.size(); ++c) {
    const double most = std::sqrt(s.genetic_r2[c]);
    if (s.correlations[c] >= most) {
      throw UsageError(key_name("correlations") + ": component " + std::to_string(c + 1) + " asks for " +
                       number(s.correlations[c]) + " but its " + "SNPs explain only R2 = " +
                       number(s.genetic_r2[c]) + " of its latent, so at most " + number(most) +
                       " can be planted; raise cca-synth.snps, signal_fraction or effect, or lower the "
                       "correlation");
    }
    s.signal_weights.push_back(s.correlations[c] / most);
  }
  return s;
}

}  // namespace skein::cca_synth
