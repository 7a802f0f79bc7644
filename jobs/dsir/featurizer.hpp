// One JSONL line -> its hashed n-gram buckets, with the corpus' bad-line policy, and the document tallies.
#pragma once

#include "comm/communicator.hpp"
#include "io/input_files.hpp"
#include "io/json_field.hpp"
#include "io/jsonl_reader.hpp"
#include "jobs/dsir/ngram_hasher.hpp"
#include "jobs/dsir/settings.hpp"
#include "jobs/dsir/tokenizer.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace skein::dsir {

// Document counts of one pass; partial per rank until summed.
struct Tally {
  std::uint64_t read = 0;           // non-empty lines
  std::uint64_t scored = 0;         // documents turned into n-grams
  std::uint64_t bad_json = 0;       // skipped: not valid JSON
  std::uint64_t missing_field = 0;  // skipped: no (string) text field
  std::uint64_t invalid_utf8 = 0;   // scored, with invalid bytes as separators
  std::uint64_t eligible = 0;       // scored with at least min_tokens tokens
  std::uint64_t fit = 0;            // used to fit a model

  static constexpr std::size_t kFields = 7;
  std::vector<std::uint64_t> to_vector() const {
    return {read, scored, bad_json, missing_field, invalid_utf8, eligible, fit};
  }
  static Tally from_vector(const std::vector<std::uint64_t>& v) {
    return {v.at(0), v.at(1), v.at(2), v.at(3), v.at(4), v.at(5), v.at(6)};
  }
  Tally summed(const comm::Communicator& comm) const {
    auto values = to_vector();
    comm.allreduce_inplace(values.data(), values.size(), comm::Op::sum);
    return from_vector(values);
  }
};

class Featurizer {
 public:
  Featurizer(const Settings& settings, const std::vector<io::InputFile>& files)
      : settings_(settings),
        files_(files),
        json_(settings.text_field),
        tokenizer_(settings.lowercase),
        hasher_(settings.hash, settings.ngrams, settings.num_buckets) {}

  // False when the line holds no document (empty, or a bad line that is skipped). A bad line with
  // on_bad_line=error throws DataError "FILE:LINE: what".
  bool featurize(const io::Line& line, const io::JsonlShard& shard, Tally& tally) {
    const io::JsonFieldReader::Status status = json_.read(line, text_);
    if (status == io::JsonFieldReader::Status::empty_line) return false;
    ++tally.read;
    if (status != io::JsonFieldReader::Status::ok) {
      const bool bad_json = status == io::JsonFieldReader::Status::bad_json;
      if (!settings_.skip_bad_lines) {
        const std::string where =
            files_[line.file_index].path + ":" + std::to_string(shard.line_number(line.file_index, line.byte_offset));
        std::string what;
        if (bad_json) {
          what = "not valid JSON (" + json_.error_message() + ")";
        } else if (status == io::JsonFieldReader::Status::missing_field) {
          what = "no field '" + settings_.text_field + "'";
        } else {
          what = "field '" + settings_.text_field + "' is not a string";
        }
        throw engine::DataError(where + ": " + what + " (set dsir.on_bad_line=skip to skip such lines)");
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

 private:
  const Settings& settings_;
  const std::vector<io::InputFile>& files_;
  io::JsonFieldReader json_;
  Tokenizer tokenizer_;
  NgramHasher hasher_;
  std::string text_;
  std::vector<std::string_view> tokens_;
  std::vector<std::uint32_t> buckets_;
};

}  // namespace skein::dsir
