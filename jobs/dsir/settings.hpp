// The dsir job's config keys and their parsed, validated values.
#pragma once

#include "engine/config.hpp"
#include "engine/job.hpp"
#include "jobs/dsir/ngram_hasher.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace skein::dsir {

// What a run does (dsir.stage): the whole job, or one stage of a staged run (fit; score shards; merge).
enum class Stage { all, fit, score, merge };

struct Settings {
  Stage stage = Stage::all;
  std::string model_path;         // dsir.model: a fitted model to load instead of fitting ("" none)
  std::uint32_t shard_index = 0;  // stage=score: this task scores shard shard_index of shard_count
  std::uint32_t shard_count = 1;
  std::vector<std::string> shard_patterns;  // stage=merge: the score stage's outputs
  std::vector<std::string> target_patterns;
  std::vector<std::string> raw_patterns;
  std::string text_field;
  int ngrams = 2;
  std::uint32_t num_buckets = 10000;
  bool lowercase = true;
  HashKind hash = HashKind::xxh3;
  std::int64_t min_tokens = 100;
  std::uint64_t num_select = 0;
  bool top_k = false;
  std::uint64_t seed = 0;
  bool skip_bad_lines = false;
  bool save_weights = false;
  double raw_fit = 1.0;                    // fraction of raw documents (sampled by id) fitting the raw model
  std::uint64_t piece_bytes = 8ull << 20;  // the unit of work and of checkpoints
  std::uint64_t feature_cache_bytes = 2ull << 30;  // per rank; n-grams kept from the raw fit for scoring
  std::string index_cache_dir;  // dsir.index_cache resolved: where .zst indexes are kept ("" none)
};

engine::JobSpec job_spec();
// Throws UsageError naming the key for any bad value.
Settings parse_settings(const engine::Config& config);

}  // namespace skein::dsir
