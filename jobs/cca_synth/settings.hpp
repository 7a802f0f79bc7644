// The cca-synth job's config keys and their parsed, validated values (with the planted signal weights).
#pragma once

#include "engine/config.hpp"
#include "engine/job.hpp"
#include "jobs/cca_synth/model.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace skein::cca_synth {

struct Settings {
  std::uint64_t samples = 0, snps = 0, unmatched = 0;
  std::int64_t y_features = 0;
  std::vector<double> correlations;  // the planted population canonical correlations, one per component
  bool shuffle_y = true;
  std::string prefix;
  ModelParameters model;
  // Derived: R2_c of each latent from the genotypes and the Y weights a_c = rho_c / sqrt(R2_c).
  std::vector<double> genetic_r2, signal_weights;
};

engine::JobSpec job_spec();
// Throws UsageError naming the key for any bad value (also when the genotypes cannot carry a requested
// correlation). Never communicates; every rank computes the same.
Settings parse_settings(const engine::Config& config);

}  // namespace skein::cca_synth
