#include "engine/log.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace skein::engine {

int Log::rank_ = 0;
std::shared_ptr<spdlog::logger> Log::user_;
std::shared_ptr<spdlog::logger> Log::rank_log_;

void Log::setup(int rank, int size, const std::string& level, const std::string& debug_dir) {
  rank_ = rank;
  auto user_sink = rank == 0 ? std::shared_ptr<spdlog::sinks::sink>(std::make_shared<spdlog::sinks::stderr_sink_mt>())
                             : std::make_shared<spdlog::sinks::null_sink_mt>();
  user_ = std::make_shared<spdlog::logger>("skein", user_sink);
  user_->set_pattern("skein: %v");
  user_->set_level(spdlog::level::from_str(level));
  user_->flush_on(spdlog::level::trace);

  std::shared_ptr<spdlog::sinks::sink> rank_sink = std::make_shared<spdlog::sinks::null_sink_mt>();
  if (!debug_dir.empty()) {
    rank_sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(debug_dir + "/rank-" + std::to_string(rank) + ".log",
                                                                    /*truncate=*/true);
  }
  rank_log_ = std::make_shared<spdlog::logger>("rank", rank_sink);
  rank_log_->set_pattern("%Y-%m-%dT%H:%M:%S.%e [" + std::to_string(rank) + "/" + std::to_string(size) + "] %l %v");
  rank_log_->set_level(debug_dir.empty() ? spdlog::level::off : spdlog::level::debug);
  rank_log_->flush_on(spdlog::level::debug);
}

spdlog::logger& Log::user() {
  if (!user_) setup(0, 1, "info", "");
  return *user_;
}

spdlog::logger& Log::rank_log() {
  if (!rank_log_) setup(0, 1, "info", "");
  return *rank_log_;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  int unit = 0;
  while (std::fabs(bytes) >= 1000 && unit < 5) {
    bytes /= 1000;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.2f %s", bytes, units[unit]);
  return text;
}

std::string human_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const long total = std::lround(seconds);
  char text[32];
  std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", total / 3600, total / 60 % 60, total % 60);
  return text;
}

Progress::Progress(std::string label, double total, std::string unit)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      interactive_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

void Progress::set_done(double done) {
  done_ = done;
  if (Log::rank() != 0) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  if (since >= (interactive_ ? 0.5 : 10.0)) {
    last_print_ = now;
    print(false);
  }
}

void Progress::finish(double total_all_ranks, int ranks) {
  if (finished_) return;
  finished_ = true;
  if (Log::rank() != 0) return;
  done_ = total_;
  print(true, total_all_ranks, ranks);
}

void Progress::print(bool final_line, double total_all_ranks, int ranks) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? done_ / elapsed : 0;
  const double percent = total_ > 0 ? 100.0 * done_ / total_ : 100.0;
  const bool bytes = unit_ == "B";
  const std::string amount = bytes ? human_bytes(done_) + " / " + human_bytes(total_)
                                   : fmt::format("{:.0f} / {:.0f} {}", done_, total_, unit_);
  const std::string speed = bytes ? human_bytes(rate) + "/s" : fmt::format("{:.1f} {}/s", rate, unit_);
  std::string line;
  if (final_line) {
    const double per_rank_rate = elapsed > 0 ? total_all_ranks / elapsed / std::max(ranks, 1) : 0;
    line = fmt::format("skein: {}: done, {} in {} ({} per rank)", label_,
                       bytes ? human_bytes(total_all_ranks) : fmt::format("{:.0f} {}", total_all_ranks, unit_),
                       human_duration(elapsed),
                       bytes ? human_bytes(per_rank_rate) + "/s" : fmt::format("{:.1f} {}/s", per_rank_rate, unit_));
  } else {
    const double eta = rate > 0 ? (total_ - done_) / rate : -1;
    line = fmt::format("skein: {}: {:5.1f}%  {}  {}  ETA {}", label_, percent, amount, speed, human_duration(eta));
  }
  if (interactive_) {
    std::fprintf(stderr, "\r%-100s%s", line.c_str(), final_line ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace skein::engine
