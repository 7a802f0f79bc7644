// Timing check for the DSIR featurizer (not a test): MB/s of document text per core for the tokenizer alone,
// tokenizer + n-gram buckets (xxh3, sha256), and tokenizer + buckets + the per-document score
// sum(log_diff[bucket]) the job computes. Single-threaded.
//
//   tokenizer_speed [FILE.jsonl] [--seconds S]     (default /work/shared/data/brown/brown.jsonl)
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "jobs/dsir/ngram_hasher.hpp"
#include "jobs/dsir/tokenizer.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using skein::dsir::HashKind;
using skein::dsir::NgramHasher;
using skein::dsir::Tokenizer;

std::vector<std::string> load_texts(const char* path) {
  simdjson::ondemand::parser parser;
  simdjson::padded_string json = simdjson::padded_string::load(path);
  simdjson::ondemand::document_stream docs = parser.iterate_many(json);
  std::vector<std::string> texts;
  for (auto doc : docs) {
    std::string_view text = doc["text"].get_string();
    texts.emplace_back(text);
  }
  return texts;
}

// Runs per_doc over all texts repeatedly for about `seconds`; reports the median and best pass, since this runs
// on shared, virtualized machines where a mean is easily skewed.
template <class Fn>
void measure(const char* name, const std::vector<std::string>& texts, double seconds, Fn&& per_doc) {
  std::size_t bytes = 0;
  for (const std::string& t : texts) bytes += t.size();
  double sink = 0;
  for (const std::string& t : texts) sink += per_doc(t);  // warm-up pass (fills the sha256 memo)
  std::vector<double> pass_seconds;
  const auto start = Clock::now();
  do {
    const auto t0 = Clock::now();
    for (const std::string& t : texts) sink += per_doc(t);
    pass_seconds.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  } while (std::chrono::duration<double>(Clock::now() - start).count() < seconds);
  std::sort(pass_seconds.begin(), pass_seconds.end());
  const double median = pass_seconds[pass_seconds.size() / 2];
  std::printf("%-46s %8.1f MB/s median, %8.1f best  (%zu passes, checksum %.6g)\n", name, bytes / median / 1e6,
              bytes / pass_seconds.front() / 1e6, pass_seconds.size(), sink);
}

}  // namespace

int main(int argc, char** argv) {
  const char* path = "/work/shared/data/brown/brown.jsonl";
  double seconds = 2.0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
      seconds = std::atof(argv[++i]);
    else
      path = argv[i];
  }
  const std::vector<std::string> texts = load_texts(path);
  std::size_t bytes = 0;
  for (const std::string& t : texts) bytes += t.size();
  std::printf("%s: %zu documents, %.2f MB of text\n", path, texts.size(), bytes / 1e6);

  std::vector<std::string_view> tokens;
  std::vector<std::uint32_t> buckets;
  std::size_t ntok = 0;
  {
    Tokenizer tok(true);
    for (const std::string& t : texts) {
      tok.tokenize(t, tokens);
      ntok += tokens.size();
    }
  }
  std::printf("%zu tokens, %.2f bytes per token\n", ntok, double(bytes) / double(ntok));

  for (bool lower : {true, false}) {
    Tokenizer tok(lower);
    measure(lower ? "tokenize (lowercase)" : "tokenize (no lowercase)", texts, seconds,
            [&](const std::string& t) {
              tok.tokenize(t, tokens);
              return double(tokens.size());
            });
  }

  std::vector<double> log_diff(10000);
  for (std::size_t i = 0; i < log_diff.size(); ++i) log_diff[i] = double(i % 37) * 0.01 - 0.18;
  for (HashKind kind : {HashKind::xxh3, HashKind::sha256}) {
    Tokenizer tok(true);
    NgramHasher hasher(kind, 2, 10000);
    const std::string label = std::string("tokenize + ") + skein::dsir::to_string(kind) + " uni+bigram buckets";
    measure(label.c_str(), texts, seconds, [&](const std::string& t) {
      tok.tokenize(t, tokens);
      buckets.clear();
      hasher.buckets(tokens, buckets);
      return double(buckets.size());
    });
    const std::string label2 = label + " + score";
    measure(label2.c_str(), texts, seconds, [&](const std::string& t) {
      tok.tokenize(t, tokens);
      buckets.clear();
      hasher.buckets(tokens, buckets);
      double s = 0;
      for (std::uint32_t b : buckets) s += log_diff[b];
      return s;
    });
  }
  {
    // sha256 with a cold memo on every pass: what a first look at new text costs.
    Tokenizer tok(true);
    std::size_t total = 0;
    const auto start = Clock::now();
    NgramHasher hasher(HashKind::sha256, 2, 10000);
    for (const std::string& t : texts) {
      tok.tokenize(t, tokens);
      buckets.clear();
      hasher.buckets(tokens, buckets);
      total += buckets.size();
    }
    const double el = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("%-46s %8.1f MB/s   (one pass, %zu buckets)\n", "tokenize + sha256, cold memo", bytes / el / 1e6,
                total);
  }
  return 0;
}
