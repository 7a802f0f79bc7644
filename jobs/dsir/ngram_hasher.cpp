#include "jobs/dsir/ngram_hasher.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "jobs/dsir/sha256.hpp"

// xxHash in header-only mode: no call through the shared library per (short) n-gram; same results.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace skein::dsir {
namespace {

__extension__ typedef unsigned __int128 u128;

// x % d for 64-bit x and 32-bit d by multiplication (Granlund and Montgomery, "Division by invariant integers
// using multiplication", 1994, the round-up method also used by libdivide): two multiplies instead of a
// 64-bit division, which costs tens of cycles on many CPUs. Exact for every x and every d >= 1.
class Modulus {
 public:
  explicit Modulus(std::uint32_t d) : d_(d) {
    int l = 0;  // ceil(log2(d))
    while ((std::uint64_t{1} << l) < d) ++l;
    m_ = static_cast<std::uint64_t>((u128{(std::uint64_t{1} << l) - d} << 64) / d + 1);
    shift1_ = l < 1 ? l : 1;
    shift2_ = l > 1 ? l - 1 : 0;
  }
  std::uint32_t operator()(std::uint64_t x) const {
    const auto t = static_cast<std::uint64_t>((u128{m_} * x) >> 64);
    const std::uint64_t q = (t + ((x - t) >> shift1_)) >> shift2_;  // x / d
    return static_cast<std::uint32_t>(x - q * d_);
  }

 private:
  std::uint64_t m_ = 0;
  std::uint64_t d_;
  int shift1_ = 0;
  int shift2_ = 0;
};

// The digest's state words (its big-endian 256-bit integer, most significant limb first) mod d, as
// sum_i words[i] * (2^(32 (7 - i)) mod d) reduced once: eight independent multiplies instead of a chain of
// eight dependent reductions.
class DigestModulus {
 public:
  explicit DigestModulus(std::uint32_t d) : mod_(d) {
    std::uint64_t power = 1 % d;  // 2^(32 j) mod d for j = 0 .. 7
    for (int j = 7; j >= 0; --j) {
      limb_weight_[j] = power;
      power = mod_(power << 32);
    }
    two64_ = mod_(std::uint64_t{mod_(std::uint64_t{1} << 32)} << 32);  // 2^64 mod d
  }
  std::uint32_t operator()(const std::uint32_t words[8]) const {
    u128 sum = 0;  // < 8 * 2^64
    for (int i = 0; i < 8; ++i) sum += u128{std::uint64_t{words[i]} * limb_weight_[i]};
    const auto high = static_cast<std::uint64_t>(sum >> 64), low = static_cast<std::uint64_t>(sum);
    return mod_(std::uint64_t{mod_(low)} + high * two64_);  // high * two64_ < 8 * 2^32
  }

 private:
  Modulus mod_;
  std::uint64_t limb_weight_[8];
  std::uint64_t two64_;
};

// True when b starts right after a and one ' ', so that a + ' ' + b can be read in place. The byte in between
// is read only when it lies between a's last byte and b's first, both of which are readable.
inline bool one_space_apart(std::string_view a, std::string_view b) {
  return !a.empty() && !b.empty() &&
         reinterpret_cast<std::uintptr_t>(a.data()) + a.size() + 1 ==
             reinterpret_cast<std::uintptr_t>(b.data()) &&
         b.data()[-1] == ' ';
}

// XXH3_64bits of `count` 64-bit token hashes laid out as 8 little-endian bytes each: the xxh3 n-gram hash.
inline std::uint64_t hash_of_hashes(const std::uint64_t* h, std::size_t count) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return XXH3_64bits(h, 8 * count);
#else
  std::string le(8 * count, '\0');
  for (std::size_t i = 0; i < count; ++i)
    for (int b = 0; b < 8; ++b) le[8 * i + b] = static_cast<char>(h[i] >> (8 * b));
  return XXH3_64bits(le.data(), le.size());
#endif
}
// The same with the count known at compile time, so that XXH3's length dispatch folds away.
template <std::size_t Count>
inline std::uint64_t hash_of_hashes(const std::uint64_t* h) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return XXH3_64bits(h, 8 * Count);
#else
  return hash_of_hashes(h, Count);
#endif
}

// An n-gram of up to 55 bytes as the single SHA-256 block it is hashed in: its bytes, 0x80, zeros, and its
// length in bits. The first 56 bytes determine the n-gram (the last non-zero byte among them is the 0x80),
// so they are also its exact key in NgramCache.
struct alignas(64) OneBlock {
  unsigned char bytes[64];
};
constexpr std::size_t kMaxOneBlockBytes = 55;
constexpr std::size_t kKeyBytes = 56;

// Direct-mapped cache of n-gram -> sha256 bucket: one 64-byte slot per entry (the key's 56 bytes, the
// bucket), indexed by XXH3 of the key; a miss computes the bucket and replaces the slot. Replacing, not
// filling up, keeps the cache on the corpus' current vocabulary; small enough to stay in the CPU caches (a
// probe that goes to memory costs about as much as a SHA-256 with the SHA extensions).
class NgramCache {
 public:
#ifndef SKEIN_DSIR_CACHE_BITS
#define SKEIN_DSIR_CACHE_BITS 16
#endif
  static constexpr std::size_t kSlots = std::size_t{1} << SKEIN_DSIR_CACHE_BITS;  // 4 MiB

  NgramCache() : slots_(new Slot[kSlots]()) {}

  static std::size_t slot_of(const OneBlock& block) {
    return static_cast<std::size_t>(XXH3_64bits(block.bytes, kKeyBytes)) & (kSlots - 1);
  }
  void prefetch(std::size_t slot) const {
    __builtin_prefetch(&slots_[slot]);
  }

  // The bucket of `block`'s n-gram, computing it with `hash` on a miss.
  template <class HashFn>
  std::uint32_t find_or_insert(const OneBlock& block, std::size_t slot, HashFn&& hash) {
    Slot& s = slots_[slot];
    if (std::memcmp(s.key, block.bytes, kKeyBytes) == 0) return s.bucket;  // an empty slot has no 0x80
    s.bucket = hash(block);
    std::memcpy(s.key, block.bytes, kKeyBytes);
    return s.bucket;
  }

 private:
  struct alignas(64) Slot {
    unsigned char key[kKeyBytes];
    std::uint32_t bucket;
  };
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace

HashKind parse_hash_kind(std::string_view name) {
  if (name == "xxh3") return HashKind::xxh3;
  if (name == "sha256") return HashKind::sha256;
  throw std::invalid_argument("unknown hash '" + std::string(name) + "' (expected xxh3 or sha256)");
}

int bucket_version(HashKind kind) {
  return kind == HashKind::xxh3 ? 2 : 1;
}

const char* to_string(HashKind kind) {
  return kind == HashKind::xxh3 ? "xxh3" : "sha256";
}

struct NgramHasher::Impl {
  Impl(HashKind k, int n, std::uint32_t b) : kind(k), ngrams(n), num_buckets(b), digest_mod(b) {}

  // xxh3 buckets are floor(h * num_buckets / 2^64) (Lemire's multiply-shift range reduction): one multiply
  // where h % num_buckets takes a chain of three.
  std::uint32_t range(std::uint64_t h) const {
    return static_cast<std::uint32_t>((u128{h} * num_buckets) >> 64);
  }
  std::uint32_t xxh3(std::string_view s) const { return range(XXH3_64bits(s.data(), s.size())); }

  std::uint32_t sha256(std::string_view s) const {
    std::uint32_t words[8];
    sha256::digest_words(s, words);
    return digest_mod(words);
  }

  std::uint32_t bucket(std::string_view s) const { return kind == HashKind::xxh3 ? xxh3(s) : sha256(s); }

  // tokens[i] .. tokens[i + n - 1] joined by single spaces: in place when they are one space apart (as
  // Tokenizer leaves most of them), else copied to scratch space, valid until the next call.
  std::string_view join(const std::vector<std::string_view>& tokens, std::size_t i, std::size_t n) {
    std::size_t k = 1;
    while (k < n && one_space_apart(tokens[i + k - 1], tokens[i + k])) ++k;
    if (k == n) {
      const std::string_view last = tokens[i + n - 1];
      return {tokens[i].data(), static_cast<std::size_t>(last.data() - tokens[i].data()) + last.size()};
    }
    std::size_t size = n - 1;
    for (k = 0; k < n; ++k) size += tokens[i + k].size();
    if (scratch_cap < size) {
      scratch_cap = std::max(size, 2 * scratch_cap);
      scratch.reset(new char[scratch_cap]);
    }
    char* o = scratch.get();
    for (k = 0; k < n; ++k) {
      if (k > 0) *o++ = ' ';
      const std::string_view t = tokens[i + k];
      if (!t.empty()) std::memcpy(o, t.data(), t.size());
      o += t.size();
    }
    return {scratch.get(), size};
  }

  void buckets_xxh3(const std::vector<std::string_view>& tokens, std::uint32_t* out);
  void buckets_sha256(const std::vector<std::string_view>& tokens, std::uint32_t* out);

  HashKind kind;
  int ngrams;
  std::uint32_t num_buckets;
  DigestModulus digest_mod;
  std::unique_ptr<char[]> scratch;
  std::size_t scratch_cap = 0;
  std::vector<std::uint64_t> hashes;
  std::unique_ptr<NgramCache> cache;
};

// xxh3 (bucket version 2): each token is hashed once; an n-gram's bucket hashes its tokens' 64-bit hashes
// (8 little-endian bytes each) instead of its text, so a bigram costs one XXH3 of 16 bytes, with no join and
// no length-dependent branches.
void NgramHasher::Impl::buckets_xxh3(const std::vector<std::string_view>& tokens, std::uint32_t* out) {
  const std::size_t n = tokens.size();
  hashes.resize(n + 1);
  std::uint64_t* const h = hashes.data();
  for (std::size_t i = 0; i < n; ++i) {
    h[i] = XXH3_64bits(tokens[i].data(), tokens[i].size());
    out[i] = range(h[i]);
  }
  out += n;
  for (std::size_t k = 2; k <= static_cast<std::size_t>(ngrams) && k <= n; ++k) {
    if (k == 2) {
      for (std::size_t i = 0; i + 1 < n; ++i) *out++ = range(hash_of_hashes<2>(h + i));
    } else {
      for (std::size_t i = 0; i + k <= n; ++i) *out++ = range(hash_of_hashes(h + i, k));
    }
  }
}

// Every n-gram, in output order, goes through three stages a few positions apart: written into its padded
// SHA-256 block, then (once those byte stores have left the store buffer: reading them back at once as
// 8-byte words stalls store forwarding) hashed to its cache slot, whose line is prefetched, then looked
// up. N-grams longer than one block (rare) are hashed directly.
void NgramHasher::Impl::buckets_sha256(const std::vector<std::string_view>& tokens, std::uint32_t* out) {
  constexpr std::size_t kFillAhead = 16;  // the ring's size, a power of two
  constexpr std::size_t kLocateAhead = 8;
  if (!cache) cache = std::make_unique<NgramCache>();
  const std::size_t n = tokens.size();
  const std::size_t max_k = std::min(static_cast<std::size_t>(ngrams), n);

  struct Stage {
    OneBlock block;
    std::size_t slot;
    std::size_t k, i;  // tokens[i, i + k)
    bool fits;         // at most kMaxOneBlockBytes
  };
  Stage ring[kFillAhead];
  std::size_t fill_k = 1, fill_i = 0;  // the next n-gram to fill
  auto fill = [&](Stage& a) {
    a.k = fill_k;
    a.i = fill_i;
    if (++fill_i + fill_k > n) {
      ++fill_k;
      fill_i = 0;
    }
    std::size_t size = a.k - 1;
    for (std::size_t j = 0; j < a.k; ++j) size += tokens[a.i + j].size();
    a.fits = size <= kMaxOneBlockBytes;
    if (!a.fits) return;
    unsigned char* b = a.block.bytes;
    std::memset(b, 0, 64);
    std::size_t o = 0;
    for (std::size_t j = 0; j < a.k; ++j) {
      if (j > 0) b[o++] = ' ';
      const std::string_view t = tokens[a.i + j];
      if (!t.empty()) std::memcpy(b + o, t.data(), t.size());
      o += t.size();
    }
    b[o] = 0x80;
    const std::uint64_t bits = std::uint64_t{o} * 8;
    b[62] = static_cast<unsigned char>(bits >> 8);
    b[63] = static_cast<unsigned char>(bits);
  };
  auto locate = [&](Stage& a) {
    if (!a.fits) return;
    a.slot = NgramCache::slot_of(a.block);
    cache->prefetch(a.slot);
  };
  auto hash_block = [this](const OneBlock& block) {
    std::uint32_t words[8];
    sha256::digest_padded_block(block.bytes, words);
    return digest_mod(words);
  };

  std::size_t total = 0;
  for (std::size_t k = 1; k <= max_k; ++k) total += n - k + 1;
  for (std::size_t j = 0; j < std::min(total, kFillAhead); ++j) fill(ring[j]);
  for (std::size_t j = 0; j < std::min(total, kLocateAhead); ++j) locate(ring[j]);
  for (std::size_t j = 0; j < total; ++j) {
    if (j + kLocateAhead < total) locate(ring[(j + kLocateAhead) & (kFillAhead - 1)]);
    Stage& a = ring[j & (kFillAhead - 1)];
    out[j] = a.fits ? cache->find_or_insert(a.block, a.slot, hash_block) : sha256(join(tokens, a.i, a.k));
    if (j + kFillAhead < total) fill(a);
  }
}

NgramHasher::NgramHasher(HashKind kind, int ngrams, std::uint32_t num_buckets) {
  if (ngrams < 1) throw std::invalid_argument("ngrams must be at least 1, got " + std::to_string(ngrams));
  if (num_buckets < 1) throw std::invalid_argument("num_buckets must be at least 1");
  impl_ = std::make_unique<Impl>(kind, ngrams, num_buckets);
}

NgramHasher::~NgramHasher() = default;
NgramHasher::NgramHasher(NgramHasher&&) noexcept = default;
NgramHasher& NgramHasher::operator=(NgramHasher&&) noexcept = default;

HashKind NgramHasher::kind() const {
  return impl_->kind;
}
int NgramHasher::ngrams() const {
  return impl_->ngrams;
}
std::uint32_t NgramHasher::num_buckets() const {
  return impl_->num_buckets;
}

std::uint32_t NgramHasher::bucket(std::string_view s) const {
  return impl_->bucket(s);
}

void NgramHasher::buckets(const std::vector<std::string_view>& tokens, std::vector<std::uint32_t>& out) {
  const std::size_t n = tokens.size();
  std::size_t total = 0;
  for (std::size_t k = 1; k <= static_cast<std::size_t>(impl_->ngrams) && k <= n; ++k) total += n - k + 1;
  const std::size_t base = out.size();
  out.resize(base + total);
  if (total == 0) return;
  if (impl_->kind == HashKind::xxh3) {
    impl_->buckets_xxh3(tokens, out.data() + base);
  } else {
    impl_->buckets_sha256(tokens, out.data() + base);
  }
}

}  // namespace skein::dsir
