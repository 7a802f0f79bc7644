#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace skein::dsir {

// Which hash maps an n-gram to its bucket. sha256 is the reference's (data-selection 1.0.3 `hash_buckets`);
// xxh3 is much faster and gives different buckets.
enum class HashKind { xxh3, sha256 };

// "xxh3" or "sha256"; throws std::invalid_argument on anything else.
HashKind parse_hash_kind(std::string_view name);
const char* to_string(HashKind kind);

// Maps n-grams to hash buckets as the reference does.
//
// With sha256, buckets() memoizes: it interns tokens of up to 48 bytes (token -> id, bucket) and, when
// num_buckets <= 2^24, remembers the bucket of each bigram of interned tokens by id pair, so a repeated
// n-gram costs a hash-table probe instead of a SHA-256. The memo is bounded (2^19 tokens, 2^20 bigrams: about
// 70 MiB at most); past that, new n-grams are hashed directly. With xxh3 there is no memo, as a probe would
// cost as much as the hash.
//
// Not thread-safe for buckets() (it keeps scratch space and the memo); bucket() is const and thread-safe.
class NgramHasher {
 public:
  NgramHasher(HashKind kind, int ngrams, std::uint32_t num_buckets);
  ~NgramHasher();
  NgramHasher(NgramHasher&&) noexcept;
  NgramHasher& operator=(NgramHasher&&) noexcept;
  NgramHasher(const NgramHasher&) = delete;
  NgramHasher& operator=(const NgramHasher&) = delete;

  // Bucket of one string: sha256 = SHA-256 of the UTF-8 bytes read as a big-endian 256-bit integer mod
  // num_buckets (reference: hash_buckets('alice')==6720, hash_buckets('alice went')==114 at 10000);
  // xxh3 = XXH3_64bits(bytes) % num_buckets.
  std::uint32_t bucket(std::string_view s) const;

  // Appends one bucket per n-gram in the reference's order: every unigram, then every space-joined
  // bigram, ... up to `ngrams` (nltk.ngrams, no padding). 'Alice went to the store' lowercased -> 9.
  // N-grams whose tokens lie one ' ' apart in memory (as Tokenizer leaves them) are hashed in place.
  void buckets(const std::vector<std::string_view>& tokens, std::vector<std::uint32_t>& out);

  HashKind kind() const;
  int ngrams() const;
  std::uint32_t num_buckets() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skein::dsir
