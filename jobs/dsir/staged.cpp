#include "jobs/dsir/staged.hpp"

#include "engine/error.hpp"
#include "io/h5_reader.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

namespace skein::dsir {

using engine::DataError;
using engine::UsageError;

void write_model(io::H5Writer& h5, const Settings& settings, const Model& model,
                 const std::vector<double>& target_log_prob, const std::vector<double>& raw_log_prob) {
  h5.write_replicated("/model/target_log_prob", target_log_prob);
  h5.write_replicated("/model/raw_log_prob", raw_log_prob);
  h5.write_replicated("/model/target_counts", model.target_counts);
  h5.write_replicated("/model/raw_counts", model.raw_counts);
  h5.write_replicated("/model/target_tally", model.target_tally);
  h5.set_attribute("/model", "description",
                   "log(p + 1e-8) per hash bucket; log weight = sum over a document's "
                   "n-grams of target_log_prob - raw_log_prob");
  // What defines the buckets: a model is only meaningful with the same hash, version, ngrams, size and case.
  h5.set_attribute("/model", "hash", std::string(to_string(settings.hash)));
  h5.set_attribute("/model", "bucket_version", static_cast<std::int64_t>(bucket_version(settings.hash)));
  h5.set_attribute("/model", "ngrams", static_cast<std::int64_t>(settings.ngrams));
  h5.set_attribute("/model", "num_buckets", static_cast<std::int64_t>(settings.num_buckets));
  h5.set_attribute("/model", "lowercase", static_cast<std::int64_t>(settings.lowercase ? 1 : 0));
  h5.set_attribute("/model", "raw_fit_docs", static_cast<std::int64_t>(model.raw_fit_docs));
  h5.set_attribute("/model", "fit_run_id", model.fit_run_id);
  h5.write_strings("/model/target_files", model.target_files);
}

namespace {

std::string as_text(std::int64_t value) {
  return std::to_string(value);
}

// UsageError when the model's bucket attribute `name` is not what this run computes.
void require_same(const std::string& path, const std::string& key, const std::string& name,
                  const std::string& model_value, const std::string& run_value,
                  const std::string& extra = "") {
  if (model_value == run_value) return;
  throw UsageError("dsir." + key + " = " + path + " was fitted with " + name + " = " + model_value +
                   ", but this run has dsir." + name + " = " + run_value + extra +
                   "; its buckets would not match: set dsir." + name + " = " + model_value +
                   ", or fit a model with these settings (dsir.stage = fit)");
}

}  // namespace

Model read_model(const comm::Communicator& comm, const std::string& path, const std::string& key,
                 const Settings& settings) {
  Model model;
  comm.agree([&] {
    const std::string where = "dsir." + key + " = " + path;
    std::error_code error;
    if (!std::filesystem::is_regular_file(path, error)) throw DataError(where + ": no such file");
    if (!io::h5_exists(path, "/model"))
      throw DataError(where + ": the file holds no /model (not a dsir output)");
    for (const char* name : {"/model/target_counts", "/model/raw_counts", "/model/target_tally"}) {
      if (!io::h5_exists(path, name)) {
        throw DataError(where + ": no " + std::string(name) +
                        " (written by a skein before staged runs, or not a dsir model); fit it again");
      }
    }
    const std::string hash = io::read_string_attribute(path, "/model", "hash");
    require_same(path, key, "hash", hash, to_string(settings.hash));
    require_same(path, key, "bucket_version",
                 as_text(io::read_int64_attribute(path, "/model", "bucket_version")),
                 as_text(bucket_version(settings.hash)),
                 " (this skein's " + hash + " buckets; dsir.bucket_version is not a setting)");
    require_same(path, key, "ngrams", as_text(io::read_int64_attribute(path, "/model", "ngrams")),
                 as_text(settings.ngrams));
    require_same(path, key, "num_buckets", as_text(io::read_int64_attribute(path, "/model", "num_buckets")),
                 as_text(settings.num_buckets));
    require_same(path, key, "lowercase",
                 io::read_int64_attribute(path, "/model", "lowercase") != 0 ? "true" : "false",
                 settings.lowercase ? "true" : "false");
    model.target_counts = io::read_dataset<std::uint64_t>(path, "/model/target_counts");
    model.raw_counts = io::read_dataset<std::uint64_t>(path, "/model/raw_counts");
    model.target_tally = io::read_dataset<std::uint64_t>(path, "/model/target_tally");
    if (model.target_counts.size() != settings.num_buckets ||
        model.raw_counts.size() != settings.num_buckets) {
      throw DataError(where + ": /model/target_counts and /model/raw_counts hold " +
                      std::to_string(model.target_counts.size()) + " and " +
                      std::to_string(model.raw_counts.size()) + " buckets, its num_buckets says " +
                      std::to_string(settings.num_buckets));
    }
    model.raw_fit_docs = static_cast<std::uint64_t>(io::read_int64_attribute(path, "/model", "raw_fit_docs"));
    model.fit_run_id = io::read_string_attribute(path, "/model", "fit_run_id");
    model.target_files = io::read_strings(path, "/model/target_files");
  });
  return model;
}

std::vector<std::pair<std::string, std::string>> selection_settings(const engine::Config& config) {
  std::vector<std::pair<std::string, std::string>> values;
  for (const char* key : {"num_select", "seed", "top_k", "min_tokens", "text_field", "on_bad_line", "ngrams",
                          "num_buckets", "hash", "lowercase", "save_weights", "piece_size"}) {
    values.emplace_back(key, config.get(key));
  }
  return values;
}

namespace {

std::string settings_text(const std::vector<std::pair<std::string, std::string>>& values) {
  std::string text;
  for (const auto& [key, value] : values) text += key + "=" + value + "\n";
  return text;
}

std::map<std::string, std::string> settings_map(const std::string& text) {
  std::map<std::string, std::string> values;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) values[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return values;
}

void write_candidates(io::H5Writer& h5, const std::string& which, const std::vector<comm::Candidate>& cs) {
  std::vector<double> keys, values;
  std::vector<std::uint64_t> ids;
  for (const auto& c : cs) {
    keys.push_back(c.key);
    ids.push_back(c.id);
    values.push_back(c.value);
  }
  h5.write_distributed("/shard/" + which + "_key", keys);
  h5.write_distributed("/shard/" + which + "_id", ids);
  h5.write_distributed("/shard/" + which + "_log_weight", values);
}

}  // namespace

void write_shard(io::H5Writer& h5, const ShardOutput& shard) {
  const ShardInfo& info = shard.info;
  h5.set_attribute("/shard", "index", static_cast<std::int64_t>(info.index));
  h5.set_attribute("/shard", "count", static_cast<std::int64_t>(info.count));
  h5.set_attribute("/shard", "piece_begin", static_cast<std::int64_t>(info.piece_begin));
  h5.set_attribute("/shard", "piece_end", static_cast<std::int64_t>(info.piece_end));
  h5.set_attribute("/shard", "piece_count", static_cast<std::int64_t>(info.piece_count));
  h5.set_attribute("/shard", "fit_run_id", info.fit_run_id);
  h5.set_attribute("/shard", "settings", info.settings);
  h5.set_attribute("/shard", "description",
                   "one score-stage shard: its best num_select candidates by Gumbel key (selection_*) and by "
                   "baseline key (baseline_*), any order; merge with dsir.stage = merge");
  h5.write_replicated("/shard/tally", info.tally);
  h5.write_replicated("/inputs/raw_sizes", info.raw_sizes);
  write_candidates(h5, "selection", shard.selection);
  write_candidates(h5, "baseline", shard.baseline);
}

ShardInfo read_shard_info(const std::string& path) {
  ShardInfo info;
  info.path = path;
  if (!io::h5_exists(path, "/shard", "index")) {
    throw DataError(path + ": not a dsir score-stage output (no /shard; written by dsir.stage = score)");
  }
  info.index = static_cast<std::uint32_t>(io::read_int64_attribute(path, "/shard", "index"));
  info.count = static_cast<std::uint32_t>(io::read_int64_attribute(path, "/shard", "count"));
  if (info.count == 0 || info.index >= info.count) {
    throw DataError(path + ": /shard says shard " + std::to_string(info.index) + " of " +
                    std::to_string(info.count));
  }
  info.piece_begin = static_cast<std::uint64_t>(io::read_int64_attribute(path, "/shard", "piece_begin"));
  info.piece_end = static_cast<std::uint64_t>(io::read_int64_attribute(path, "/shard", "piece_end"));
  info.piece_count = static_cast<std::uint64_t>(io::read_int64_attribute(path, "/shard", "piece_count"));
  info.fit_run_id = io::read_string_attribute(path, "/shard", "fit_run_id");
  info.settings = io::read_string_attribute(path, "/shard", "settings");
  info.tally = io::read_dataset<std::uint64_t>(path, "/shard/tally");
  info.raw_files = io::read_strings(path, "/inputs/raw_files");
  info.raw_sizes = io::read_dataset<std::uint64_t>(path, "/inputs/raw_sizes");
  info.has_weights = io::h5_exists(path, "/raw/log_weight");
  return info;
}

std::vector<comm::Candidate> read_shard_candidates(const std::string& path, const std::string& which) {
  const auto keys = io::read_dataset<double>(path, "/shard/" + which + "_key");
  const auto ids = io::read_dataset<std::uint64_t>(path, "/shard/" + which + "_id");
  const auto values = io::read_dataset<double>(path, "/shard/" + which + "_log_weight");
  if (ids.size() != keys.size() || values.size() != keys.size())
    throw DataError(path + ": /shard/" + which + "_key, _id and _log_weight differ in length");
  std::vector<comm::Candidate> cs;
  cs.reserve(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) cs.push_back({keys[i], ids[i], values[i]});
  return cs;
}

ShardWeights read_shard_weights(const std::string& path) {
  ShardWeights w;
  w.file_index = io::read_dataset<std::uint32_t>(path, "/raw/file_index");
  w.byte_offset = io::read_dataset<std::uint64_t>(path, "/raw/byte_offset");
  w.log_weight = io::read_dataset<double>(path, "/raw/log_weight");
  w.num_tokens = io::read_dataset<std::int64_t>(path, "/raw/num_tokens");
  const std::size_t n = w.file_index.size();
  if (w.byte_offset.size() != n || w.log_weight.size() != n || w.num_tokens.size() != n)
    throw DataError(path + ": /raw/file_index, byte_offset, log_weight and num_tokens differ in length");
  return w;
}

std::vector<ShardInfo> read_shard_set(const comm::Communicator& comm, const std::vector<std::string>& paths,
                                      const engine::Config& config,
                                      const std::vector<io::InputFile>& raw_files, std::uint64_t piece_count,
                                      bool need_weights) {
  std::vector<ShardInfo> by_index;
  comm.agree([&] {
    std::vector<ShardInfo> infos;
    for (const auto& path : paths) infos.push_back(read_shard_info(path));
    const ShardInfo& first = infos.front();
    const auto expected = settings_map(settings_text(selection_settings(config)));
    by_index.assign(first.count, ShardInfo{});
    std::vector<bool> seen(first.count, false);
    for (const auto& info : infos) {
      if (info.count != first.count) {
        throw DataError("dsir.shards: " + info.path + " is shard " + std::to_string(info.index) + " of " +
                        std::to_string(info.count) + ", " + first.path + " one of " +
                        std::to_string(first.count) + ": they are not from the same staged run");
      }
      if (info.fit_run_id != first.fit_run_id) {
        throw DataError("dsir.shards: " + info.path + " was scored with the model of run " + info.fit_run_id +
                        ", " + first.path + " with that of run " + first.fit_run_id +
                        ": every shard must be scored with the same dsir.model");
      }
      const auto values = settings_map(info.settings);
      for (const auto& [key, value] : expected) {
        const auto it = values.find(key);
        const std::string theirs = it == values.end() ? "(unset)" : it->second;
        if (theirs != value) {
          throw UsageError("dsir.shards: " + info.path + " was scored with dsir." + key + " = " + theirs +
                           ", this merge has dsir." + key + " = " + value +
                           "; merge with the settings the shards were scored with");
        }
      }
      if (info.raw_files.size() != raw_files.size()) {
        throw UsageError("dsir.shards: " + info.path + " scored " + std::to_string(info.raw_files.size()) +
                         " raw files, this merge's dsir.raw names " + std::to_string(raw_files.size()) +
                         "; use the same dsir.raw");
      }
      for (std::size_t f = 0; f < raw_files.size(); ++f) {
        if (info.raw_files[f] != raw_files[f].path || info.raw_sizes.at(f) != raw_files[f].size) {
          throw UsageError("dsir.shards: " + info.path + " scored raw file " + std::to_string(f) + " = " +
                           info.raw_files[f] + " (" + std::to_string(info.raw_sizes.at(f)) +
                           " bytes), this merge has " + raw_files[f].path + " (" +
                           std::to_string(raw_files[f].size) + " bytes); use the same, unchanged dsir.raw");
        }
      }
      if (info.piece_count != piece_count || info.piece_begin > info.piece_end ||
          info.piece_end > piece_count) {
        throw DataError("dsir.shards: " + info.path + " covers pieces " + std::to_string(info.piece_begin) +
                        ".." + std::to_string(info.piece_end) + " of " + std::to_string(info.piece_count) +
                        ", the raw corpus has " + std::to_string(piece_count));
      }
      if (need_weights && !info.has_weights) {
        throw DataError("dsir.shards: " + info.path + " holds no /raw/log_weight (dsir.save_weights = true)");
      }
      if (seen[info.index]) {
        throw DataError("dsir.shards: shard " + std::to_string(info.index) + " of " +
                        std::to_string(first.count) + " is given twice: " + by_index[info.index].path +
                        " and " + info.path);
      }
      seen[info.index] = true;
      by_index[info.index] = info;
    }
    std::string missing;
    std::size_t missing_count = 0;
    for (std::uint32_t i = 0; i < first.count; ++i) {
      if (seen[i]) continue;
      if (missing_count++ < 10) missing += (missing.empty() ? "" : ", ") + std::to_string(i);
    }
    if (missing_count > 0) {
      throw DataError("dsir.shards: " + std::to_string(missing_count) + " of " + std::to_string(first.count) +
                      " shards are missing (index " + missing + (missing_count > 10 ? ", ..." : "") +
                      "); the merge needs the output of every dsir.shard = I/" + std::to_string(first.count));
    }
    std::uint64_t next = 0;
    for (const auto& info : by_index) {
      if (info.piece_begin != next) {
        throw DataError("dsir.shards: " + info.path + " starts at piece " + std::to_string(info.piece_begin) +
                        ", the shards before it end at " + std::to_string(next));
      }
      next = info.piece_end;
    }
    if (next != piece_count) {
      throw DataError("dsir.shards: the shards cover pieces 0.." + std::to_string(next) + " of " +
                      std::to_string(piece_count));
    }
  });
  return by_index;
}

}  // namespace skein::dsir
