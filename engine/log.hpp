// Rank-aware logging: rank 0 talks to the user on stderr; any rank can keep a per-rank debug log.
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <string>

namespace skein::engine {

class Log {
 public:
  // `level`: error|warn|info|debug. With a non-empty `debug_dir`, every rank writes
  // `debug_dir/rank-<R>.log` at debug level.
  static void setup(int rank, int size, const std::string& level, const std::string& debug_dir);
  static int rank() { return rank_; }
  // The user-facing logger (rank 0 only; other ranks log to their debug file, if any).
  static spdlog::logger& user();
  // This rank's debug logger (a no-op sink unless a debug dir was given).
  static spdlog::logger& rank_log();

 private:
  static int rank_;
  static std::shared_ptr<spdlog::logger> user_;
  static std::shared_ptr<spdlog::logger> rank_log_;
};

// Rank-0 progress line with rate and ETA. Each rank reports its own share of work; rank 0 extrapolates
// from its own (ranks get equal byte shares), so reporting needs no communication.
class Progress {
 public:
  Progress(std::string label, double total, std::string unit);
  void set_done(double done);
  // When this rank's share of the work changes (work moved between ranks).
  void set_total(double total) { total_ = total; }
  // The final line; `total_all_ranks` (summed over `ranks`) gives the true total and per-rank rate.
  void finish(double total_all_ranks, int ranks);

 private:
  void print(bool final_line, double total_all_ranks = 0, int ranks = 1);
  std::string label_;
  double total_;
  std::string unit_;
  double done_ = 0;
  bool interactive_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
};

// "1.23 GB", "512 kB"
std::string human_bytes(double bytes);
// "1:02:03"
std::string human_duration(double seconds);

}  // namespace skein::engine
