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
// different definitions are never mixed. sha256: 1 (the reference's, fixed). xxh3: 2 (version 1, in skein up
// to commit 41e4752, was XXH3 of each n-gram's space-joined text % num_buckets; 2 hashes each token once,
// then an n-gram's token hashes, and reduces by multiply-shift).
int bucket_version(HashKind kind);

// "xxh3" or "sha256"; throws std::invalid_argument on anything else.
HashKind parse_hash_kind(std::string_view name);
const char* to_string(HashKind kind);

// Maps n-grams to hash buckets: with sha256 exactly as the reference does, with xxh3 by skein's definition.
//
// With sha256, buckets() keeps a cache of token -> bucket (by its bytes) and n-gram -> bucket (by the ids of
// its parts; exact, see Sha256Cache in the .cpp; 32 MiB, replaced on conflict) so that a repeated n-gram costs
// a probe instead of a SHA-256; the misses are compressed 16 at a time in AVX-512 lanes when the CPU has
// them, else one block at a time with its SHA extensions or portable code (sha256.hpp). With xxh3 there is no
// cache: each token is hashed once and each n-gram costs one XXH3 of its tokens' hashes.
//
// Not thread-safe for buckets() (it keeps scratch space and the cache); bucket() is const and thread-safe.
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
  // n-gram joined by spaces; xxh3 = reduce(XXH3_64bits(bytes)), a unigram's bucket, where
  // reduce(h) = floor(h * num_buckets / 2^64).
  std::uint32_t bucket(std::string_view s) const;

  // Appends one bucket per n-gram in the reference's order: every unigram, then every bigram, ... up to
  // `ngrams` (nltk.ngrams, no padding). 'Alice went to the store' lowercased -> 9.
  // sha256: bucket() of the space-joined n-gram; n-grams whose tokens lie one ' ' apart in memory (as
  // Tokenizer leaves them) are copied into their SHA-256 block in one move.
  // xxh3 (version 2): with h(t) = XXH3_64bits(t's bytes), a unigram's bucket is reduce(h(t)) and an
  // n-gram's, n >= 2, is reduce(XXH3_64bits(h(t1) .. h(tn) as 8 little-endian bytes each)).
  void buckets(const std::vector<std::string_view>& tokens, std::vector<std::uint32_t>& out);

  // Tests only: clears the sha256 cache and has it issue its next ids from `next_id`, to exercise the
  // counter's wrap-around (before the 32-bit ids would overflow, the cache is cleared and restarts at 1).
  void restart_cache_ids_for_testing(std::uint32_t next_id);

  HashKind kind() const;
  int ngrams() const;
  std::uint32_t num_buckets() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skein::dsir
