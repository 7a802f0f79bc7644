#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace skein::dsir {

// Which hash maps an n-gram to its bucket. sha256 is the reference's (data-selection 1.0.3 `hash_buckets`);
// xxh3 is skein's own, much faster, and gives different buckets.
enum class HashKind { xxh3, sha256 };

// The version of a hash kind's bucket definition, saved with models and checkpoints so that counts from
// different definitions are never mixed. sha256: 1 (the reference's, fixed). xxh3: 2 (version 1, in skein up to
// commit 41e4752, hashed each n-gram's space-joined text; 2 hashes each token once, then an n-gram's token
// hashes).
int bucket_version(HashKind kind);

// "xxh3" or "sha256"; throws std::invalid_argument on anything else.
HashKind parse_hash_kind(std::string_view name);
const char* to_string(HashKind kind);

// Maps n-grams to hash buckets: with sha256 exactly as the reference does, with xxh3 by skein's definition.
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
  // num_buckets (reference: hash_buckets('alice')==6720, hash_buckets('alice went')==114 at 10000), for any
  // n-gram joined by spaces; xxh3 = XXH3_64bits(bytes) % num_buckets, a unigram's bucket.
  std::uint32_t bucket(std::string_view s) const;

  // Appends one bucket per n-gram in the reference's order: every unigram, then every bigram, ... up to
  // `ngrams` (nltk.ngrams, no padding). 'Alice went to the store' lowercased -> 9.
  // sha256: bucket() of the space-joined n-gram; n-grams whose tokens lie one ' ' apart in memory (as
  // Tokenizer leaves them) are hashed in place.
  // xxh3 (version 2): with h(t) = XXH3_64bits(t's bytes), a unigram's bucket is h(t) % num_buckets and an
  // n-gram's, n >= 2, is XXH3_64bits(h(t1) .. h(tn) as 8 little-endian bytes each) % num_buckets.
  void buckets(const std::vector<std::string_view>& tokens, std::vector<std::uint32_t>& out);

  HashKind kind() const;
  int ngrams() const;
  std::uint32_t num_buckets() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skein::dsir
