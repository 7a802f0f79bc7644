// NgramHasher parity with the DSIR reference's hash_buckets / get_ngram_counts (data-selection 1.0.3), with
// expected values computed by Python 3.11: int(hashlib.sha256(s.encode()).hexdigest(), 16) % B.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "jobs/dsir/ngram_hasher.hpp"
#include "jobs/dsir/tokenizer.hpp"

namespace {

using skein::dsir::HashKind;
using skein::dsir::NgramHasher;
using skein::dsir::parse_hash_kind;
using skein::dsir::Tokenizer;

std::vector<std::uint32_t> hash_all(NgramHasher& h, const std::vector<std::string_view>& tokens) {
  std::vector<std::uint32_t> out;
  h.buckets(tokens, out);
  return out;
}

// The same tokens as separate strings, so no two of them are adjacent in memory.
struct Detached {
  explicit Detached(const std::vector<std::string_view>& tokens) {
    for (std::string_view t : tokens) owned.emplace_back(std::string(t) + "#");  // never a ' ' after a token
    for (const std::string& s : owned) views.emplace_back(s.data(), s.size() - 1);
  }
  std::vector<std::string> owned;
  std::vector<std::string_view> views;
};

TEST(NgramHasher, ParsesHashKinds) {
  EXPECT_EQ(parse_hash_kind("xxh3"), HashKind::xxh3);
  EXPECT_EQ(parse_hash_kind("sha256"), HashKind::sha256);
  for (const char* bad : {"", "SHA256", "sha-256", "xxh3 ", "md5", "xxh64"})
    EXPECT_THROW(parse_hash_kind(bad), std::invalid_argument) << bad;
  EXPECT_STREQ(skein::dsir::to_string(HashKind::sha256), "sha256");
  EXPECT_STREQ(skein::dsir::to_string(HashKind::xxh3), "xxh3");
}

TEST(NgramHasher, RejectsBadParameters) {
  EXPECT_THROW(NgramHasher(HashKind::sha256, 0, 10000), std::invalid_argument);
  EXPECT_THROW(NgramHasher(HashKind::sha256, 2, 0), std::invalid_argument);
}

TEST(NgramHasher, ReferenceGoldens) {
  const NgramHasher h(HashKind::sha256, 2, 10000);
  EXPECT_EQ(h.bucket("alice"), 6720u);
  EXPECT_EQ(h.bucket("alice went"), 114u);
}

TEST(NgramHasher, Sha256BucketsMatchPythonForManyModuli) {
  struct Row {
    const char* text;
    std::uint32_t expected[7];
  };
  const std::uint32_t moduli[7] = {1, 2, 7, 10000, 1u << 20, 4294967291u, 4294967295u};
  const Row rows[] = {
      {"alice", {0, 0, 6, 6720, 880272, 3284865880u, 49340120}},
      {"alice went", {0, 0, 3, 114, 923170, 1188494483, 346009369}},
      {"", {0, 1, 1, 6549, 178261, 1969579424, 1514845414}},
      {"a", {0, 1, 1, 3499, 936123, 1194186545, 1326140299}},
      {"the", {0, 0, 6, 8288, 345296, 3367968505u, 631249678}},
      {"went to", {0, 0, 6, 4126, 419166, 1976782811, 4072755801u}},
      {"ὀδυσσεύς", {0, 0, 6, 6356, 708164, 1416247233, 1531168751}},
      {"日本語テキスト", {0, 0, 3, 1370, 72186, 782522425, 2589447540u}},
      {"i\u0307", {0, 1, 0, 6803, 1007219, 411099286, 3155070468u}},
      {"😀 x", {0, 0, 1, 2672, 159776, 3385201699u, 3237223962u}},
  };
  for (int m = 0; m < 7; ++m) {
    const NgramHasher h(HashKind::sha256, 2, moduli[m]);
    for (const Row& r : rows) EXPECT_EQ(h.bucket(r.text), r.expected[m]) << r.text << " mod " << moduli[m];
  }
}

TEST(NgramHasher, Xxh3BucketIsXxh3ModBuckets) {
  std::mt19937_64 rng(11);
  const std::uint32_t moduli[] = {1, 2, 3, 10000, 65536, 1000003, 4294967291u, 4294967295u};
  for (std::uint32_t b : moduli) {
    const NgramHasher h(HashKind::xxh3, 2, b);
    for (int i = 0; i < 2000; ++i) {
      std::string s(static_cast<std::size_t>(rng() % 300), '\0');
      for (char& c : s) c = static_cast<char>(rng());
      EXPECT_EQ(h.bucket(s), XXH3_64bits(s.data(), s.size()) % b) << b;
    }
  }
  // The published XXH3 value of the empty input (xxHash's sanity checks).
  EXPECT_EQ(XXH3_64bits("", 0), 0x2D06800538D394C2ull);
  EXPECT_EQ(NgramHasher(HashKind::xxh3, 1, 4294967295u).bucket(""), 0x2D06800538D394C2ull % 4294967295u);
}

TEST(NgramHasher, ReferenceSentenceGivesUnigramsThenBigrams) {
  Tokenizer tok(true);
  std::vector<std::string_view> tokens;
  tok.tokenize("Alice went to the store", tokens);
  NgramHasher h(HashKind::sha256, 2, 10000);
  // get_ngram_counts('Alice went to the store').sum() == 9, with these buckets (Python 3.11).
  const std::vector<std::uint32_t> expected = {6720, 5816, 2441, 8288, 9879, 114, 4126, 1087, 3440};
  EXPECT_EQ(hash_all(h, tokens), expected);
  EXPECT_EQ(hash_all(h, tokens), expected);  // again, from the memo
  EXPECT_EQ(hash_all(h, Detached(tokens).views), expected);

  NgramHasher h3(HashKind::sha256, 3, 10000);
  std::vector<std::uint32_t> with_trigrams = expected;
  with_trigrams.insert(with_trigrams.end(), {7911, 1579, 9558});
  EXPECT_EQ(hash_all(h3, tokens), with_trigrams);
  EXPECT_EQ(hash_all(h3, Detached(tokens).views), with_trigrams);

  NgramHasher h1(HashKind::sha256, 1, 10000);
  EXPECT_EQ(hash_all(h1, tokens), std::vector<std::uint32_t>(expected.begin(), expected.begin() + 5));
}

TEST(NgramHasher, AppendsAndHandlesShortInputs) {
  for (HashKind kind : {HashKind::sha256, HashKind::xxh3}) {
    NgramHasher h(kind, 3, 10000);
    std::vector<std::uint32_t> out = {42};
    h.buckets({}, out);
    EXPECT_EQ(out, std::vector<std::uint32_t>{42});
    h.buckets({"solo"}, out);
    EXPECT_EQ(out, (std::vector<std::uint32_t>{42, h.bucket("solo")}));
    out.clear();
    h.buckets({"", "b"}, out);  // an empty token still joins with one space, as ' '.join does
    EXPECT_EQ(out, (std::vector<std::uint32_t>{h.bucket(""), h.bucket("b"), h.bucket(" b")}));
  }
}

// Every n-gram's bucket equals bucket() of the space-joined string, whether the tokens are adjacent in the
// tokenizer's buffer (hashed in place), detached (joined in scratch space), or served from the sha256 memo.
TEST(NgramHasher, InPlaceCopiedAndMemoizedAgree) {
  std::mt19937 rng(5);
  const char* words[] = {"the", "of", "Σ", "and", "İ", "x", "...", "don't", "日本", "a\tb", "q\xffr", "zz"};
  std::string text;
  for (int i = 0; i < 3000; ++i) {
    text += words[rng() % 12];
    const auto sep = rng() % 6;
    text += sep == 0 ? "  " : sep == 1 ? "\n" : sep == 2 ? "," : sep == 3 ? "\u3000" : " ";
    if (i % 97 == 0) text += std::string(60, 'w') + std::to_string(i) + " ";  // too long for the memo
  }
  Tokenizer tok(true);
  std::vector<std::string_view> tokens;
  tok.tokenize(text, tokens);
  ASSERT_GT(tokens.size(), 3000u);
  for (HashKind kind : {HashKind::sha256, HashKind::xxh3}) {
    for (int n = 1; n <= 4; ++n) {
      NgramHasher h(kind, n, 10007);
      std::vector<std::uint32_t> expected;
      for (int k = 1; k <= n; ++k) {
        for (std::size_t i = 0; i + static_cast<std::size_t>(k) <= tokens.size(); ++i) {
          std::string joined(tokens[i]);
          for (int j = 1; j < k; ++j) joined += " " + std::string(tokens[i + static_cast<std::size_t>(j)]);
          expected.push_back(h.bucket(joined));
        }
      }
      EXPECT_EQ(hash_all(h, tokens), expected) << to_string(kind) << " n=" << n;
      EXPECT_EQ(hash_all(h, tokens), expected) << to_string(kind) << " n=" << n << " second pass";
      EXPECT_EQ(hash_all(h, Detached(tokens).views), expected)
          << to_string(kind) << " n=" << n << " detached";
    }
  }
}

// More distinct tokens and bigrams than the sha256 memo holds: the overflow is hashed directly.
TEST(NgramHasher, MemoOverflowStaysExact) {
  std::vector<std::string> owned;
  for (int i = 0; i < 1200000; ++i) owned.push_back("t" + std::to_string(i % 700000) + (i % 3 ? "" : "x"));
  std::vector<std::string_view> tokens(owned.begin(), owned.end());
  NgramHasher h(HashKind::sha256, 2, 10000);
  std::vector<std::uint32_t> out;
  for (int pass = 0; pass < 2; ++pass) {
    out.clear();
    h.buckets(tokens, out);
    ASSERT_EQ(out.size(), 2 * tokens.size() - 1);
    for (std::size_t i = 0; i < tokens.size(); i += 997) {
      EXPECT_EQ(out[i], h.bucket(tokens[i])) << i;
      if (i + 1 < tokens.size()) {
        EXPECT_EQ(out[tokens.size() + i], h.bucket(owned[i] + " " + owned[i + 1])) << i;
      }
    }
    EXPECT_EQ(out.back(), h.bucket(owned[owned.size() - 2] + " " + owned.back()));
  }
}

}  // namespace
