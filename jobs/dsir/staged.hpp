// Staged dsir runs: the fitted model saved in (and loaded from) dsir.h5, and the score stage's shard outputs
// that the merge stage turns into exactly the selection one run would have made.
#pragma once

#include "comm/communicator.hpp"
#include "comm/topk.hpp"
#include "io/hdf5.hpp"
#include "io/input_files.hpp"
#include "jobs/dsir/settings.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace skein::dsir {

// A fitted model as dsir.h5 keeps it under /model: the bucket counts it was computed from (scoring recomputes
// the log probabilities from them, so a loaded model scores bit for bit like the run that fitted it) and what
// the fit counted, so that a staged run reports the same metrics as one run.
struct Model {
  std::vector<std::uint64_t> target_counts, raw_counts;
  std::vector<std::uint64_t> target_tally;  // Tally::to_vector() of the target pass
  std::uint64_t raw_fit_docs = 0;
  std::vector<std::string> target_files;  // the target corpus it was fitted on
  std::string fit_run_id;                 // run_id of the run that fitted it: a model's identity
};

// Writes /model: counts, log(p + 1e-8) per bucket, and the attributes that define its buckets.
void write_model(io::H5Writer& h5, const Settings& settings, const Model& model,
                 const std::vector<double>& target_log_prob, const std::vector<double>& raw_log_prob);

// Collective (every rank reads the small file). `key` names the config key that gave `path`. Refuses, with
// exit 2 and a message naming the file and the key, a model whose buckets differ from this run's settings
// (hash, bucket_version, ngrams, num_buckets, lowercase); exit 65 for a file that holds no dsir model.
Model read_model(const comm::Communicator& comm, const std::string& path, const std::string& key,
                 const Settings& settings);

// The settings every shard of a staged run and its merge must share (they decide scores, eligibility and the
// Gumbel keys), as (key, value) pairs.
std::vector<std::pair<std::string, std::string>> selection_settings(const engine::Config& config);

// What a score-stage output says about itself (its /shard group and /inputs), without its candidates.
struct ShardInfo {
  std::string path;
  std::uint32_t index = 0, count = 0;
  std::uint64_t piece_begin = 0, piece_end = 0, piece_count = 0;
  std::string fit_run_id;
  std::string settings;  // selection_settings as "key=value" lines
  std::vector<std::string> raw_files;
  std::vector<std::uint64_t> raw_sizes;
  std::vector<std::uint64_t> tally;  // Tally::to_vector() of its score pass
  bool has_weights = false;
};

// The score stage's output: writes /shard (its candidates and what they came from) and /inputs/raw_sizes.
struct ShardOutput {
  ShardInfo info;
  std::vector<comm::Candidate> selection;  // this shard's best num_select (key, id, log weight)
  std::vector<comm::Candidate> baseline;   // this shard's best num_select for the random baseline
};
void write_shard(io::H5Writer& h5, const ShardOutput& shard);

// Serial reads of one shard output; DataError naming the file when it is not one.
ShardInfo read_shard_info(const std::string& path);
std::vector<comm::Candidate> read_shard_candidates(const std::string& path, const std::string& which);
// A shard's /raw/* (written with save_weights = true): every document it scored, in document order.
struct ShardWeights {
  std::vector<std::uint32_t> file_index;
  std::vector<std::uint64_t> byte_offset;
  std::vector<double> log_weight;
  std::vector<std::int64_t> num_tokens;
};
ShardWeights read_shard_weights(const std::string& path);

// Collective: every rank reads every shard's info (small) and the set is checked against this merge run: one
// output per shard index 0..N-1 (a missing or duplicated index is named), one model, the same selection
// settings and raw files (paths and sizes), and pieces that tile the raw corpus. Returns them by index.
std::vector<ShardInfo> read_shard_set(const comm::Communicator& comm, const std::vector<std::string>& paths,
                                      const engine::Config& config,
                                      const std::vector<io::InputFile>& raw_files, std::uint64_t piece_count,
                                      bool need_weights);

}  // namespace skein::dsir
