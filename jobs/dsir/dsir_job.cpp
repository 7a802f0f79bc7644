#include "jobs/dsir/dsir_job.hpp"

#include "comm/block_partition.hpp"
#include "comm/topk.hpp"
#include "comm/view_collectives.hpp"
#include "engine/log.hpp"
#include "engine/random.hpp"
#include "io/atomic_output.hpp"
#include "io/hdf5.hpp"
#include "io/input_files.hpp"
#include "io/jsonl_reader.hpp"
#include "io/text_output.hpp"
#include "io/zstd_index.hpp"
#include "io/zstd_index_cache.hpp"
#include "jobs/dsir/featurizer.hpp"
#include "jobs/dsir/piece_lists.hpp"
#include "jobs/dsir/pieces.hpp"
#include "jobs/dsir/settings.hpp"
#include "jobs/dsir/staged.hpp"
#include "jobs/run_attributes.hpp"

#include <sys/mman.h>
#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <thread>

namespace skein::dsir {
namespace {

using engine::DataError;
using engine::UsageError;
using HostCounts = Kokkos::View<std::uint64_t*, Kokkos::HostSpace>;

// dsir's random streams (engine::StreamId takes any enum). The numbers are part of dsir's results: the
// same seed gives the same selection only while they stay as they are.
enum class DsirStream : std::uint32_t { gumbel = 1, baseline = 2, subsample = 3 };

constexpr double kLogEpsilon = 1e-8;  // the reference's log(p + 1e-8)
constexpr int kOffsetBits = 40;       // document id = file index << 40 | byte offset
constexpr int kFileBits = 24;
// Pieces of a .jsonl.zst file: 2 = decompressed byte ranges (files indexed), 1 = the whole file in one piece.
constexpr std::int64_t kZstdPiecesVersion = 2;

std::uint64_t document_id(std::uint32_t file_index, std::uint64_t byte_offset) {
  return (static_cast<std::uint64_t>(file_index) << kOffsetBits) | byte_offset;
}
std::uint32_t file_of(std::uint64_t id) {
  return static_cast<std::uint32_t>(id >> kOffsetBits);
}
std::uint64_t offset_of(std::uint64_t id) {
  return id & ((std::uint64_t{1} << kOffsetBits) - 1);
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

std::vector<std::uint64_t> counts_vector(const HostCounts& counts) {
  return std::vector<std::uint64_t>(counts.data(), counts.data() + counts.extent(0));
}
void assign_counts(HostCounts& counts, const std::vector<std::uint64_t>& values) {
  for (std::size_t j = 0; j < counts.extent(0); ++j) counts(j) = j < values.size() ? values[j] : 0;
}

// One scored raw document, kept for /raw/* when save_weights is on.
struct WeightEntry {
  std::uint64_t id;
  double log_weight;
  std::int64_t num_tokens;
};

// One piece's raw documents as the fit pass saw them, so the score pass need not read and parse them again.
struct CachedPiece {
  Tally tally;                      // the piece's document counts (read, scored, skipped, invalid UTF-8)
  std::vector<std::uint64_t> ids;   // documents in order
  std::vector<std::uint64_t> ends;  // document i's n-grams are buckets[ends[i-1], ends[i])
  // The buckets: 2 bytes each when num_buckets <= 65536 (the usual case: half the memory and page faults),
  // else 4. One of the two is used.
  std::vector<std::uint16_t> narrow;
  std::vector<std::uint32_t> wide;
  std::uintptr_t populated_end = 0;  // the buckets' pages below this address are mapped (prefaulted)

  // Reserves room for the n-grams of `piece_bytes` of input (about one per 3 bytes of English JSONL), so
  // that the buffer is not copied as it grows; pages are touched only as they are filled.
  void start(bool use_narrow, std::uint64_t piece_bytes) {
    const auto expected = static_cast<std::size_t>(piece_bytes / 2);
    if (use_narrow) {
      narrow.reserve(expected);
    } else {
      wide.reserve(expected);
    }
  }
  void append(std::uint64_t id, const std::vector<std::uint32_t>& buckets, bool use_narrow) {
    ids.push_back(id);
    if (use_narrow) {
      prefault(narrow, buckets.size());
      // One range insert (a converting copy the compiler vectorises), not a capacity check per bucket.
      narrow.insert(narrow.end(), buckets.begin(), buckets.end());
      ends.push_back(narrow.size());
    } else {
      prefault(wide, buckets.size());
      wide.insert(wide.end(), buckets.begin(), buckets.end());
      ends.push_back(wide.size());
    }
  }
  std::uint64_t bytes() const { return 16 * ids.size() + 2 * narrow.size() + 4 * wide.size(); }

  // Maps the reserved buckets' next pages ahead of the appends, 1 MiB at a time (MADV_POPULATE_WRITE,
  // Linux 5.14): a page fault per 4 KiB page as they were filled cost ~8 % of a plain-text run's CPU (perf,
  // Brown x64), mostly the fault's entry and exit. The pages are the ones the appends would touch anyway; on
  // older kernels the madvise fails and the pages fault in as before.
  template <class Vector>
  void prefault(const Vector& v, std::size_t more) {
    constexpr std::uintptr_t kPage = 4096, kAhead = std::uintptr_t{1} << 20;
    const auto data = reinterpret_cast<std::uintptr_t>(v.data());
    const std::uintptr_t need = data + (v.size() + more) * sizeof(v[0]);
    if (need <= populated_end || v.size() + more > v.capacity()) return;
    const std::uintptr_t limit = (data + v.capacity() * sizeof(v[0])) / kPage * kPage;
    const std::uintptr_t from = std::max(populated_end, data) / kPage * kPage;
    const std::uintptr_t to = std::min(limit, (need + kAhead + kPage - 1) / kPage * kPage);
    if (to > from) ::madvise(reinterpret_cast<void*>(from), to - from, MADV_POPULATE_WRITE);
    populated_end = std::max(to, need);
  }
};

// The passes over the data, in order. Each is a sequence of steps; a step is a piece per rank (or a few, on a
// rank faster than the slowest: see step()).
enum class Pass : std::int64_t { fit_target = 0, fit_raw = 1, score = 2, collect = 3, done = 4 };

const char* pass_label(Pass pass) {
  switch (pass) {
    case Pass::fit_target:
      return "fitting target model";
    case Pass::fit_raw:
      return "fitting raw model";
    case Pass::score:
      return "scoring raw documents";
    case Pass::collect:
      return "collecting the selection";
    case Pass::done:
      break;
  }
  return "done";
}

class DsirJob final : public engine::Job {
 public:
  explicit DsirJob(const jobs::JobEnv& env)
      : env_(env), comm_(env.comm), settings_(parse_settings(env.config)) {
    // Test hook: SKEIN_TEST_DSIR_SLOW_RANK=RANK:SECONDS makes that rank take SECONDS longer over every piece,
    // a straggler whose pieces the others take (PieceLists).
    if (const char* slow = std::getenv("SKEIN_TEST_DSIR_SLOW_RANK")) {
      if (std::atoi(slow) == comm_.rank() && std::strchr(slow, ':') != nullptr)
        slow_rank_seconds_ = std::atof(std::strchr(slow, ':') + 1);
    }
  }

  void load() override {
    if (fits_model()) {
      target_files_ =
          io::resolve_inputs(comm_, settings_.target_patterns, "dsir.target", io::kJsonlExtensions);
    }
    raw_files_ = io::resolve_inputs(comm_, settings_.raw_patterns, "dsir.raw", io::kJsonlExtensions);
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
    index_compressed_inputs();
    target_pieces_ = std::make_unique<Pieces>(target_files_, settings_.piece_bytes);
    raw_pieces_ = std::make_unique<Pieces>(raw_files_, settings_.piece_bytes);
    input_identities_ = io::input_identities(comm_, all_inputs());
    target_counts_ = HostCounts("target_counts", settings_.num_buckets);
    raw_counts_ = HostCounts("raw_counts", settings_.num_buckets);
    selected_counts_ = HostCounts("selected_counts", settings_.num_buckets);
    random_counts_ = HostCounts("random_counts", settings_.num_buckets);
    score_pieces_ = {0, raw_pieces_->count()};
    if (settings_.stage == Stage::all || settings_.stage == Stage::fit) note_single_frame_shares();
    engine::Log::user().info(
        "dsir: {} target file{}, {} raw file{} ({}), {} buckets, hash {}, {}-grams", target_files_.size(),
        target_files_.size() == 1 ? "" : "s", raw_files_.size(), raw_files_.size() == 1 ? "" : "s",
        engine::human_bytes(static_cast<double>(io::JsonlShard::total_bytes(raw_files_))),
        settings_.num_buckets, settings_.hash == HashKind::sha256 ? "sha256" : "xxh3", settings_.ngrams);
    if (fits_model()) {
      begin_pass(Pass::fit_target, {});
    } else if (settings_.stage == Stage::merge) {
      start_merge();
    } else {
      start_from_model();
    }
  }

  bool step() override {
    if (pass_ == Pass::done) return true;
    if (pass_read_) {
      // Ended here, not at the agreement that found it read: the runner may checkpoint right after an
      // agreement, and the last pass's end must be followed by the outputs, not by a checkpoint of a
      // finished run. A checkpoint of a pass read to its end resumes into that pass with nothing pending.
      pass_read_ = false;
      end_pass();
      return pass_ == Pass::done;
    }
    // A step reads pieces for about as long as the slowest rank takes for one (at least one piece; only one
    // where that is under kShortPieceSeconds, so small pieces keep a step a piece), with no communication:
    // the ranks agree on failures and on the pass's end only at the runner's agreements (at_agreement, about
    // every 0.2 s). So each rank reads at its own speed, and one that runs out takes pieces from the one with
    // most left (PieceLists). A barrier after every piece made every rank as slow as the slowest piece of
    // each step.
    if (failure_ || pending_.empty()) return false;
    const auto started = std::chrono::steady_clock::now();
    auto call_started = started;
    try {
      // Another piece only if this rank's usual time for one still fits in the step: the slowest rank reads
      // one, and no rank runs over by a piece.
      double seconds = 0;  // in this step
      do {
        read_piece(pending_.front());
        if (slow_rank_seconds_ > 0)
          std::this_thread::sleep_for(std::chrono::duration<double>(slow_rank_seconds_));
        const auto now = std::chrono::steady_clock::now();
        step_times_.add_call(std::chrono::duration<double>(now - call_started).count());
        ++calls_since_agreement_;
        call_started = now;
        seconds = std::chrono::duration<double>(now - started).count();
      } while (!pending_.empty() && seconds + step_times_.seconds_per_call() <= step_seconds_);
    } catch (...) {
      failure_ = std::current_exception();  // reported to every rank at the next agreement
      step_times_.add_call(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - call_started).count());
    }
    return false;
  }

  void at_agreement() override {
    if (pass_ == Pass::done) return;
    // A rank that is ahead waits for the others sleeping (comm::Communicator::sleeping_barrier), not in the
    // agreement's polling, which on a loaded machine burned CPU its descheduled peer needed.
    const auto arrived = std::chrono::steady_clock::now();
    comm_.sleeping_barrier("dsir: waiting for the other ranks to finish their pieces");
    step_times_.waiting += std::chrono::duration<double>(std::chrono::steady_clock::now() - arrived).count();
    comm_.agree([&] {
      if (failure_) std::rethrow_exception(failure_);
    });
    const auto progress = comm_.allgather(
        RankProgress{pending_.size(), calls_since_agreement_, step_times_.seconds_per_call()});
    calls_since_agreement_ = 0;
    if (std::all_of(progress.begin(), progress.end(), [](const RankProgress& p) { return p.pending == 0; })) {
      pass_read_ = true;  // the next step ends the pass
      return;
    }
    step_seconds_ = 0;
    std::vector<std::uint64_t> pending, starving_below;
    for (const auto& p : progress) {
      step_seconds_ = std::max(step_seconds_, p.seconds_per_call);
      pending.push_back(p.pending);
      // What it would read before the next agreement (the runner's interval at most doubles).
      starving_below.push_back(2 * p.calls_since_agreement + 1);
    }
    if (step_seconds_ < kShortPieceSeconds) step_seconds_ = 0;
    // The collect pass keeps its cut: the ranks' selected lines concatenate in order. A score pass that
    // scores from the feature cache keeps its pieces where their n-grams are.
    if (pass_ == Pass::collect || (pass_ == Pass::score && keeps_features())) return;
    bool mine = false;
    for (const auto& move : piece_lists_.balance(pending, starving_below)) {
      if (move.to == comm_.rank()) step_times_.taken += move.count;
      mine = mine || move.to == comm_.rank() || move.from == comm_.rank();
    }
    if (mine) {
      pending_ = piece_lists_.pending_of(comm_.rank());
      progress_->set_total(bytes_done_ + pending_bytes());
    }
  }

  // Whether the fit pass keeps raw pieces' n-grams for the score pass (dsir.feature_cache): a full run that
  // fits on every raw document (a fit stage scores nothing; a score stage has no fit pass).
  bool keeps_features() const {
    return settings_.stage == Stage::all && settings_.raw_fit >= 1.0 && settings_.feature_cache_bytes > 0;
  }

  double pending_bytes() const {
    const Pieces& pieces = pieces_of(pass_);
    double bytes = 0;
    for (const auto p : pending_) bytes += static_cast<double>(pieces.range(p).end - pieces.range(p).begin);
    return bytes;
  }

  // Reads (or scores from the feature cache) one piece of this rank's pending ones, or only decodes toward
  // it (the piece stays pending).
  void read_piece(std::uint64_t piece) {
    const auto& files = pass_ == Pass::fit_target ? target_files_ : raw_files_;
    const auto& pieces = pass_ == Pass::fit_target ? *target_pieces_ : *raw_pieces_;
    const auto cached = cache_.find(piece);
    if (pass_ == Pass::score && cached != cache_.end()) {
      score_cached(cached->second);
      // A full run keeps the piece for the collect pass, which counts the selected and baseline documents'
      // n-grams from it instead of featurising them again.
      if (settings_.stage != Stage::all) {
        cache_bytes_ -= cached->second.bytes();
        cache_.erase(cached);
      }
    } else if (pass_ == Pass::collect && cached != cache_.end() && in_plain_files(cached->second)) {
      collect_fetched(cached->second);
      cache_bytes_ -= cached->second.bytes();
      cache_.erase(cached);
    } else {
      // One reader per pass: a .zst file's decoder carries on from one piece of it to the next.
      if (!reader_) {
        reader_ = std::make_unique<io::JsonlShard>(files, std::vector<io::ByteRange>{pieces.range(piece)});
      } else {
        reader_->retarget({pieces.range(piece)});
      }
      // A rank entering a single zstd frame mid-way first decodes everything before its piece. In one step
      // that held every other rank at the step's end (a 2 GB file at 2 ranks: ~1 s per pass, while the
      // cuts counted it as work done alongside theirs); in slices of about what reading a piece costs, the
      // others read pieces meanwhile. Only the piece's completion is state: a checkpoint or a resume
      // simply decodes again.
      const std::uint64_t slice = (Pieces::kDecodeOverFeaturise + 1) * settings_.piece_bytes;
      if (reader_->lead_in() > slice) {
        reader_->decode_lead_in(slice);
        return;
      }
      collect_cache_ = pass_ == Pass::collect && cached != cache_.end() ? &cached->second : nullptr;
      collect_cache_index_ = 0;
      caching_ = pass_ == Pass::fit_raw && keeps_features() && cache_bytes_ < settings_.feature_cache_bytes;
      if (caching_) {
        caching_piece_ = CachedPiece{};
        const io::ByteRange range = pieces.range(piece);
        caching_piece_.start(narrow_cache(), range.end - range.begin);
      }
      const Tally before = tally_;
      io::JsonlShard& shard = *reader_;
      while (shard.next_chunk(io::JsonlShard::default_block_bytes,
                              [&](const io::Line& line) { on_line(line, shard); })) {
      }
      if (caching_) {
        const auto now = tally_.to_vector(), then = before.to_vector();
        std::vector<std::uint64_t> diff(now.size());
        for (std::size_t i = 0; i < diff.size(); ++i) diff[i] = now[i] - then[i];
        caching_piece_.tally = Tally::from_vector(diff);
        caching_piece_.tally.fit = 0;
        cache_bytes_ += caching_piece_.bytes();
        cache_.emplace(piece, std::move(caching_piece_));
        caching_ = false;
      }
      if (collect_cache_ != nullptr) {
        collect_cache_ = nullptr;
        cache_bytes_ -= cached->second.bytes();
        cache_.erase(cached);
      }
    }
    const io::ByteRange range = pieces.range(piece);
    bytes_done_ += static_cast<double>(range.end - range.begin);
    progress_->set_done(bytes_done_);
    pending_.erase(pending_.begin());
    finished_.push_back(piece);
  }

  void finalize() override;
  void save_state(engine::StateWriter& state) const override;
  void restore_state(engine::StateReader& state) override;
  std::uint64_t seed() const override { return settings_.seed; }

 private:
  const Pieces& pieces_of(Pass pass) const {
    return pass == Pass::fit_target ? *target_pieces_ : *raw_pieces_;
  }

  // Starts `pass` with the pieces in `done` (global, from a checkpoint) already processed.
  void begin_pass(Pass pass, const std::vector<std::uint64_t>& done) {
    pass_ = pass;
    reader_.reset();
    fetcher_.reset();
    pending_.clear();
    finished_.clear();
    done_before_ = done;
    if (pass == Pass::done) return;
    const Pieces& pieces = pieces_of(pass);
    std::vector<bool> is_done(pieces.count(), false);
    for (const auto piece : done) is_done.at(piece) = true;
    std::vector<std::uint64_t> all_pending;
    // A score-stage shard scores only its share of the raw pieces.
    const std::uint64_t first = pass == Pass::score ? score_pieces_.first : 0;
    const std::uint64_t last = pass == Pass::score ? score_pieces_.second : pieces.count();
    for (std::uint64_t p = first; p < last; ++p) {
      if (!is_done[p]) all_pending.push_back(p);
    }
    std::vector<std::vector<std::uint64_t>> lists(static_cast<std::size_t>(comm_.size()));
    std::size_t fit_raw_pieces = 0;  // in the fit pass's lists: all of them, unless it resumed part-way
    for (const auto& list : fit_raw_lists_) fit_raw_pieces += list.size();
    if (pass == Pass::score && all_pending.size() == pieces.count() && fit_raw_pieces == pieces.count()) {
      // Each rank scores the pieces it read in the fit pass, the ones its feature cache may hold.
      lists = std::move(fit_raw_lists_);
    } else {
      // Rank r takes the r-th contiguous share of the pending pieces (shares of equal estimated cost:
      // reading, plus decoding to skip into a single zstd frame; see Pieces::cuts).
      const auto cut = pieces.cuts(all_pending, comm_.size());
      for (std::size_t r = 0; r < lists.size(); ++r) {
        lists[r].assign(all_pending.begin() + static_cast<std::ptrdiff_t>(cut[r]),
                        all_pending.begin() + static_cast<std::ptrdiff_t>(cut[r + 1]));
      }
    }
    fit_raw_lists_.clear();
    piece_lists_ = PieceLists(pieces, std::move(lists));
    pending_ = piece_lists_.pending_of(comm_.rank());
    const auto& files = pass == Pass::fit_target ? target_files_ : raw_files_;
    featurizer_ = std::make_unique<Featurizer>(settings_, files);
    bytes_done_ = 0;
    progress_ =
        std::make_unique<engine::Progress>(std::string("dsir: ") + pass_label(pass), pending_bytes(), "B");
    if (pass == Pass::collect) {
      // Hand each selected document to the rank that reads its piece in this pass; pieces are shared out
      // in order, so the ranks' selected lines concatenate in (file, offset) order.
      const Pieces& raw = *raw_pieces_;
      const Pieces::Owners owners = raw.owners(comm_.size());
      auto owner = [&](std::uint64_t id) { return owners.of(raw.piece_of(file_of(id), offset_of(id))); };
      selected_ = comm_.exchange(selected_, [&](const comm::Candidate& c) { return owner(c.id); });
      random_ids_ = comm_.exchange(random_ids_, owner);
      std::sort(selected_.begin(), selected_.end(),
                [](const comm::Candidate& a, const comm::Candidate& b) { return a.id < b.id; });
      std::sort(random_ids_.begin(), random_ids_.end());
      selected_cursor_ = random_cursor_ = 0;
      selected_lines_.clear();
      Kokkos::deep_copy(selected_counts_, 0);
      Kokkos::deep_copy(random_counts_, 0);
    }
  }

  void on_line(const io::Line& line, const io::JsonlShard& shard) {
    if (line.byte_offset >= (std::uint64_t{1} << kOffsetBits)) {
      const auto& files = pass_ == Pass::fit_target ? target_files_ : raw_files_;
      throw DataError(files[line.file_index].path + ": byte offset " + std::to_string(line.byte_offset) +
                      " is beyond the 1 TiB per file that document ids support; split the file");
    }
    const std::uint64_t id = document_id(line.file_index, line.byte_offset);
    if (pass_ == Pass::collect) {
      collect(line, shard, id);
      return;
    }
    // A raw document outside the raw_fit sample is not even parsed in the fit pass (the score pass counts
    // it).
    if (pass_ == Pass::fit_raw && settings_.raw_fit < 1.0 &&
        engine::uniform_open01(settings_.seed, DsirStream::subsample, id) >= settings_.raw_fit) {
      return;
    }
    if (!featurizer_->featurize(line, shard, tally_)) return;
    const auto& buckets = featurizer_->buckets();
    switch (pass_) {
      case Pass::fit_target:
        for (const auto b : buckets) ++target_counts_(b);
        ++tally_.fit;
        break;
      case Pass::fit_raw:
        for (const auto b : buckets) ++raw_counts_(b);
        ++tally_.fit;
        // With every document fitted, eligibility is known now: a too-large num_select fails before scoring.
        if (settings_.raw_fit >= 1.0 && num_tokens_of(buckets.size()) >= settings_.min_tokens)
          ++tally_.eligible;
        if (caching_) {
          caching_piece_.append(id, buckets, narrow_cache());
          if (cache_bytes_ + caching_piece_.bytes() > settings_.feature_cache_bytes) {
            caching_ = false;  // over budget: this piece will be read again
            caching_piece_ = CachedPiece{};
          }
        }
        break;
      case Pass::score:
        score(id, buckets.data(), buckets.size());
        break;
      case Pass::collect:
      case Pass::done:
        break;
    }
  }

  // The reference's length: (number of n-grams + n(n-1)/2) // n, i.e. the token count.
  std::int64_t num_tokens_of(std::size_t ngram_count) const {
    const std::int64_t n = settings_.ngrams;
    return (static_cast<std::int64_t>(ngram_count) + n * (n - 1) / 2) / n;
  }

  bool narrow_cache() const { return settings_.num_buckets <= 65536; }

  template <class Bucket>
  void score(std::uint64_t id, const Bucket* buckets, std::size_t count) {
    double log_weight = 0;
    for (std::size_t i = 0; i < count; ++i) log_weight += log_ratio_[buckets[i]];
    const std::int64_t num_tokens = num_tokens_of(count);
    if (settings_.save_weights) weights_.push_back({id, log_weight, num_tokens});
    if (num_tokens < settings_.min_tokens) return;
    ++tally_.eligible;
    const double noise = settings_.top_k ? 0.0 : engine::gumbel(settings_.seed, DsirStream::gumbel, id);
    selection_->push({log_weight + noise, id, log_weight});
    baseline_->push({engine::uniform_open01(settings_.seed, DsirStream::baseline, id), id, log_weight});
  }

  void score_cached(const CachedPiece& piece) {
    Tally fit_tally = piece.tally;
    fit_tally.eligible = 0;  // the fit pass's count; scoring the cached documents below counts them again
    const auto counts = fit_tally.to_vector();
    auto totals = tally_.to_vector();
    for (std::size_t i = 0; i < totals.size(); ++i) totals[i] += counts[i];
    tally_ = Tally::from_vector(totals);
    std::uint64_t begin = 0;
    for (std::size_t i = 0; i < piece.ids.size(); ++i) {
      if (narrow_cache()) {
        score(piece.ids[i], piece.narrow.data() + begin, piece.ends[i] - begin);
      } else {
        score(piece.ids[i], piece.wide.data() + begin, piece.ends[i] - begin);
      }
      begin = piece.ends[i];
    }
  }

  // Only selected and baseline documents are parsed: lines arrive in id order and both id lists are sorted,
  // so two cursors walk them.
  void collect(const io::Line& line, const io::JsonlShard& shard, std::uint64_t id) {
    const bool selected = selected_cursor_ < selected_.size() && selected_[selected_cursor_].id == id;
    const bool random = random_cursor_ < random_ids_.size() && random_ids_[random_cursor_] == id;
    if (!selected && !random) return;
    if (selected) {
      ++selected_cursor_;
      selected_lines_.append(line.bytes.data(), line.bytes.size());
      selected_lines_.push_back('\n');
    }
    if (random) ++random_cursor_;
    if (collect_cache_ != nullptr) {
      // The fit pass kept this piece's n-grams: ids ascend in it as the lines do.
      const CachedPiece& piece = *collect_cache_;
      while (collect_cache_index_ < piece.ids.size() && piece.ids[collect_cache_index_] < id)
        ++collect_cache_index_;
      if (collect_cache_index_ < piece.ids.size() && piece.ids[collect_cache_index_] == id) {
        const std::size_t i = collect_cache_index_;
        const std::uint64_t begin = i == 0 ? 0 : piece.ends[i - 1];
        if (narrow_cache()) {
          count_collected(piece.narrow.data() + begin, piece.ends[i] - begin, selected, random);
        } else {
          count_collected(piece.wide.data() + begin, piece.ends[i] - begin, selected, random);
        }
        return;
      }
    }
    Tally ignored;
    featurizer_->featurize(line, shard, ignored);
    const auto& buckets = featurizer_->buckets();
    count_collected(buckets.data(), buckets.size(), selected, random);
  }

  bool in_plain_files(const CachedPiece& piece) const {
    return std::none_of(piece.ids.begin(), piece.ids.end(),
                        [&](std::uint64_t id) { return raw_files_[file_of(id)].zstd; });
  }

  // The collect pass on a piece the feature cache holds, in plain files: the cache lists the piece's
  // documents (every one that can be selected) with their n-grams, so only the selected lines are read, each
  // by one pread up to the next document's start. Reading the whole piece again cost a copy of every byte
  // (the largest kernel cost of a plain-text run, perf on Brown x64) and a scan for its line ends.
  void collect_fetched(const CachedPiece& piece) {
    if (!fetcher_) fetcher_ = std::make_unique<io::LineFetcher>(raw_files_);
    for (std::size_t i = 0; i < piece.ids.size(); ++i) {
      const std::uint64_t id = piece.ids[i];
      const bool selected = selected_cursor_ < selected_.size() && selected_[selected_cursor_].id == id;
      const bool random = random_cursor_ < random_ids_.size() && random_ids_[random_cursor_] == id;
      if (!selected && !random) continue;
      if (selected) {
        ++selected_cursor_;
        const bool next_in_file = i + 1 < piece.ids.size() && file_of(piece.ids[i + 1]) == file_of(id);
        fetcher_->append_line(file_of(id), offset_of(id), next_in_file ? offset_of(piece.ids[i + 1]) : 0,
                              selected_lines_);
        selected_lines_.push_back('\n');
      }
      if (random) ++random_cursor_;
      const std::uint64_t begin = i == 0 ? 0 : piece.ends[i - 1];
      if (narrow_cache()) {
        count_collected(piece.narrow.data() + begin, piece.ends[i] - begin, selected, random);
      } else {
        count_collected(piece.wide.data() + begin, piece.ends[i] - begin, selected, random);
      }
    }
  }

  template <class Bucket>
  void count_collected(const Bucket* buckets, std::size_t count, bool selected, bool random) {
    if (selected) {
      for (std::size_t i = 0; i < count; ++i) ++selected_counts_(buckets[i]);
    }
    if (random) {
      for (std::size_t i = 0; i < count; ++i) ++random_counts_(buckets[i]);
    }
  }

  void compute_model() {
    target_prob_ = normalized(target_counts_);
    raw_prob_ = normalized(raw_counts_);
    log_ratio_.resize(settings_.num_buckets);
    for (std::size_t j = 0; j < log_ratio_.size(); ++j) {
      log_ratio_[j] = std::log(target_prob_[j] + kLogEpsilon) - std::log(raw_prob_[j] + kLogEpsilon);
    }
  }

  void check_num_select(const Tally& tally) const {
    if (tally.eligible >= settings_.num_select) return;
    throw UsageError("dsir.num_select = " + std::to_string(settings_.num_select) + " but only " +
                     std::to_string(tally.eligible) + " of " + std::to_string(tally.scored) +
                     " raw documents are eligible (at least dsir.min_tokens = " +
                     std::to_string(settings_.min_tokens) + " tokens)");
  }

  // " (all N lines were skipped: X not valid JSON, Y without the text field)" when lines were skipped.
  std::string skipped_lines(const Tally& tally) const {
    const std::uint64_t skipped = tally.bad_json + tally.missing_field;
    if (skipped == 0) return "";
    return " (" + std::to_string(skipped) + " of " + std::to_string(tally.read) +
           " lines were skipped: " + std::to_string(tally.bad_json) + " not valid JSON, " +
           std::to_string(tally.missing_field) + " without a string field '" + settings_.text_field +
           "'; dsir.on_bad_line = skip)";
  }

  std::string config_text(const std::string& key) const { return env_.config.get(key); }

  void end_pass() {
    progress_->finish(comm_.allreduce(bytes_done_, comm::Op::sum), comm_.size());
    // The balance of the pass, in each rank's --debug-log.
    engine::Log::rank_log().debug(
        "dsir: {}: {} pieces or lead-in slices, {:.3f} s reading, {:.3f} s waiting for the other ranks, "
        "{} pieces taken over from slower ranks",
        pass_label(pass_), step_times_.calls, step_times_.reading, step_times_.waiting, step_times_.taken);
    step_times_ = StepTimes{};
    if (pass_ == Pass::fit_raw) fit_raw_lists_ = piece_lists_.lists();
    const Tally pass_tally = tally_.summed(comm_);
    tally_ = Tally{};
    switch (pass_) {
      case Pass::fit_target: {
        target_tally_ = pass_tally;
        comm_.allreduce(target_counts_, comm::Op::sum);
        comm_.agree([&] {
          if (target_tally_.fit == 0)
            throw DataError("the target corpus (dsir.target) holds no documents" +
                            skipped_lines(target_tally_));
        });
        begin_pass(Pass::fit_raw, {});
        break;
      }
      case Pass::fit_raw: {
        raw_fit_docs_ = pass_tally.fit;
        comm_.allreduce(raw_counts_, comm::Op::sum);
        comm_.agree([&] {
          if (raw_fit_docs_ == 0 && settings_.raw_fit < 1.0 &&
              pass_tally.bad_json + pass_tally.missing_field == 0) {
            throw UsageError(
                "dsir.raw_fit = " + config_text("raw_fit") +
                " sampled none of the raw documents to fit the raw model; use a larger fraction or 'all'");
          }
          if (raw_fit_docs_ == 0)
            throw DataError("the raw corpus (dsir.raw) holds no documents to fit" +
                            skipped_lines(pass_tally));
          if (settings_.raw_fit >= 1.0 && settings_.stage == Stage::all) check_num_select(pass_tally);
        });
        compute_model();
        if (settings_.stage == Stage::fit) {
          begin_pass(Pass::done, {});
          break;
        }
        selection_ = std::make_unique<comm::LocalTopK>(settings_.num_select);
        baseline_ = std::make_unique<comm::LocalTopK>(settings_.num_select);
        begin_pass(Pass::score, {});
        break;
      }
      case Pass::score: {
        raw_tally_ = pass_tally;
        if (settings_.stage == Stage::score) {
          end_shard_scoring();
          break;
        }
        comm_.agree([&] { check_num_select(raw_tally_); });
        selected_ = comm::select_global_topk(comm_, selection_->best(), settings_.num_select);
        for (const auto& c : comm::select_global_topk(comm_, baseline_->best(), settings_.num_select)) {
          random_ids_.push_back(c.id);
        }
        selection_.reset();
        baseline_.reset();
        begin_pass(Pass::collect, {});
        break;
      }
      case Pass::collect: {
        comm_.agree([&] {
          if (selected_cursor_ != selected_.size() || random_cursor_ != random_ids_.size()) {
            throw engine::InternalError(
                "dsir: the input changed while it was read (selected documents not found)");
          }
        });
        comm_.allreduce(selected_counts_, comm::Op::sum);
        comm_.allreduce(random_counts_, comm::Op::sum);
        cache_.clear();  // pieces this rank kept but did not read in the collect pass (after a resume)
        cache_bytes_ = 0;
        begin_pass(Pass::done, {});
        break;
      }
      case Pass::done:
        break;
    }
  }

  // Indexes the .jsonl.zst inputs, so that they are split across ranks in decompressed offsets (see the
  // README's dsir section), through dsir.index_cache.
  void index_compressed_inputs() {
    std::unique_ptr<io::ZstdIndexCache> index_cache;
    if (!settings_.index_cache_dir.empty())
      index_cache = std::make_unique<io::ZstdIndexCache>(settings_.index_cache_dir);
    const io::ZstdIndexing target_indexing = io::index_zstd_inputs(comm_, target_files_, index_cache.get());
    // A rank that decoded a file to index it (a frame that does not declare its size) is not given less to
    // read afterwards: indexing ends in a gather that every rank waits at, so the others' time is lost
    // meanwhile anyway, and a smaller share then only made the passes' slowest rank slower (wall time at 2
    // ranks on one single-frame file: 14.2 s with that balancing, 13.5 s without; bench/README.md
    // ## dsir-scale, "Lead-in in slices and the index cache").
    const io::ZstdIndexing raw_indexing = io::index_zstd_inputs(comm_, raw_files_, index_cache.get());
    const std::uint64_t indexed = target_indexing.files + raw_indexing.files;
    if (indexed > 0) {
      const std::uint64_t cached = target_indexing.from_cache + raw_indexing.from_cache;
      engine::Log::user().info(
          "dsir: indexed {} .jsonl.zst file{}{}", indexed, indexed == 1 ? "" : "s",
          index_cache ? ", " + std::to_string(cached) + " from the index cache " + settings_.index_cache_dir
                      : std::string());
      const std::string& failed =
          target_indexing.cache_error.empty() ? raw_indexing.cache_error : target_indexing.cache_error;
      if (!failed.empty()) {
        engine::Log::user().warn(
            "dsir: could not keep .jsonl.zst indexes in dsir.index_cache ({}); the next run indexes again",
            failed);
      }
    }
  }

  // A single-frame .zst file read by several ranks costs each rank after the first a decode of the part
  // before its share in every pass (README, "Compressed shards"); says so once, with the remedy.
  void note_single_frame_shares() const {
    if (comm_.size() == 1) return;
    const Pieces::Owners owners = raw_pieces_->owners(comm_.size());
    std::size_t shared = 0;
    std::string example;
    for (std::uint32_t f = 0; f < raw_files_.size(); ++f) {
      const io::InputFile& file = raw_files_[f];
      if (!file.zstd || !file.indexed || file.frames.size() != 1 || file.stream_size == 0) continue;
      const int first = owners.of(raw_pieces_->piece_of(f, 0));
      const int last = owners.of(raw_pieces_->piece_of(f, file.stream_size - 1));
      if (first == last) continue;
      if (shared++ == 0) example = file.path + " by " + std::to_string(last - first + 1) + " ranks";
    }
    if (shared == 0) return;
    engine::Log::user().info(
        "dsir: {} .jsonl.zst file{} {} one zstd frame read by several ranks ({}): a rank that starts inside "
        "one decodes the part before its share in every pass. Recompressed in independent frames once "
        "(zstd -dc FILE | pzstd -c > NEW), ranks start anywhere in it (1 -> 2 ranks on one 2 GB file: 0.77 "
        "-> 0.92 of the ideal in wall time; README, Compressed shards)",
        shared, shared == 1 ? "" : "s", shared == 1 ? "is" : "are", example);
  }

  void write_raw_weights(io::H5Writer& h5);
  // The target files, then the raw files: the order of input_identities_.
  std::vector<io::InputFile> all_inputs() const {
    std::vector<io::InputFile> files = target_files_;
    files.insert(files.end(), raw_files_.begin(), raw_files_.end());
    return files;
  }

  // --- staged runs (staged.hpp) ---
  // Whether this run fits the model (stage fit, or all without dsir.model) rather than loading one.
  bool fits_model() const {
    return settings_.stage == Stage::fit || (settings_.stage == Stage::all && settings_.model_path.empty());
  }
  void use_model(const Model& model);
  void start_from_model();
  void start_merge();
  void end_shard_scoring();
  Model current_model() const;
  void write_inputs(io::H5Writer& h5) const;
  void write_model_group(io::H5Writer& h5) const;
  void write_doc_metrics(io::H5Writer& h5) const;
  void finalize_stage();

  const jobs::JobEnv& env_;
  const comm::Communicator& comm_;
  Settings settings_;
  std::vector<io::InputFile> target_files_, raw_files_;
  std::vector<std::uint64_t> input_identities_;  // of all_inputs(), recorded in checkpoints
  std::unique_ptr<Pieces> target_pieces_, raw_pieces_;

  Pass pass_ = Pass::fit_target;
  std::vector<std::uint64_t> pending_;   // this rank's pieces still to read in this pass, in order
  std::vector<std::uint64_t> finished_;  // this rank's pieces read in this pass (since it began or resumed)
  std::vector<std::uint64_t> done_before_;  // pieces of this pass done before a resume (global)
  std::unique_ptr<Featurizer> featurizer_;
  std::unique_ptr<io::JsonlShard> reader_;    // this pass's reader, kept from piece to piece
  std::unique_ptr<io::LineFetcher> fetcher_;  // the collect pass' reader of single lines (collect_fetched)
  std::unique_ptr<engine::Progress> progress_;
  double bytes_done_ = 0;
  std::exception_ptr failure_;  // this rank's error in a step, until the next agreement reports it
  struct StepTimes {
    std::uint64_t calls = 0;          // of read_piece
    double reading = 0, waiting = 0;  // seconds in this pass: in read_piece, and waiting at agreements
    std::uint64_t taken = 0;          // pieces moved to this rank (PieceLists::balance)
    double first_call = 0;            // the pass's first call: opening files, first touches of memory

    void add_call(double seconds) {
      if (calls++ == 0) first_call = seconds;
      reading += seconds;
    }
    // A call's usual time (0 until there are two): the first is left out, as setting up made it the
    // slowest, and counting it made the pieces of small ones (the tests' 4 KiB) seem slow enough to read
    // many a step.
    double seconds_per_call() const {
      return calls < 2 ? 0.0 : (reading - first_call) / static_cast<double>(calls - 1);
    }
  } step_times_;
  PieceLists piece_lists_;  // every rank's pieces of this pass, alike on every rank
  // What a rank reports at an agreement.
  struct RankProgress {
    std::uint64_t pending;                // pieces not read yet
    std::uint64_t calls_since_agreement;  // read_piece calls since the last agreement
    double seconds_per_call;              // StepTimes::seconds_per_call
  };
  std::uint64_t calls_since_agreement_ = 0;
  bool pass_read_ = false;        // every rank has read all its pieces of this pass (agreed)
  double slow_rank_seconds_ = 0;  // SKEIN_TEST_DSIR_SLOW_RANK
  double step_seconds_ = 0;       // a step reads pieces for this long: the slowest rank's time per piece
  static constexpr double kShortPieceSeconds = 0.01;
  // The fit pass's final lists, for the score pass that follows in the same run.
  std::vector<std::vector<std::uint64_t>> fit_raw_lists_;
  Tally tally_, target_tally_, raw_tally_;  // tally_: this pass, this rank; the others: global
  std::uint64_t raw_fit_docs_ = 0;

  // target_counts_ / raw_counts_ are this rank's partial counts during their fit pass and global after it.
  HostCounts target_counts_, raw_counts_, selected_counts_, random_counts_;
  std::vector<double> target_prob_, raw_prob_, log_ratio_;
  std::unique_ptr<comm::LocalTopK> selection_, baseline_;
  std::vector<comm::Candidate> selected_;  // this rank's share of the selection (by id from the collect pass)
  std::vector<std::uint64_t> random_ids_;  // this rank's share of the random baseline
  std::size_t selected_cursor_ = 0, random_cursor_ = 0;
  std::string selected_lines_;
  std::vector<WeightEntry> weights_;

  Model loaded_model_;  // the model read from dsir.model (or, in the merge stage, from the shards)
  // Raw pieces the score pass reads, [first, last): all of them, or a score-stage shard's share.
  std::pair<std::uint64_t, std::uint64_t> score_pieces_{0, 0};
  ShardOutput shard_;  // the score stage's result

  std::map<std::uint64_t, CachedPiece> cache_;  // raw pieces this rank read in the fit pass, by piece
  std::uint64_t cache_bytes_ = 0;
  bool caching_ = false;
  CachedPiece caching_piece_;
  const CachedPiece* collect_cache_ = nullptr;  // the collect pass' current piece, if the cache holds it
  std::size_t collect_cache_index_ = 0;         // its first document not before the current line
};

// --- checkpoint state ----------------------------------------------------------------------------------

void save_candidates(engine::StateWriter& state, const std::string& name,
                     const std::vector<comm::Candidate>& cs) {
  std::vector<double> keys, values;
  std::vector<std::uint64_t> ids;
  for (const auto& c : cs) {
    keys.push_back(c.key);
    ids.push_back(c.id);
    values.push_back(c.value);
  }
  state.distributed(name + "_key", keys);
  state.distributed(name + "_id", ids);
  state.distributed(name + "_value", values);
}

std::vector<comm::Candidate> restore_candidates(engine::StateReader& state, const std::string& name) {
  const auto keys = state.distributed_double(name + "_key");
  const auto ids = state.distributed_uint64(name + "_id");
  const auto values = state.distributed_double(name + "_value");
  std::vector<comm::Candidate> cs;
  for (std::size_t i = 0; i < keys.size(); ++i) cs.push_back({keys[i], ids.at(i), values.at(i)});
  return cs;
}

void DsirJob::save_state(engine::StateWriter& state) const {
  state.scalar("pass", static_cast<std::int64_t>(pass_));
  state.scalar("bucket_version", static_cast<std::int64_t>(bucket_version(settings_.hash)));
  state.replicated("input_identities", input_identities_);
  state.scalar("zstd_pieces", kZstdPiecesVersion);
  // Pieces of the current pass already read, by any rank (collect restarts from its beginning).
  std::vector<std::uint64_t> done = done_before_;
  if (pass_ != Pass::collect) {
    const auto finished_everywhere = comm_.allgatherv(finished_);
    done.insert(done.end(), finished_everywhere.begin(), finished_everywhere.end());
    std::sort(done.begin(), done.end());
  } else {
    done.clear();
  }
  state.replicated("done_pieces", done);
  state.replicated("pass_tally",
                   pass_ == Pass::collect ? Tally{}.to_vector() : tally_.summed(comm_).to_vector());
  state.replicated("target_tally", target_tally_.to_vector());
  state.replicated("raw_tally", raw_tally_.to_vector());
  state.scalar("raw_fit_docs", static_cast<std::int64_t>(raw_fit_docs_));
  auto global = [&](const HostCounts& counts, bool partial) {
    auto values = counts_vector(counts);
    if (partial) comm_.allreduce_inplace(values.data(), values.size(), comm::Op::sum);
    return values;
  };
  state.replicated("target_counts", global(target_counts_, pass_ == Pass::fit_target));
  state.replicated("raw_counts", global(raw_counts_, pass_ == Pass::fit_raw));
  if (pass_ == Pass::score) {
    save_candidates(state, "selection", selection_->best());
    save_candidates(state, "baseline", baseline_->best());
  }
  if (pass_ == Pass::collect) {
    save_candidates(state, "selected", selected_);
    state.distributed("random_ids", random_ids_);
  }
  if (settings_.save_weights && (pass_ == Pass::score || pass_ == Pass::collect)) {
    std::vector<std::uint64_t> ids;
    std::vector<double> log_weights;
    std::vector<std::int64_t> tokens;
    for (const auto& w : weights_) {
      ids.push_back(w.id);
      log_weights.push_back(w.log_weight);
      tokens.push_back(w.num_tokens);
    }
    state.distributed("weights_id", ids);
    state.distributed("weights_log_weight", log_weights);
    state.distributed("weights_num_tokens", tokens);
  }
}

void DsirJob::restore_state(engine::StateReader& state) {
  const auto pass = static_cast<Pass>(state.int64_scalar("pass"));
  // Counts from another bucket definition must not be mixed with this one's. Checkpoints from before the
  // version was saved hold version 1 (the only one sha256 has).
  std::int64_t saved_version = 1;
  try {
    saved_version = state.int64_scalar("bucket_version");
  } catch (const std::exception&) {  // agreed: every rank takes this branch
  }
  comm_.agree([&] {
    if (saved_version != bucket_version(settings_.hash)) {
      throw UsageError(
          "cannot resume: the checkpoint counted dsir.hash = " + std::string(to_string(settings_.hash)) +
          " buckets of version " + std::to_string(saved_version) + ", this skein computes version " +
          std::to_string(bucket_version(settings_.hash)) +
          "; run again without --resume, or into a new --out");
    }
  });
  // Pieces are byte ranges of the inputs: a resume on inputs changed since would mix old and new data.
  // Checkpoints from before the identities were recorded have none (every rank takes the same branch).
  std::vector<std::uint64_t> recorded_identities;
  bool identities_recorded = true;
  try {
    recorded_identities = state.replicated_uint64("input_identities");
  } catch (const std::exception&) {
    identities_recorded = false;
  }
  if (identities_recorded) {
    io::check_inputs_unchanged(all_inputs(), input_identities_, recorded_identities, "dsir.target/dsir.raw");
  }
  // Before version 2, a .zst file's pieces were compressed byte ranges: its done pieces mean nothing now.
  std::int64_t zstd_pieces = 1;
  try {
    zstd_pieces = state.int64_scalar("zstd_pieces");
  } catch (const std::exception&) {  // agreed: every rank takes this branch
  }
  comm_.agree([&] {
    const auto is_zstd = [](const io::InputFile& f) { return f.zstd; };
    const bool any_zstd = std::any_of(target_files_.begin(), target_files_.end(), is_zstd) ||
                          std::any_of(raw_files_.begin(), raw_files_.end(), is_zstd);
    if (any_zstd && zstd_pieces != kZstdPiecesVersion) {
      throw UsageError(
          "cannot resume: the checkpoint was written by an older skein that cut .jsonl.zst inputs by "
          "compressed bytes; run again without --resume, or into a new --out");
    }
  });
  const auto done = state.replicated_uint64("done_pieces");
  // Partial sums go to rank 0 only, so that the end-of-pass reduction counts them once.
  const bool keeper = comm_.rank() == 0;
  const Tally pass_tally = Tally::from_vector(state.replicated_uint64("pass_tally"));
  target_tally_ = Tally::from_vector(state.replicated_uint64("target_tally"));
  raw_tally_ = Tally::from_vector(state.replicated_uint64("raw_tally"));
  raw_fit_docs_ = static_cast<std::uint64_t>(state.int64_scalar("raw_fit_docs"));
  const auto target_counts = state.replicated_uint64("target_counts");
  const auto raw_counts = state.replicated_uint64("raw_counts");
  assign_counts(target_counts_,
                pass != Pass::fit_target || keeper ? target_counts : std::vector<std::uint64_t>{});
  assign_counts(raw_counts_, pass != Pass::fit_raw || keeper ? raw_counts : std::vector<std::uint64_t>{});
  if (pass >= Pass::score) compute_model();
  if (pass == Pass::score) {
    selection_ = std::make_unique<comm::LocalTopK>(settings_.num_select);
    baseline_ = std::make_unique<comm::LocalTopK>(settings_.num_select);
    selection_->assign(restore_candidates(state, "selection"));
    baseline_->assign(restore_candidates(state, "baseline"));
  }
  if (pass == Pass::collect) {
    selected_ = restore_candidates(state, "selected");
    random_ids_ = state.distributed_uint64("random_ids");
  }
  if (settings_.save_weights && (pass == Pass::score || pass == Pass::collect)) {
    const auto ids = state.distributed_uint64("weights_id");
    const auto log_weights = state.distributed_double("weights_log_weight");
    const auto tokens = state.distributed_int64("weights_num_tokens");
    weights_.clear();
    for (std::size_t i = 0; i < ids.size(); ++i)
      weights_.push_back({ids[i], log_weights.at(i), tokens.at(i)});
  }
  begin_pass(pass, done);
  tally_ = keeper ? pass_tally : Tally{};
  engine::Log::user().info("dsir: resuming while {} ({} of {} pieces done)", pass_label(pass), done.size(),
                           pass == Pass::done    ? 0
                           : pass == Pass::score ? score_pieces_.second - score_pieces_.first
                                                 : pieces_of(pass).count());
}

// --- outputs -------------------------------------------------------------------------------------------

void DsirJob::write_raw_weights(io::H5Writer& h5) {
  // Weights restored from a checkpoint may sit on any rank: send each to the rank owning its piece, then
  // sort, so that the ranks' parts concatenate in document order.
  const Pieces& raw = *raw_pieces_;
  const Pieces::Owners owners = raw.owners(comm_.size());
  auto entries = comm_.exchange(weights_, [&](const WeightEntry& w) {
    return owners.of(raw.piece_of(file_of(w.id), offset_of(w.id)));
  });
  std::sort(entries.begin(), entries.end(),
            [](const WeightEntry& a, const WeightEntry& b) { return a.id < b.id; });
  std::vector<std::uint32_t> file_index;
  std::vector<std::uint64_t> byte_offset;
  std::vector<double> log_weight;
  std::vector<std::int64_t> num_tokens;
  for (const auto& w : entries) {
    file_index.push_back(file_of(w.id));
    byte_offset.push_back(offset_of(w.id));
    log_weight.push_back(w.log_weight);
    num_tokens.push_back(w.num_tokens);
  }
  h5.write_distributed("/raw/file_index", file_index);
  h5.write_distributed("/raw/byte_offset", byte_offset);
  h5.write_distributed("/raw/log_weight", log_weight);
  h5.write_distributed("/raw/num_tokens", num_tokens);
}

void DsirJob::finalize() {
  if (settings_.stage == Stage::fit || settings_.stage == Stage::score) {
    finalize_stage();
    return;
  }
  const std::vector<double> uniform(settings_.num_buckets, 1.0 / settings_.num_buckets);
  const std::vector<double> raw_smoothed = smoothed(raw_counts_, uniform);
  const double kl_target_raw = kl_divergence(target_prob_, raw_smoothed);
  const double kl_target_selected = kl_divergence(target_prob_, smoothed(selected_counts_, raw_smoothed));
  const double kl_target_random = kl_divergence(target_prob_, smoothed(random_counts_, raw_smoothed));

  // Both files are published together, dsir.h5 last: see io::OutputSet.
  io::OutputSet outputs(comm_, env_.out_dir);
  const std::string jsonl_path = outputs.add("selected.jsonl");
  const std::string h5_path = outputs.add("dsir.h5");
  io::write_concatenated_to(comm_, jsonl_path, selected_lines_);
  const std::uint64_t jsonl_bytes = comm_.allreduce<std::uint64_t>(selected_lines_.size(), comm::Op::sum);

  std::vector<std::uint32_t> file_index;
  std::vector<std::uint64_t> byte_offset;
  std::vector<double> log_weight;
  for (const auto& c : selected_) {
    file_index.push_back(file_of(c.id));
    byte_offset.push_back(offset_of(c.id));
    log_weight.push_back(c.value);
  }

  {
    io::H5Writer h5(comm_, h5_path);
    jobs::write_run_attributes(h5, env_, settings_.seed, "complete");
    h5.set_attribute("/outputs/selected.jsonl", "bytes", jsonl_bytes);
    write_model_group(h5);
    h5.write_distributed("/selected/file_index", file_index);
    h5.write_distributed("/selected/byte_offset", byte_offset);
    h5.write_distributed("/selected/log_weight", log_weight);
    write_inputs(h5);
    if (settings_.save_weights) write_raw_weights(h5);
    const std::string metrics = "/metrics";
    h5.set_attribute(metrics, "kl_target_raw", kl_target_raw);
    h5.set_attribute(metrics, "kl_target_selected", kl_target_selected);
    h5.set_attribute(metrics, "kl_reduction", kl_target_raw - kl_target_selected);
    h5.set_attribute(metrics, "kl_target_random", kl_target_random);
    h5.set_attribute(metrics, "kl_reduction_random", kl_target_raw - kl_target_random);
    h5.set_attribute(metrics, "kl_gain_over_random", kl_target_random - kl_target_selected);
    h5.set_attribute(metrics, "num_selected", static_cast<std::int64_t>(settings_.num_select));
    write_doc_metrics(h5);
    h5.close();
  }
  outputs.commit();

  auto& log = engine::Log::user();
  log.info("dsir: selected {} of {} eligible documents ({} read, {} skipped, {} with invalid UTF-8)",
           settings_.num_select, raw_tally_.eligible, raw_tally_.read,
           raw_tally_.bad_json + raw_tally_.missing_field, raw_tally_.invalid_utf8);
  log.info(
      "dsir: KL(target||raw) = {:.4f}, KL(target||selected) = {:.4f} (reduction {:.4f}); a random selection "
      "of the same size: {:.4f} (reduction {:.4f}), so the selection is {:.4f} closer to the target than "
      "random",
      kl_target_raw, kl_target_selected, kl_target_raw - kl_target_selected, kl_target_random,
      kl_target_raw - kl_target_random, kl_target_random - kl_target_selected);
  log.info("dsir: wrote {}/dsir.h5 and {}/selected.jsonl", env_.out_dir, env_.out_dir);
}

// --- staged runs: fit, score shards, merge (staged.hpp) ----------------------------------------------------

void DsirJob::use_model(const Model& model) {
  loaded_model_ = model;
  assign_counts(target_counts_, model.target_counts);
  assign_counts(raw_counts_, model.raw_counts);
  target_tally_ = Tally::from_vector(model.target_tally);
  raw_fit_docs_ = model.raw_fit_docs;
  // From the counts, as the fitting run computed it: the log ratios are bit for bit the same.
  compute_model();
}

void DsirJob::start_from_model() {
  use_model(read_model(comm_, settings_.model_path, "model", settings_));
  if (settings_.stage == Stage::score) {
    // Shards cut the pieces as ranks do (Pieces::cuts: shares of equal estimated cost), without this run's
    // ranks' indexing work (every shard's run indexes for itself).
    std::vector<std::uint64_t> all(raw_pieces_->count());
    for (std::uint64_t p = 0; p < all.size(); ++p) all[p] = p;
    const auto share =
        Pieces(raw_files_, settings_.piece_bytes)
            .share(all, static_cast<int>(settings_.shard_index), static_cast<int>(settings_.shard_count));
    score_pieces_ = {share.begin, share.end};
    engine::Log::user().info("dsir: scoring shard {} of {} (raw pieces {}..{} of {}) with the model of {}",
                             settings_.shard_index, settings_.shard_count, share.begin, share.end,
                             raw_pieces_->count(), settings_.model_path);
  } else {
    engine::Log::user().info("dsir: scoring with the model of {} (no fitting)", settings_.model_path);
  }
  selection_ = std::make_unique<comm::LocalTopK>(settings_.num_select);
  baseline_ = std::make_unique<comm::LocalTopK>(settings_.num_select);
  begin_pass(Pass::score, {});
}

// Each shard keeps its best num_select candidates by the selection's key and by the baseline's: keys depend
// on the document id alone, so the global best num_select are among the union of the shards' and the merge is
// exact.
void DsirJob::end_shard_scoring() {
  shard_.selection = comm::select_global_topk(comm_, selection_->best(), settings_.num_select);
  shard_.baseline = comm::select_global_topk(comm_, baseline_->best(), settings_.num_select);
  selection_.reset();
  baseline_.reset();
  cache_.clear();
  cache_bytes_ = 0;
  ShardInfo& info = shard_.info;
  info.index = settings_.shard_index;
  info.count = settings_.shard_count;
  info.piece_begin = score_pieces_.first;
  info.piece_end = score_pieces_.second;
  info.piece_count = raw_pieces_->count();
  info.fit_run_id = loaded_model_.fit_run_id;
  for (const auto& [key, value] : selection_settings(env_.config)) info.settings += key + "=" + value + "\n";
  info.tally = raw_tally_.to_vector();
  for (const auto& f : raw_files_) info.raw_sizes.push_back(f.size);
  begin_pass(Pass::done, {});
}

void DsirJob::start_merge() {
  std::vector<std::string> paths;
  for (const auto& f : io::resolve_inputs(comm_, settings_.shard_patterns, "dsir.shards", {".h5"}))
    paths.push_back(f.path);
  const auto shards =
      read_shard_set(comm_, paths, env_.config, raw_files_, raw_pieces_->count(), settings_.save_weights);
  // Every shard carries the model it was scored with (read_shard_set checked that it is the same one).
  use_model(read_model(comm_, shards.front().path, "shards", settings_));
  if (!settings_.model_path.empty()) {
    const Model given = read_model(comm_, settings_.model_path, "model", settings_);
    comm_.agree([&] {
      if (given.fit_run_id != loaded_model_.fit_run_id) {
        throw UsageError("dsir.model = " + settings_.model_path + " is the model of run " + given.fit_run_id +
                         ", but the shards were scored with that of run " + loaded_model_.fit_run_id +
                         "; leave dsir.model empty in the merge (the shards carry their model)");
      }
    });
  }
  std::vector<std::uint64_t> tally(Tally::kFields, 0);
  for (const auto& shard : shards) {
    for (std::size_t i = 0; i < tally.size(); ++i) tally[i] += shard.tally.at(i);
  }
  raw_tally_ = Tally::from_vector(tally);
  comm_.agree([&] { check_num_select(raw_tally_); });
  // Each rank reads its block of shards; their candidates are few (num_select per shard).
  std::vector<comm::Candidate> selection, baseline;
  comm_.agree([&] {
    const auto mine = comm::BlockPartition(shards.size(), comm_.size()).range(comm_.rank());
    for (auto s = mine.begin; s < mine.end; ++s) {
      const std::string& path = shards[s].path;
      for (const auto& c : read_shard_candidates(path, "selection")) selection.push_back(c);
      for (const auto& c : read_shard_candidates(path, "baseline")) baseline.push_back(c);
      if (!settings_.save_weights) continue;
      const ShardWeights w = read_shard_weights(path);
      for (std::size_t i = 0; i < w.file_index.size(); ++i) {
        weights_.push_back(
            {document_id(w.file_index[i], w.byte_offset[i]), w.log_weight[i], w.num_tokens[i]});
      }
    }
  });
  selected_ = comm::select_global_topk(comm_, selection, settings_.num_select);
  for (const auto& c : comm::select_global_topk(comm_, baseline, settings_.num_select))
    random_ids_.push_back(c.id);
  engine::Log::user().info("dsir: merging {} shards scored with the model of run {}", shards.size(),
                           loaded_model_.fit_run_id);
  begin_pass(Pass::collect, {});
}

Model DsirJob::current_model() const {
  Model model;
  model.target_counts = counts_vector(target_counts_);
  model.raw_counts = counts_vector(raw_counts_);
  model.target_tally = target_tally_.to_vector();
  model.raw_fit_docs = raw_fit_docs_;
  if (fits_model()) {
    for (const auto& f : target_files_) model.target_files.push_back(f.path);
    model.fit_run_id = env_.run_id;
  } else {
    model.target_files = loaded_model_.target_files;
    model.fit_run_id = loaded_model_.fit_run_id;
  }
  return model;
}

void DsirJob::write_inputs(io::H5Writer& h5) const {
  std::vector<std::string> raw_paths;
  for (const auto& f : raw_files_) raw_paths.push_back(f.path);
  h5.write_strings("/inputs/raw_files", raw_paths);
  h5.write_strings("/inputs/target_files", current_model().target_files);
}

void DsirJob::write_model_group(io::H5Writer& h5) const {
  std::vector<double> target_log(settings_.num_buckets), raw_log(settings_.num_buckets);
  for (std::size_t j = 0; j < target_log.size(); ++j) {
    target_log[j] = std::log(target_prob_[j] + kLogEpsilon);
    raw_log[j] = std::log(raw_prob_[j] + kLogEpsilon);
  }
  write_model(h5, settings_, current_model(), target_log, raw_log);
}

void DsirJob::write_doc_metrics(io::H5Writer& h5) const {
  const std::string metrics = "/metrics";
  if (settings_.stage != Stage::fit) {
    h5.set_attribute(metrics, "docs_read", static_cast<std::int64_t>(raw_tally_.read));
    h5.set_attribute(metrics, "docs_scored", static_cast<std::int64_t>(raw_tally_.scored));
    h5.set_attribute(metrics, "docs_eligible", static_cast<std::int64_t>(raw_tally_.eligible));
    h5.set_attribute(metrics, "docs_skipped_bad_json", static_cast<std::int64_t>(raw_tally_.bad_json));
    h5.set_attribute(metrics, "docs_skipped_missing_field",
                     static_cast<std::int64_t>(raw_tally_.missing_field));
    h5.set_attribute(metrics, "docs_invalid_utf8", static_cast<std::int64_t>(raw_tally_.invalid_utf8));
  }
  h5.set_attribute(metrics, "docs_raw_fit", static_cast<std::int64_t>(raw_fit_docs_));
  h5.set_attribute(metrics, "target_docs_read", static_cast<std::int64_t>(target_tally_.read));
  h5.set_attribute(metrics, "target_docs_skipped",
                   static_cast<std::int64_t>(target_tally_.bad_json + target_tally_.missing_field));
  h5.set_attribute(metrics, "target_docs_invalid_utf8",
                   static_cast<std::int64_t>(target_tally_.invalid_utf8));
}

// The fit stage writes the model; the score stage one shard's candidates. Only dsir.h5 either way.
void DsirJob::finalize_stage() {
  io::OutputSet outputs(comm_, env_.out_dir);
  const std::string h5_path = outputs.add("dsir.h5");
  {
    io::H5Writer h5(comm_, h5_path);
    jobs::write_run_attributes(h5, env_, settings_.seed, "complete");
    h5.set_attribute("/", "stage", std::string(settings_.stage == Stage::fit ? "fit" : "score"));
    write_model_group(h5);
    write_inputs(h5);
    write_doc_metrics(h5);
    if (settings_.stage == Stage::fit) {
      const std::vector<double> uniform(settings_.num_buckets, 1.0 / settings_.num_buckets);
      h5.set_attribute("/metrics", "kl_target_raw",
                       kl_divergence(target_prob_, smoothed(raw_counts_, uniform)));
    } else {
      write_shard(h5, shard_);
      if (settings_.save_weights) write_raw_weights(h5);
    }
    h5.close();
  }
  outputs.commit();
  auto& log = engine::Log::user();
  if (settings_.stage == Stage::fit) {
    log.info(
        "dsir: fitted the model on {} target and {} raw documents; wrote {}/dsir.h5 (score with "
        "dsir.model = {}/dsir.h5)",
        target_tally_.fit, raw_fit_docs_, env_.out_dir, env_.out_dir);
  } else {
    log.info("dsir: shard {} of {}: scored {} documents ({} eligible); wrote {}/dsir.h5",
             settings_.shard_index, settings_.shard_count, raw_tally_.scored, raw_tally_.eligible,
             env_.out_dir);
  }
}

}  // namespace

std::unique_ptr<engine::Job> make_job(const jobs::JobEnv& env) {
  return std::make_unique<DsirJob>(env);
}

}  // namespace skein::dsir
