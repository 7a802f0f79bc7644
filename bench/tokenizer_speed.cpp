// Timing check for the DSIR featurizer (not a test): MB/s of document text on one core for the tokenizer
// alone, tokenizer + n-gram buckets (xxh3, sha256), and tokenizer + buckets + the per-document score
// sum(log_ratio[bucket]) the job computes.
//
//   g++ -std=c++17 -O2 -DNDEBUG -I. bench/tokenizer_speed.cpp jobs/dsir/tokenizer.cpp jobs/dsir/sha256.cpp
//   jobs/dsir/ngram_hasher.cpp \
//       -o tokenizer_speed -lsimdjson
//   ./tokenizer_speed [FILE.jsonl] [--seconds S]        (default /work/shared/data/brown/brown.jsonl, 2 s
//   each)
//
// Each configuration runs whole passes over the corpus for about S seconds of thread CPU time; the median and
// best pass are printed, as shared virtual machines make single timings noisy.
#include <simdjson.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "jobs/dsir/ngram_hasher.hpp"
#include "jobs/dsir/tokenizer.hpp"

namespace {

using skein::dsir::HashKind;
using skein::dsir::NgramHasher;
using skein::dsir::Tokenizer;

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

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

template <class Fn>
void measure(const char* name, const std::vector<std::string>& texts, std::size_t bytes, std::size_t tokens,
             double seconds, Fn&& per_doc) {
  double sink = 0;
  for (const std::string& t : texts) sink += per_doc(t);  // warm-up pass (fills the sha256 memo)
  std::vector<double> pass_seconds;
  const double start = cpu_seconds();
  do {
    const double t0 = cpu_seconds();
    for (const std::string& t : texts) sink += per_doc(t);
    pass_seconds.push_back(cpu_seconds() - t0);
  } while (cpu_seconds() - start < seconds);
  std::sort(pass_seconds.begin(), pass_seconds.end());
  const double median = pass_seconds[pass_seconds.size() / 2];
  std::printf("%-46s %7.1f MB/s median %7.1f best %6.1f ns/token  (%zu passes, checksum %.6g)\n", name,
              static_cast<double>(bytes) / median / 1e6,
              static_cast<double>(bytes) / pass_seconds.front() / 1e6,
              median / static_cast<double>(tokens) * 1e9, pass_seconds.size(), sink);
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
  std::printf("%s: %zu documents, %.2f MB of text, %zu tokens (%.2f bytes per token)\n", path, texts.size(),
              static_cast<double>(bytes) / 1e6, ntok, static_cast<double>(bytes) / static_cast<double>(ntok));

  for (bool lower : {true, false}) {
    Tokenizer tok(lower);
    measure(lower ? "tokenize (lowercase)" : "tokenize (as is)", texts, bytes, ntok, seconds,
            [&](const std::string& t) {
              tok.tokenize(t, tokens);
              return static_cast<double>(tokens.size());
            });
  }

  std::vector<double> log_ratio(10000);
  for (std::size_t i = 0; i < log_ratio.size(); ++i) log_ratio[i] = static_cast<double>(i % 37) * 0.01 - 0.18;
  for (HashKind kind : {HashKind::xxh3, HashKind::sha256}) {
    Tokenizer tok(true);
    NgramHasher hasher(kind, 2, 10000);
    const std::string label = std::string("tokenize + ") + skein::dsir::to_string(kind) + " 1+2-gram buckets";
    measure(label.c_str(), texts, bytes, ntok, seconds, [&](const std::string& t) {
      tok.tokenize(t, tokens);
      buckets.clear();
      hasher.buckets(tokens, buckets);
      return static_cast<double>(buckets.size());
    });
    const std::string label2 = label + " + score";
    measure(label2.c_str(), texts, bytes, ntok, seconds, [&](const std::string& t) {
      tok.tokenize(t, tokens);
      buckets.clear();
      hasher.buckets(tokens, buckets);
      double s = 0;
      for (std::uint32_t b : buckets) s += log_ratio[b];
      return s;
    });
  }
  {
    // sha256 with an empty memo: the first look at a corpus.
    Tokenizer tok(true);
    NgramHasher hasher(HashKind::sha256, 2, 10000);
    const double t0 = cpu_seconds();
    for (const std::string& t : texts) {
      tok.tokenize(t, tokens);
      buckets.clear();
      hasher.buckets(tokens, buckets);
    }
    const double el = cpu_seconds() - t0;
    std::printf("%-46s %7.1f MB/s (one pass)\n", "tokenize + sha256 1+2-gram buckets, cold memo",
                static_cast<double>(bytes) / el / 1e6);
  }
  return 0;
}
