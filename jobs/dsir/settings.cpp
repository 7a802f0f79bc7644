#include "jobs/dsir/settings.hpp"

#include "engine/error.hpp"

#include <climits>
#include <cstdio>
#include <cstdlib>

namespace skein::dsir {

using engine::UsageError;

namespace {
// "32M", "512k", "1G" or plain bytes.
std::uint64_t parse_bytes(const engine::Config& config, const std::string& key, bool allow_zero) {
  std::string text = config.get(key);
  std::uint64_t scale = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'k':
      case 'K':
        scale = 1ull << 10;
        break;
      case 'm':
      case 'M':
        scale = 1ull << 20;
        break;
      case 'g':
      case 'G':
        scale = 1ull << 30;
        break;
      default:
        break;
    }
    if (scale != 1) text.pop_back();
  }
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || (value == 0 && !allow_zero) || value > (1ull << 40) / scale) {
    throw UsageError("config key 'dsir." + key + "': '" + config.get(key) +
                     "' is not a size such as 32M, 512k or 1048576");
  }
  return value * scale;
}

// dsir.shard: "I/N" (0 <= I < N), or "array": the Slurm array task's id and count (ids must run 0..N-1).
void parse_shard(const engine::Config& config, Settings& s) {
  const std::string text = config.get("shard");
  if (s.stage != Stage::score) {
    if (!text.empty())
      throw UsageError("config key 'dsir.shard' is only read with stage = score (stage is " +
                       config.get("stage") + ")");
    return;
  }
  if (text.empty())
    throw UsageError(
        "stage = score needs config key 'dsir.shard': I/N (the I-th of N shares, 0-based) or 'array'");
  long long index = -1, count = 0;
  if (text == "array") {
    const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
    const char* n = std::getenv("SLURM_ARRAY_TASK_COUNT");
    const char* min = std::getenv("SLURM_ARRAY_TASK_MIN");
    const char* max = std::getenv("SLURM_ARRAY_TASK_MAX");
    if (!id || !n)
      throw UsageError(
          "config key 'dsir.shard' = array, but this is not a Slurm array task (no "
          "SLURM_ARRAY_TASK_ID); submit with `skein submit --array 0-N-1` or set dsir.shard = I/N");
    index = std::atoll(id);
    count = std::atoll(n);
    if ((min && std::atoll(min) != 0) || (max && std::atoll(max) != count - 1)) {
      throw UsageError("config key 'dsir.shard' = array needs array ids 0.." + std::to_string(count - 1) +
                       " (--array 0-" + std::to_string(count - 1) + "), got " + (min ? min : "?") + ".." +
                       (max ? max : "?"));
    }
  } else {
    char slash = 0;
    char rest = 0;
    if (std::sscanf(text.c_str(), "%lld%c%lld%c", &index, &slash, &count, &rest) != 3 || slash != '/')
      throw UsageError("config key 'dsir.shard': '" + text + "' is not I/N (e.g. 0/8) or 'array'");
  }
  if (count < 1 || count > (1 << 20) || index < 0 || index >= count) {
    throw UsageError("config key 'dsir.shard': '" + text + "' (shard " + std::to_string(index) + " of " +
                     std::to_string(count) + ") needs 0 <= I < N <= 1048576");
  }
  s.shard_index = static_cast<std::uint32_t>(index);
  s.shard_count = static_cast<std::uint32_t>(count);
}

}  // namespace

engine::JobSpec job_spec() {
  return {
      "dsir",
      "Data Selection with Importance Resampling (Xie et al. 2023): select raw documents that look like a "
      "target",
      {
          {"target", "",
           "target corpus: JSONL files or globs (.jsonl, .jsonl.zst), space- or comma-separated (required "
           "unless dsir.model is given or stage = merge)"},
          {"raw", "", "raw corpus to select from: JSONL files or globs (.jsonl, .jsonl.zst)", true},
          {"num_select", "", "number of raw documents to select (required unless stage = fit)"},
          {"stage", "all",
           "all: fit, score and select in one run; or one stage of a staged run: fit (write the model), "
           "score (one shard of the raw files, with dsir.model and dsir.shard), merge (dsir.shards -> the "
           "selection)"},
          {"model", "", "a fitted model to score with instead of fitting (a dsir.h5 of stage = fit or all)"},
          {"shard", "",
           "stage = score: I/N scores the I-th (0-based) of N shares of the raw pieces; 'array' "
           "takes I and N from SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT"},
          {"shards", "", "stage = merge: the score stage's dsir.h5 files (globs), one per shard"},
          {"text_field", "text", "JSON field holding each document's text"},
          {"ngrams", "2", "n-gram order: unigrams up to n-grams joined by one space"},
          {"num_buckets", "10000", "hash buckets of the n-gram models"},
          {"lowercase", "true", "lowercase text before tokenizing (Python str.lower)"},
          {"hash", "xxh3", "n-gram hash: xxh3 (fast) or sha256 (the reference package's buckets)"},
          {"min_tokens", "100", "documents with fewer tokens are not eligible for selection"},
          {"top_k", "false",
           "false: Gumbel top-k = sampling without replacement; true: the k highest weights"},
          {"seed", "0", "random seed (Gumbel noise, random baseline, raw_fit sampling)"},
          {"on_bad_line", "error", "error: stop at a malformed line; skip: count it and go on"},
          {"save_weights", "false", "write every raw document's log weight to /raw/log_weight"},
          {"raw_fit", "all",
           "'all', or the fraction of raw documents (sampled by id) that fit the raw model"},
          {"piece_size", "8M", "input is processed (and checkpointed) in pieces of this many bytes per rank"},
          {"index_cache", "auto",
           "directory that keeps .jsonl.zst indexes between runs, so a file whose frames do not declare "
           "their size is decoded to index it only once; auto: $XDG_CACHE_HOME/skein/zstd-index (else "
           "~/.cache/skein/zstd-index); off: index every run",
           false, false},
          {"feature_cache", "2G",
           "memory per rank for keeping raw documents' n-grams from the fit pass for the score and "
           "collect passes (saves re-reading and re-featurising them; 0 turns it off)",
           false, false},
      },
      {"selected.jsonl", "dsir.h5"}};
}

Settings parse_settings(const engine::Config& config) {
  Settings s;
  const std::string stage = config.get_choice("stage", {"all", "fit", "score", "merge"});
  s.stage = stage == "fit"     ? Stage::fit
            : stage == "score" ? Stage::score
            : stage == "merge" ? Stage::merge
                               : Stage::all;
  s.model_path = config.get("model");
  s.target_patterns = config.get_list("target");
  s.raw_patterns = config.get_list("raw");
  const bool fits = s.stage == Stage::fit || (s.stage == Stage::all && s.model_path.empty());
  if (fits && s.target_patterns.empty()) {
    throw UsageError(config.get("target").empty()
                         ? "missing required config key 'dsir.target' (the target corpus; not needed with "
                           "dsir.model = a fitted model)"
                         : "config key 'dsir.target' names no files");
  }
  if (s.raw_patterns.empty()) throw UsageError("config key 'dsir.raw' names no files");
  if (s.stage == Stage::fit && !s.model_path.empty())
    throw UsageError(
        "config key 'dsir.model' is set, but stage = fit fits a new model; leave dsir.model empty");
  if (s.stage == Stage::score && s.model_path.empty())
    throw UsageError("stage = score needs config key 'dsir.model' (the dsir.h5 of a stage = fit run)");
  parse_shard(config, s);
  s.shard_patterns = config.get_list("shards");
  if (s.stage == Stage::merge && s.shard_patterns.empty())
    throw UsageError(
        "stage = merge needs config key 'dsir.shards' (the score stage's dsir.h5 files, e.g. "
        "runs/score/task-*/dsir.h5)");
  if (s.stage != Stage::merge && !s.shard_patterns.empty())
    throw UsageError("config key 'dsir.shards' is only read with stage = merge (stage is " + stage + ")");
  s.text_field = config.get("text_field");
  if (s.text_field.empty()) throw UsageError("config key 'dsir.text_field' is empty");
  s.ngrams = static_cast<int>(config.get_int("ngrams", 1, 8));
  s.num_buckets = static_cast<std::uint32_t>(config.get_int("num_buckets", 1, 1 << 30));
  s.lowercase = config.get_bool("lowercase");
  s.hash = config.get_choice("hash", {"xxh3", "sha256"}) == "sha256" ? HashKind::sha256 : HashKind::xxh3;
  s.min_tokens = config.get_int("min_tokens", 0, std::int64_t{1} << 40);
  if (s.stage != Stage::fit) {
    if (config.get("num_select").empty())
      throw UsageError("missing required config key 'dsir.num_select' (number of raw documents to select)");
    s.num_select = static_cast<std::uint64_t>(config.get_int("num_select", 1, std::int64_t{1} << 50));
  }
  s.top_k = config.get_bool("top_k");
  s.seed = static_cast<std::uint64_t>(config.get_int("seed", 0, INT64_MAX));
  s.skip_bad_lines = config.get_choice("on_bad_line", {"error", "skip"}) == "skip";
  s.save_weights = config.get_bool("save_weights");
  if (config.get("raw_fit") != "all") {
    s.raw_fit = config.get_double("raw_fit");
    if (!(s.raw_fit > 0 && s.raw_fit <= 1)) {
      throw UsageError("config key 'dsir.raw_fit': " + config.get("raw_fit") +
                       " is not 'all' or a fraction in (0, 1]");
    }
  }
  s.piece_bytes = parse_bytes(config, "piece_size", false);
  // Each piece is a step (a checkpoint and stop opportunity); a few bytes per step would make millions of
  // them (`piece_size = 1` meant one byte, not one megabyte).
  constexpr std::uint64_t min_piece_bytes = 4096;
  if (s.piece_bytes < min_piece_bytes) {
    throw UsageError("config key 'dsir.piece_size': '" + config.get("piece_size") + "' is " +
                     std::to_string(s.piece_bytes) +
                     " bytes; use at least 4k (sizes take a unit: 512k, 8M, 1G)");
  }
  s.feature_cache_bytes = parse_bytes(config, "feature_cache", true);
  s.index_cache_dir = config.get("index_cache");
  if (s.index_cache_dir == "off") {
    s.index_cache_dir.clear();
  } else if (s.index_cache_dir == "auto") {
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    s.index_cache_dir = xdg != nullptr && xdg[0] == '/'     ? std::string(xdg) + "/skein/zstd-index"
                        : home != nullptr && home[0] == '/' ? std::string(home) + "/.cache/skein/zstd-index"
                                                            : "";
  } else if (s.index_cache_dir.empty()) {
    throw UsageError("config key 'dsir.index_cache' is empty; use a directory, auto or off");
  }
  return s;
}

}  // namespace skein::dsir
