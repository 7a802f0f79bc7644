// NgramHasher parity with the DSIR reference's hash_buckets / get_ngram_counts (data-selection 1.0.3), with
// expected values computed by Python 3.11: int(hashlib.sha256(s.encode()).hexdigest(), 16) % B; and skein's
// own xxh3 buckets (version 2) against their definition, computed here from xxHash directly.
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
#include "jobs/dsir/sha256.hpp"
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

// xxh3's range reduction: floor(h * num_buckets / 2^64).
std::uint32_t reduce(std::uint64_t h, std::uint32_t num_buckets) {
  return static_cast<std::uint32_t>((static_cast<unsigned __int128>(h) * num_buckets) >> 64);
}

// The xxh3 n-gram definition, written out independently of NgramHasher: XXH3_64bits of the tokens'
// XXH3_64bits values, each serialised as 8 little-endian bytes; a unigram is its token's XXH3_64bits.
std::uint64_t xxh3_ngram_hash(const std::vector<std::string_view>& ngram) {
  if (ngram.size() == 1) return XXH3_64bits(ngram[0].data(), ngram[0].size());
  std::string bytes;
  for (std::string_view t : ngram) {
    const std::uint64_t h = XXH3_64bits(t.data(), t.size());
    for (int b = 0; b < 8; ++b) bytes.push_back(static_cast<char>((h >> (8 * b)) & 0xFF));
  }
  return XXH3_64bits(bytes.data(), bytes.size());
}

// Expected buckets of `tokens` for `kind`: every n-gram for n = 1..ngrams, in order; sha256 hashes the
// space-joined text with NgramHasher::bucket (checked against Python above), xxh3 uses xxh3_ngram_hash.
std::vector<std::uint32_t> expected_buckets(HashKind kind, int ngrams, std::uint32_t num_buckets,
                                            const std::vector<std::string_view>& tokens) {
  const NgramHasher h(kind, ngrams, num_buckets);
  std::vector<std::uint32_t> expected;
  for (int k = 1; k <= ngrams; ++k) {
    for (std::size_t i = 0; i + static_cast<std::size_t>(k) <= tokens.size(); ++i) {
      const std::vector<std::string_view> ngram(tokens.begin() + static_cast<std::ptrdiff_t>(i),
                                                tokens.begin() + static_cast<std::ptrdiff_t>(i) + k);
      if (kind == HashKind::xxh3) {
        expected.push_back(reduce(xxh3_ngram_hash(ngram), num_buckets));
      } else {
        std::string joined(ngram[0]);
        for (std::size_t j = 1; j < ngram.size(); ++j) joined += " " + std::string(ngram[j]);
        expected.push_back(h.bucket(joined));
      }
    }
  }
  return expected;
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

// The digest's 256-bit integer mod d, against plain Horner's rule with 128-bit division, for moduli up to
// 2^32 - 1 (where the fast reduction's partial sums exceed 64 bits).
TEST(NgramHasher, Sha256BucketIsTheDigestModBuckets) {
  std::mt19937_64 rng(13);
  // Near 2^32 the limb weights 2^(32 k) mod d are small; 2654435769 and 3000000019 give large ones.
  const std::uint32_t moduli[] = {1,           3,           10000,       65536,      1000003,
                                  2147483648u, 2654435769u, 3000000019u, 4294967291u};
  for (std::uint32_t b : moduli) {
    const NgramHasher h(HashKind::sha256, 2, b);
    for (int i = 0; i < 500; ++i) {
      std::string s(static_cast<std::size_t>(rng() % 80), '\0');
      for (char& c : s) c = static_cast<char>(rng());
      std::uint32_t words[8];
      skein::dsir::sha256::digest_words(s, words, skein::dsir::sha256::Backend::portable);
      unsigned __int128 r = 0;
      for (const std::uint32_t w : words) r = ((r << 32) | w) % b;
      EXPECT_EQ(h.bucket(s), static_cast<std::uint32_t>(r)) << b;
    }
  }
}

TEST(NgramHasher, Xxh3BucketIsReducedXxh3) {
  std::mt19937_64 rng(11);
  const std::uint32_t moduli[] = {1, 2, 3, 10000, 65536, 1000003, 4294967291u, 4294967295u};
  for (std::uint32_t b : moduli) {
    const NgramHasher h(HashKind::xxh3, 2, b);
    for (int i = 0; i < 2000; ++i) {
      std::string s(static_cast<std::size_t>(rng() % 300), '\0');
      for (char& c : s) c = static_cast<char>(rng());
      EXPECT_EQ(h.bucket(s), reduce(XXH3_64bits(s.data(), s.size()), b)) << b;
    }
  }
  // The published XXH3 value of the empty input (xxHash's sanity checks).
  EXPECT_EQ(XXH3_64bits("", 0), 0x2D06800538D394C2ull);
  // 0x2D06800538D394C2 * 10000 / 2^64 = 1758.80..., and 755400709.x for 2^32 - 1 (Python integers).
  EXPECT_EQ(NgramHasher(HashKind::xxh3, 1, 10000).bucket(""), 1758u);
  EXPECT_EQ(NgramHasher(HashKind::xxh3, 1, 4294967295u).bucket(""), 755400709u);
}

TEST(NgramHasher, ReferenceSentenceGivesUnigramsThenBigrams) {
  Tokenizer tok(true);
  std::vector<std::string_view> tokens;
  tok.tokenize("Alice went to the store", tokens);
  NgramHasher h(HashKind::sha256, 2, 10000);
  // get_ngram_counts('Alice went to the store').sum() == 9, with these buckets (Python 3.11).
  const std::vector<std::uint32_t> expected = {6720, 5816, 2441, 8288, 9879, 114, 4126, 1087, 3440};
  EXPECT_EQ(hash_all(h, tokens), expected);
  EXPECT_EQ(hash_all(h, tokens), expected);  // again, from the cache
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
    h.buckets({"", "b"}, out);  // an empty token is still a token (sha256: joins with one space, as ' '.join)
    EXPECT_EQ(out, expected_buckets(kind, 3, 10000, {"", "b"}));
    if (kind == HashKind::sha256) EXPECT_EQ(out.back(), h.bucket(" b"));
  }
}

// xxh3 version 2 buckets are a function of the tokens' hashes, not of the joined text: "a b" as a bigram
// and as one string differ, and the bigram's bucket follows the definition for every modulus.
TEST(NgramHasher, Xxh3NgramsHashTheTokenHashes) {
  EXPECT_EQ(skein::dsir::bucket_version(HashKind::xxh3), 2);
  EXPECT_EQ(skein::dsir::bucket_version(HashKind::sha256), 1);
  const std::vector<std::string_view> tokens = {"alice", "went", "to", "the", "store"};
  const std::uint64_t alice = XXH3_64bits("alice", 5), went = XXH3_64bits("went", 4);
  const unsigned char pair[16] = {
      static_cast<unsigned char>(alice),       static_cast<unsigned char>(alice >> 8),
      static_cast<unsigned char>(alice >> 16), static_cast<unsigned char>(alice >> 24),
      static_cast<unsigned char>(alice >> 32), static_cast<unsigned char>(alice >> 40),
      static_cast<unsigned char>(alice >> 48), static_cast<unsigned char>(alice >> 56),
      static_cast<unsigned char>(went),        static_cast<unsigned char>(went >> 8),
      static_cast<unsigned char>(went >> 16),  static_cast<unsigned char>(went >> 24),
      static_cast<unsigned char>(went >> 32),  static_cast<unsigned char>(went >> 40),
      static_cast<unsigned char>(went >> 48),  static_cast<unsigned char>(went >> 56)};
  const std::uint64_t alice_went = XXH3_64bits(pair, 16);
  EXPECT_NE(alice_went, XXH3_64bits("alice went", 10));
  for (std::uint32_t b : {1u, 2u, 10000u, 65536u, 1000003u, 4294967295u}) {
    for (int n = 1; n <= 4; ++n) {
      NgramHasher h(HashKind::xxh3, n, b);
      const auto out = hash_all(h, tokens);
      EXPECT_EQ(out, expected_buckets(HashKind::xxh3, n, b, tokens)) << b << " n=" << n;
      EXPECT_EQ(out[0], reduce(alice, b));
      if (n >= 2) EXPECT_EQ(out[5], reduce(alice_went, b)) << b;
    }
  }
}

// Every n-gram's bucket follows the definition whether the tokens are adjacent in the tokenizer's buffer
// (sha256: hashed in place), detached (joined in scratch space), or served from the sha256 cache.
TEST(NgramHasher, InPlaceCopiedAndMemoizedAgree) {
  std::mt19937 rng(5);
  const char* words[] = {"the", "of", "Σ", "and", "İ", "x", "...", "don't", "日本", "a\tb", "q\xffr", "zz"};
  std::string text;
  for (int i = 0; i < 3000; ++i) {
    text += words[rng() % 12];
    const auto sep = rng() % 6;
    text += sep == 0 ? "  " : sep == 1 ? "\n" : sep == 2 ? "," : sep == 3 ? "\u3000" : " ";
    if (i % 97 == 0) text += std::string(60, 'w') + std::to_string(i) + " ";  // longer than one SHA-256 block
  }
  Tokenizer tok(true);
  std::vector<std::string_view> tokens;
  tok.tokenize(text, tokens);
  ASSERT_GT(tokens.size(), 3000u);
  for (HashKind kind : {HashKind::sha256, HashKind::xxh3}) {
    for (int n = 1; n <= 4; ++n) {
      NgramHasher h(kind, n, 10007);
      const std::vector<std::uint32_t> expected = expected_buckets(kind, n, 10007, tokens);
      EXPECT_EQ(hash_all(h, tokens), expected) << to_string(kind) << " n=" << n;
      EXPECT_EQ(hash_all(h, tokens), expected) << to_string(kind) << " n=" << n << " second pass";
      EXPECT_EQ(hash_all(h, Detached(tokens).views), expected)
          << to_string(kind) << " n=" << n << " detached";
    }
  }
}

// Many more distinct tokens and bigrams than the sha256 cache holds: slots are replaced, results stay exact.
TEST(NgramHasher, CacheReplacementStaysExact) {
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

namespace skein_ngram_hasher_cache_tests {

using skein::dsir::HashKind;
using skein::dsir::NgramHasher;

// Documents of 0 .. 60 tokens drawn from a small vocabulary of 1- to 60-byte words (cached tokens up to 23
// bytes, one-block n-grams up to 55, longer ones hashed directly), so that a document's misses fill some
// batches of 16 and leave partial ones of every size, and repeated new n-grams hit slots still pending in
// the open batch.
std::vector<std::vector<std::string>> random_documents(std::uint64_t seed, int count) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> vocabulary;
  for (int w = 0; w < 400; ++w) {
    const std::size_t length = 1 + rng() % (w % 5 == 0 ? 60 : 12);
    std::string word;
    for (std::size_t i = 0; i < length; ++i) word += static_cast<char>('a' + rng() % 26);
    vocabulary.push_back(word);
  }
  std::vector<std::vector<std::string>> documents(count);
  for (auto& document : documents) {
    const std::size_t length = rng() % 61;
    for (std::size_t i = 0; i < length; ++i) document.push_back(vocabulary[rng() % vocabulary.size()]);
  }
  return documents;
}

// The cache's batched, id-keyed lookups against each n-gram's SHA-256 bucket computed on its own, for 1- to
// 4-grams and two moduli (one above 2^28, the reduction's other path).
TEST(NgramHasher, Sha256CacheMatchesDirectHashing) {
  const auto documents = random_documents(3, 300);
  for (std::uint32_t num_buckets : {10007u, 4000000007u}) {
    for (int n = 1; n <= 4; ++n) {
      NgramHasher h(HashKind::sha256, n, num_buckets);
      for (int pass = 0; pass < 2; ++pass) {
        for (std::size_t d = 0; d < documents.size(); ++d) {
          const std::vector<std::string_view> tokens(documents[d].begin(), documents[d].end());
          EXPECT_EQ(hash_all(h, tokens), expected_buckets(HashKind::sha256, n, num_buckets, tokens))
              << "n=" << n << " B=" << num_buckets << " pass " << pass << " document " << d;
        }
      }
    }
  }
}

// Ids are 32-bit and never reused: started just below 2^32, the cache must clear itself and restart them
// rather than wrap onto ids that older slots still hold; buckets stay exact across the restarts.
TEST(NgramHasher, Sha256CacheIdsRestartBeforeWrapping) {
  const auto documents = random_documents(4, 200);
  for (int n = 2; n <= 3; ++n) {
    NgramHasher h(HashKind::sha256, n, 10000);
    h.restart_cache_ids_for_testing(0xFFFFFFFFu - 3000);
    for (int pass = 0; pass < 3; ++pass) {
      for (std::size_t d = 0; d < documents.size(); ++d) {
        const std::vector<std::string_view> tokens(documents[d].begin(), documents[d].end());
        EXPECT_EQ(hash_all(h, tokens), expected_buckets(HashKind::sha256, n, 10000, tokens))
            << "n=" << n << " pass " << pass << " document " << d;
      }
      h.restart_cache_ids_for_testing(0xFFFFFFFFu - 200 - 100 * pass);
    }
  }
}

}  // namespace skein_ngram_hasher_cache_tests
