#include "jobs/dsir/dsir_job.hpp"

#include "comm/topk.hpp"
#include "engine/log.hpp"
#include "engine/random.hpp"
#include "io/atomic_output.hpp"
#include "io/hdf5.hpp"
#include "io/input_files.hpp"
#include "io/json_field.hpp"
#include "io/jsonl_reader.hpp"
#include "io/text_output.hpp"
#include "jobs/dsir/ngram_hasher.hpp"
#include "jobs/dsir/tokenizer.hpp"
#include "jobs/run_attributes.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cmath>
#include <optional>

namespace skein::dsir {
namespace {

using engine::DataError;
using engine::UsageError;
using HostCounts = Kokkos::View<std::uint64_t*, Kokkos::HostSpace>;

constexpr double kLogEpsilon = 1e-8;        // the reference's log(p + 1e-8)
constexpr std::size_t kChunkBytes = 32u << 20;  // one step reads about this much of a rank's share
constexpr int kFileBits = 24;                // document id = file index << 40 | byte offset
constexpr int kOffsetBits = 40;

struct Settings {
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
  double raw_fit = 1.0;  // fraction of raw documents (sampled by id) used to fit the raw model
};

Settings parse_settings(const engine::Config& config) {
  Settings s;
  s.target_patterns = config.get_list("target");
  s.raw_patterns = config.get_list("raw");
  if (s.target_patterns.empty()) throw UsageError("config key 'dsir.target' names no files");
  if (s.raw_patterns.empty()) throw UsageError("config key 'dsir.raw' names no files");
  s.text_field = config.get("text_field");
  if (s.text_field.empty()) throw UsageError("config key 'dsir.text_field' is empty");
  s.ngrams = static_cast<int>(config.get_int("ngrams", 1, 8));
  s.num_buckets = static_cast<std::uint32_t>(config.get_int("num_buckets", 1, 1u << 30));
  s.lowercase = config.get_bool("lowercase");
  s.hash = config.get_choice("hash", {"xxh3", "sha256"}) == "sha256" ? HashKind::sha256 : HashKind::xxh3;
  s.min_tokens = config.get_int("min_tokens", 0, std::int64_t{1} << 40);
  s.num_select = static_cast<std::uint64_t>(config.get_int("num_select", 1, std::int64_t{1} << 50));
  s.top_k = config.get_bool("top_k");
  s.seed = static_cast<std::uint64_t>(config.get_int("seed", 0, INT64_MAX));
  s.skip_bad_lines = config.get_choice("on_bad_line", {"error", "skip"}) == "skip";
  s.save_weights = config.get_bool("save_weights");
  if (config.get("raw_fit") != "all") {
    s.raw_fit = config.get_double("raw_fit");
    if (!(s.raw_fit > 0 && s.raw_fit <= 1)) {
      throw UsageError("config key 'dsir.raw_fit': " + config.get("raw_fit") + " is not 'all' or a fraction in (0, 1]");
    }
  }
  return s;
}

std::uint64_t document_id(std::uint32_t file_index, std::uint64_t byte_offset) {
  return (static_cast<std::uint64_t>(file_index) << kOffsetBits) | byte_offset;
}

// The distribution of `counts` smoothed with a prior of weight num_buckets: q = (c + B·prior) / (N + B).
// Without smoothing a sample rarely has every bucket the target uses, and the reference's 1e-8 floor
// lets those empty buckets dominate any divergence. Selections are smoothed toward the raw distribution, so
// a small or random selection measures close to raw and only a real shift toward the target counts.
std::vector<double> smoothed(const HostCounts& counts, const std::vector<double>& prior) {
  double total = 0;
  for (std::size_t j = 0; j < counts.extent(0); ++j) total += static_cast<double>(counts(j));
  const double strength = static_cast<double>(counts.extent(0));
  std::vector<double> q(counts.extent(0));
  for (std::size_t j = 0; j < q.size(); ++j) {
    q[j] = (static_cast<double>(counts(j)) + strength * prior[j]) / (total + strength);
  }
  return q;
}

// KL(p || q) = Σ_j p_j log(p_j / q_j), q > 0 everywhere.
double kl_divergence(const std::vector<double>& p, const std::vector<double>& q) {
  double kl = 0;
  for (std::size_t j = 0; j < p.size(); ++j) {
    if (p[j] > 0) kl += p[j] * std::log(p[j] / q[j]);
  }
  return kl;
}

std::vector<double> normalized(const HostCounts& counts) {
  double total = 0;
  for (std::size_t j = 0; j < counts.extent(0); ++j) total += static_cast<double>(counts(j));
  std::vector<double> p(counts.extent(0), 0.0);
  if (total > 0) {
    for (std::size_t j = 0; j < p.size(); ++j) p[j] = static_cast<double>(counts(j)) / total;
  }
  return p;
}

// Document tallies, summed over ranks at the end of each pass.
struct Tally {
  std::uint64_t read = 0;              // non-empty lines
  std::uint64_t scored = 0;            // documents turned into n-grams
  std::uint64_t bad_json = 0;          // skipped: not valid JSON
  std::uint64_t missing_field = 0;     // skipped: no (string) text field
  std::uint64_t invalid_utf8 = 0;      // scored, with invalid bytes as separators
  std::uint64_t eligible = 0;          // scored with at least min_tokens tokens
  std::uint64_t fit = 0;               // used to fit the model

  void sum(const comm::Communicator& comm) {
    std::uint64_t values[] = {read, scored, bad_json, missing_field, invalid_utf8, eligible, fit};
    comm.allreduce_inplace(values, 7, comm::Op::sum);
    read = values[0], scored = values[1], bad_json = values[2], missing_field = values[3];
    invalid_utf8 = values[4], eligible = values[5], fit = values[6];
  }
};

// One JSONL line -> its hashed n-gram buckets, with the corpus' bad-line policy applied.
class Featurizer {
 public:
  Featurizer(const Settings& settings, const std::vector<io::InputFile>& files, const io::JsonlShard& shard)
      : settings_(settings),
        files_(files),
        shard_(shard),
        json_(settings.text_field),
        tokenizer_(settings.lowercase),
        hasher_(settings.hash, settings.ngrams, settings.num_buckets) {}

  // False when the line holds no document (empty, or a bad line that is skipped).
  bool featurize(const io::Line& line, Tally& tally) {
    const io::JsonFieldReader::Status status = json_.read(line, text_);
    if (status == io::JsonFieldReader::Status::empty_line) return false;
    ++tally.read;
    if (status != io::JsonFieldReader::Status::ok) {
      const bool bad_json = status == io::JsonFieldReader::Status::bad_json;
      if (!settings_.skip_bad_lines) {
        const std::string where =
            files_[line.file_index].path + ":" + std::to_string(shard_.line_number(line.file_index, line.byte_offset));
        std::string what;
        if (bad_json) {
          what = "not valid JSON (" + json_.error_message() + ")";
        } else if (status == io::JsonFieldReader::Status::missing_field) {
          what = "no field '" + settings_.text_field + "'";
        } else {
          what = "field '" + settings_.text_field + "' is not a string";
        }
        throw DataError(where + ": " + what + " (set dsir.on_bad_line=skip to skip such lines)");
      }
      ++(bad_json ? tally.bad_json : tally.missing_field);
      return false;
    }
    // Invalid bytes outside strings were blanked by the JSON reader; inside strings, JSON escapes can still
    // decode to text the tokenizer must treat as separators.
    const bool invalid_text = tokenizer_.tokenize(text_, tokens_);
    if (json_.invalid_utf8() || invalid_text) ++tally.invalid_utf8;
    buckets_.clear();
    hasher_.buckets(tokens_, buckets_);
    ++tally.scored;
    return true;
  }

  const std::vector<std::uint32_t>& buckets() const { return buckets_; }
  // The reference's length: (number of n-grams + n(n-1)/2) // n, i.e. the token count.
  std::int64_t num_tokens() const {
    const std::int64_t n = settings_.ngrams;
    return (static_cast<std::int64_t>(buckets_.size()) + n * (n - 1) / 2) / n;
  }

 private:
  const Settings& settings_;
  const std::vector<io::InputFile>& files_;
  const io::JsonlShard& shard_;
  io::JsonFieldReader json_;
  Tokenizer tokenizer_;
  NgramHasher hasher_;
  std::string text_;
  std::vector<std::string_view> tokens_;
  std::vector<std::uint32_t> buckets_;
};

// The passes over the data, in order. Each is a sequence of steps, one chunk of every rank's share each.
enum class Pass { fit_target, fit_raw, score, collect, done };

const char* pass_label(Pass pass) {
  switch (pass) {
    case Pass::fit_target: return "fitting target model";
    case Pass::fit_raw: return "fitting raw model";
    case Pass::score: return "scoring raw documents";
    case Pass::collect: return "collecting the selection";
    case Pass::done: break;
  }
  return "done";
}

class DsirJob final : public engine::Job {
 public:
  explicit DsirJob(const jobs::JobEnv& env)
      : env_(env), comm_(env.comm), settings_(parse_settings(env.config)) {}

  void load() override {
    target_files_ = io::resolve_inputs(comm_, settings_.target_patterns, "dsir.target");
    raw_files_ = io::resolve_inputs(comm_, settings_.raw_patterns, "dsir.raw");
    comm_.agree([&] {
      for (const auto* files : {&target_files_, &raw_files_}) {
        for (const auto& file : *files) {
          if (file.size == 0) throw DataError(file.path + ": file is empty (no documents)");
        }
      }
      if (raw_files_.size() >= (std::size_t{1} << kFileBits)) {
        throw UsageError("dsir.raw names " + std::to_string(raw_files_.size()) + " files; at most " +
                         std::to_string((1u << kFileBits) - 1) + " are supported");
      }
    });
    target_counts_ = HostCounts("target_counts", settings_.num_buckets);
    raw_counts_ = HostCounts("raw_counts", settings_.num_buckets);
    engine::Log::user().info("dsir: {} target file{}, {} raw file{}, {} buckets, hash {}, {}-grams", target_files_.size(),
                             target_files_.size() == 1 ? "" : "s", raw_files_.size(), raw_files_.size() == 1 ? "" : "s",
                             settings_.num_buckets, settings_.hash == HashKind::sha256 ? "sha256" : "xxh3",
                             settings_.ngrams);
    begin_pass(Pass::fit_target);
  }

  bool step() override {
    if (pass_ == Pass::done) return true;
    bool exhausted = local_exhausted_;
    comm_.agree([&] {
      if (exhausted) return;
      exhausted = !shard_->next_chunk(kChunkBytes, [&](const io::Line& line) { on_line(line); });
      progress_->set_done(static_cast<double>(shard_->bytes_done()));
    });
    local_exhausted_ = exhausted;
    const bool all_exhausted = comm_.allreduce<int>(exhausted ? 1 : 0, comm::Op::min) == 1;
    if (all_exhausted) end_pass();
    return pass_ == Pass::done;
  }

  void finalize() override;

 private:
  void begin_pass(Pass pass) {
    pass_ = pass;
    if (pass == Pass::done) return;
    const auto& files = pass == Pass::fit_target ? target_files_ : raw_files_;
    shard_ = std::make_unique<io::JsonlShard>(files, comm_.rank(), comm_.size());
    featurizer_ = std::make_unique<Featurizer>(settings_, files, *shard_);
    local_exhausted_ = false;
    tally_ = Tally{};
    progress_ = std::make_unique<engine::Progress>(std::string("dsir: ") + pass_label(pass),
                                                   static_cast<double>(shard_->bytes_total()), "B");
    selected_cursor_ = 0;
    random_cursor_ = 0;
  }

  void on_line(const io::Line& line) {
    if (!featurizer_->featurize(line, tally_)) return;
    const auto& buckets = featurizer_->buckets();
    const std::uint64_t id = document_id(line.file_index, line.byte_offset);
    switch (pass_) {
      case Pass::fit_target:
        for (const auto b : buckets) ++target_counts_(b);
        ++tally_.fit;
        break;
      case Pass::fit_raw:
        if (settings_.raw_fit < 1.0 &&
            engine::uniform_open01(settings_.seed, engine::Stream::subsample, id) >= settings_.raw_fit) {
          break;
        }
        for (const auto b : buckets) ++raw_counts_(b);
        ++tally_.fit;
        break;
      case Pass::score: score(line, id);
        break;
      case Pass::collect: collect(line, id);
        break;
      case Pass::done: break;
    }
  }

  void score(const io::Line& line, std::uint64_t id) {
    if (line.byte_offset >= (std::uint64_t{1} << kOffsetBits)) {
      throw DataError(raw_files_[line.file_index].path + ": byte offset " + std::to_string(line.byte_offset) +
                      " is beyond the 1 TiB per file that document ids support; split the file");
    }
    double log_weight = 0;
    for (const auto b : featurizer_->buckets()) log_weight += log_ratio_[b];
    const std::int64_t num_tokens = featurizer_->num_tokens();
    if (settings_.save_weights) {
      weights_file_.push_back(line.file_index);
      weights_offset_.push_back(line.byte_offset);
      weights_value_.push_back(log_weight);
      weights_tokens_.push_back(num_tokens);
    }
    if (num_tokens < settings_.min_tokens) return;
    ++tally_.eligible;
    const double noise = settings_.top_k ? 0.0 : engine::gumbel(settings_.seed, engine::Stream::gumbel, id);
    selection_->push({log_weight + noise, id, log_weight});
    baseline_->push({engine::uniform_open01(settings_.seed, engine::Stream::baseline, id), id, log_weight});
  }

  void collect(const io::Line& line, std::uint64_t id) {
    // Lines arrive in id order, and both id lists are sorted: advance two cursors.
    const auto& buckets = featurizer_->buckets();
    if (selected_cursor_ < selected_.size() && selected_[selected_cursor_].id == id) {
      ++selected_cursor_;
      selected_lines_.append(line.bytes.data(), line.bytes.size());
      selected_lines_.push_back('\n');
      for (const auto b : buckets) ++selected_counts_(b);
    }
    if (random_cursor_ < random_ids_.size() && random_ids_[random_cursor_] == id) {
      ++random_cursor_;
      for (const auto b : buckets) ++random_counts_(b);
    }
  }

  void end_pass() {
    progress_->finish();
    tally_.sum(comm_);
    switch (pass_) {
      case Pass::fit_target: {
        target_tally_ = tally_;
        comm_.allreduce(target_counts_, comm::Op::sum);
        comm_.agree([&] {
          if (target_tally_.fit == 0) throw DataError("the target corpus (dsir.target) holds no documents");
        });
        begin_pass(Pass::fit_raw);
        break;
      }
      case Pass::fit_raw: {
        comm_.allreduce(raw_counts_, comm::Op::sum);
        raw_fit_docs_ = tally_.fit;
        comm_.agree([&] {
          if (raw_fit_docs_ == 0) throw DataError("the raw corpus (dsir.raw) holds no documents to fit");
        });
        target_prob_ = normalized(target_counts_);
        raw_prob_ = normalized(raw_counts_);
        log_ratio_.resize(settings_.num_buckets);
        for (std::size_t j = 0; j < log_ratio_.size(); ++j) {
          log_ratio_[j] = std::log(target_prob_[j] + kLogEpsilon) - std::log(raw_prob_[j] + kLogEpsilon);
        }
        selection_ = std::make_unique<comm::LocalTopK>(settings_.num_select);
        baseline_ = std::make_unique<comm::LocalTopK>(settings_.num_select);
        begin_pass(Pass::score);
        break;
      }
      case Pass::score: {
        raw_tally_ = tally_;
        comm_.agree([&] {
          if (raw_tally_.eligible < settings_.num_select) {
            throw UsageError("dsir.num_select = " + std::to_string(settings_.num_select) + " but only " +
                             std::to_string(raw_tally_.eligible) + " of " + std::to_string(raw_tally_.scored) +
                             " raw documents are eligible (at least dsir.min_tokens = " +
                             std::to_string(settings_.min_tokens) + " tokens)");
          }
        });
        selected_ = comm::select_global_topk(comm_, selection_->best(), settings_.num_select);
        const auto random = comm::select_global_topk(comm_, baseline_->best(), settings_.num_select);
        selection_.reset();
        baseline_.reset();
        auto by_id = [](const comm::Candidate& a, const comm::Candidate& b) { return a.id < b.id; };
        std::sort(selected_.begin(), selected_.end(), by_id);
        for (const auto& c : random) random_ids_.push_back(c.id);
        std::sort(random_ids_.begin(), random_ids_.end());
        selected_counts_ = HostCounts("selected_counts", settings_.num_buckets);
        random_counts_ = HostCounts("random_counts", settings_.num_buckets);
        begin_pass(Pass::collect);
        break;
      }
      case Pass::collect: {
        comm_.agree([&] {
          if (selected_cursor_ != selected_.size() || random_cursor_ != random_ids_.size()) {
            throw engine::InternalError("dsir: the input changed while it was read (selected documents not found)");
          }
        });
        comm_.allreduce(selected_counts_, comm::Op::sum);
        comm_.allreduce(random_counts_, comm::Op::sum);
        begin_pass(Pass::done);
        break;
      }
      case Pass::done: break;
    }
  }

  const jobs::JobEnv& env_;
  const comm::Communicator& comm_;
  Settings settings_;
  std::vector<io::InputFile> target_files_, raw_files_;

  Pass pass_ = Pass::fit_target;
  std::unique_ptr<io::JsonlShard> shard_;
  std::unique_ptr<Featurizer> featurizer_;
  std::unique_ptr<engine::Progress> progress_;
  bool local_exhausted_ = false;
  Tally tally_, target_tally_, raw_tally_;
  std::uint64_t raw_fit_docs_ = 0;

  HostCounts target_counts_, raw_counts_, selected_counts_, random_counts_;
  std::vector<double> target_prob_, raw_prob_, log_ratio_;
  std::unique_ptr<comm::LocalTopK> selection_, baseline_;
  std::vector<comm::Candidate> selected_;  // this rank's share of the selection, by id
  std::vector<std::uint64_t> random_ids_;  // this rank's share of the random baseline, by id
  std::size_t selected_cursor_ = 0, random_cursor_ = 0;
  std::string selected_lines_;

  std::vector<std::uint32_t> weights_file_;
  std::vector<std::uint64_t> weights_offset_;
  std::vector<double> weights_value_;
  std::vector<std::int64_t> weights_tokens_;
};

void DsirJob::finalize() {
  const std::vector<double> uniform(settings_.num_buckets, 1.0 / settings_.num_buckets);
  const std::vector<double> raw_smoothed = smoothed(raw_counts_, uniform);
  const double kl_target_raw = kl_divergence(target_prob_, raw_smoothed);
  const double kl_target_selected = kl_divergence(target_prob_, smoothed(selected_counts_, raw_smoothed));
  const double kl_target_random = kl_divergence(target_prob_, smoothed(random_counts_, raw_smoothed));

  io::write_concatenated(comm_, env_.out_dir + "/selected.jsonl", selected_lines_);

  std::vector<std::uint32_t> file_index;
  std::vector<std::uint64_t> byte_offset;
  std::vector<double> log_weight;
  for (const auto& c : selected_) {
    file_index.push_back(static_cast<std::uint32_t>(c.id >> kOffsetBits));
    byte_offset.push_back(c.id & ((std::uint64_t{1} << kOffsetBits) - 1));
    log_weight.push_back(c.value);
  }
  std::vector<std::string> raw_paths, target_paths;
  for (const auto& f : raw_files_) raw_paths.push_back(f.path);
  for (const auto& f : target_files_) target_paths.push_back(f.path);

  io::AtomicOutput output(comm_, env_.out_dir + "/dsir.h5");
  {
    io::H5Writer h5(comm_, output.tmp_path());
    jobs::write_run_attributes(h5, env_, settings_.seed, "complete");
    std::vector<double> target_log(settings_.num_buckets), raw_log(settings_.num_buckets);
    for (std::size_t j = 0; j < target_log.size(); ++j) {
      target_log[j] = std::log(target_prob_[j] + kLogEpsilon);
      raw_log[j] = std::log(raw_prob_[j] + kLogEpsilon);
    }
    h5.write_replicated("/model/target_log_prob", target_log);
    h5.write_replicated("/model/raw_log_prob", raw_log);
    h5.set_attribute("/model", "description", "log(p + 1e-8) per hash bucket; log weight = sum over a document's "
                                              "n-grams of target_log_prob - raw_log_prob");
    h5.write_distributed("/selected/file_index", file_index);
    h5.write_distributed("/selected/byte_offset", byte_offset);
    h5.write_distributed("/selected/log_weight", log_weight);
    h5.write_strings("/inputs/raw_files", raw_paths);
    h5.write_strings("/inputs/target_files", target_paths);
    if (settings_.save_weights) {
      h5.write_distributed("/raw/file_index", weights_file_);
      h5.write_distributed("/raw/byte_offset", weights_offset_);
      h5.write_distributed("/raw/log_weight", weights_value_);
      h5.write_distributed("/raw/num_tokens", weights_tokens_);
    }
    const std::string metrics = "/metrics";
    h5.set_attribute(metrics, "kl_target_raw", kl_target_raw);
    h5.set_attribute(metrics, "kl_target_selected", kl_target_selected);
    h5.set_attribute(metrics, "kl_reduction", kl_target_raw - kl_target_selected);
    h5.set_attribute(metrics, "kl_target_random", kl_target_random);
    h5.set_attribute(metrics, "kl_reduction_random", kl_target_raw - kl_target_random);
    h5.set_attribute(metrics, "kl_gain_over_random", kl_target_random - kl_target_selected);
    h5.set_attribute(metrics, "num_selected", static_cast<std::int64_t>(settings_.num_select));
    h5.set_attribute(metrics, "docs_read", static_cast<std::int64_t>(raw_tally_.read));
    h5.set_attribute(metrics, "docs_scored", static_cast<std::int64_t>(raw_tally_.scored));
    h5.set_attribute(metrics, "docs_eligible", static_cast<std::int64_t>(raw_tally_.eligible));
    h5.set_attribute(metrics, "docs_skipped_bad_json", static_cast<std::int64_t>(raw_tally_.bad_json));
    h5.set_attribute(metrics, "docs_skipped_missing_field", static_cast<std::int64_t>(raw_tally_.missing_field));
    h5.set_attribute(metrics, "docs_invalid_utf8", static_cast<std::int64_t>(raw_tally_.invalid_utf8));
    h5.set_attribute(metrics, "docs_raw_fit", static_cast<std::int64_t>(raw_fit_docs_));
    h5.set_attribute(metrics, "target_docs_read", static_cast<std::int64_t>(target_tally_.read));
    h5.set_attribute(metrics, "target_docs_skipped",
                     static_cast<std::int64_t>(target_tally_.bad_json + target_tally_.missing_field));
    h5.set_attribute(metrics, "target_docs_invalid_utf8", static_cast<std::int64_t>(target_tally_.invalid_utf8));
    h5.close();  // collective; throws (agreed) where the destructor could only log
  }
  output.commit();

  auto& log = engine::Log::user();
  log.info("dsir: selected {} of {} eligible documents ({} read, {} skipped, {} with invalid UTF-8)",
           settings_.num_select, raw_tally_.eligible, raw_tally_.read, raw_tally_.bad_json + raw_tally_.missing_field,
           raw_tally_.invalid_utf8);
  log.info("dsir: KL(target||raw) = {:.4f}, KL(target||selected) = {:.4f} (reduction {:.4f}); a random selection "
           "of the same size: {:.4f} (reduction {:.4f}), so the selection is {:.4f} closer to the target than random",
           kl_target_raw, kl_target_selected, kl_target_raw - kl_target_selected, kl_target_random,
           kl_target_raw - kl_target_random, kl_target_random - kl_target_selected);
  log.info("dsir: wrote {}/dsir.h5 and {}/selected.jsonl", env_.out_dir, env_.out_dir);
}

}  // namespace

engine::JobSpec job_spec() {
  return {"dsir",
          "Data Selection with Importance Resampling (Xie et al. 2023): select raw documents that look like a target",
          {
              {"target", "", "target corpus: JSONL files or globs (.jsonl, .jsonl.zst), space- or comma-separated", true},
              {"raw", "", "raw corpus to select from: JSONL files or globs (.jsonl, .jsonl.zst)", true},
              {"num_select", "", "number of raw documents to select", true},
              {"text_field", "text", "JSON field holding each document's text"},
              {"ngrams", "2", "n-gram order: unigrams up to n-grams joined by one space"},
              {"num_buckets", "10000", "hash buckets of the n-gram models"},
              {"lowercase", "true", "lowercase text before tokenizing (Python str.lower)"},
              {"hash", "xxh3", "n-gram hash: xxh3 (fast) or sha256 (the reference package's buckets)"},
              {"min_tokens", "100", "documents with fewer tokens are not eligible for selection"},
              {"top_k", "false", "false: Gumbel top-k = sampling without replacement; true: the k highest weights"},
              {"seed", "0", "random seed (Gumbel noise, random baseline, raw_fit sampling)"},
              {"on_bad_line", "error", "error: stop at a malformed line; skip: count it and go on"},
              {"save_weights", "false", "write every raw document's log weight to /raw/log_weight"},
              {"raw_fit", "all", "'all', or the fraction of raw documents (sampled by id) that fit the raw model"},
          }};
}

std::unique_ptr<engine::Job> make_job(const jobs::JobEnv& env) { return std::make_unique<DsirJob>(env); }

}  // namespace skein::dsir
