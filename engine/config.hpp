// A job's resolved settings: its INI section plus command-line overrides, checked against the job's keys.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace skein::engine {

// One config key a job accepts. `name` has no section prefix ("num_buckets", not "dsir.num_buckets").
struct ConfigKey {
  std::string name;
  std::string default_value;  // "" with required = true means the user must give it
  std::string help;
  bool required = false;
  bool affects_results = true;  // part of the config hash that --resume compares
};

class Config {
 public:
  Config() = default;

  // Resolves `[section]` keys from `ini_text` (read from `ini_path`, used in messages; empty text for no
  // file) and `overrides` ("KEY" -> "VALUE", already without the "section." prefix; they win over the
  // file). Unknown keys, keys outside the section and missing required keys throw UsageError naming the
  // key, the file and the closest valid key.
  static Config resolve(const std::string& section, const std::vector<ConfigKey>& keys,
                        const std::string& ini_text, const std::string& ini_path,
                        const std::vector<std::pair<std::string, std::string>>& overrides);

  const std::string& section() const { return section_; }
  const std::string& get(const std::string& key) const;
  std::int64_t get_int(const std::string& key, std::int64_t min_value, std::int64_t max_value) const;
  double get_double(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  // Whitespace- or comma-separated list.
  std::vector<std::string> get_list(const std::string& key) const;
  // A byte size: digits with an optional binary suffix k, M, G or T (any case, optionally followed by "B"
  // or "iB"): "65536", "64k", "8M", "1G", "2GiB". Out of [min_value, max_value] is an error.
  std::uint64_t get_bytes(const std::string& key, std::uint64_t min_value = 0,
                          std::uint64_t max_value = std::uint64_t{1} << 50) const;
  // Comma- or whitespace-separated lists ("1,2,3"); an empty value is an empty list.
  std::vector<std::int64_t> get_int_list(const std::string& key, std::int64_t min_value,
                                         std::int64_t max_value) const;
  std::vector<double> get_double_list(const std::string& key) const;
  // Three integers ("64,64,32", also "64x64x32"), or one meaning all three ("128"): grid sizes.
  std::array<std::int64_t, 3> get_int_triple(const std::string& key, std::int64_t min_value,
                                             std::int64_t max_value) const;
  // The value must be one of `choices`.
  const std::string& get_choice(const std::string& key, const std::vector<std::string>& choices) const;

  // The resolved config as INI text (every key, defaults included), stored in every output.
  std::string to_ini() const;
  // FNV-1a over the keys that change results; equal configs hash equal on every rank and machine.
  std::uint64_t results_hash() const;
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  std::string section_;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> affects_results_;
};

// The text of an INI file; UsageError naming the file when it cannot be read.
std::string read_config_file(const std::string& path);

// Splits INI text into the lines of `[section]` (first) and everything else (second), so that a section
// shared by every job (`[comm]`) can sit in a job's config file. Other lines keep their places, so both
// halves parse as the original would.
std::pair<std::string, std::string> split_ini_section(const std::string& text, const std::string& section);

// The candidate nearest to `word` by edit distance ("" when nothing is reasonably close).
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace skein::engine
