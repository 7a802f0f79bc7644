#include "jobs/dsir/ngram_hasher.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

// OpenSSL 3 deprecates the SHA256_* functions in favour of EVP, but EVP's provider dispatch costs about twice
// the hash itself on the short strings hashed here (measured: 72 ns vs 154 ns per token). Use them while the
// library has them.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/opensslconf.h>
#include <openssl/sha.h>
#if defined(OPENSSL_NO_DEPRECATED_3_0)
#define SKEIN_DSIR_SHA256_EVP 1
#endif

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

class Sha256 {
 public:
#ifdef SKEIN_DSIR_SHA256_EVP
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_) throw std::bad_alloc();
  }
  ~Sha256() {
    EVP_MD_CTX_free(ctx_);
  }
  void init() {
    EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr);
  }
  void update(std::string_view s) {
    EVP_DigestUpdate(ctx_, s.data(), s.size());
  }
  void final(unsigned char* digest) {
    EVP_DigestFinal_ex(ctx_, digest, nullptr);
  }

 private:
  EVP_MD_CTX* ctx_;
#else
  void init() {
    SHA256_Init(&ctx_);
  }
  void update(std::string_view s) {
    SHA256_Update(&ctx_, s.data(), s.size());
  }
  void final(unsigned char* digest) {
    SHA256_Final(digest, &ctx_);
  }

 private:
  SHA256_CTX ctx_;
#endif
};

// The digest as a big-endian 256-bit integer, mod d: Horner's rule over 32-bit limbs.
std::uint32_t digest_mod(const unsigned char* digest, const Modulus& mod) {
  std::uint64_t r = 0;
  for (int i = 0; i < 32; i += 4) {
    const std::uint32_t limb = (std::uint32_t{digest[i]} << 24) | (std::uint32_t{digest[i + 1]} << 16) |
                               (std::uint32_t{digest[i + 2]} << 8) | std::uint32_t{digest[i + 3]};
    r = mod((r << 32) | limb);
  }
  return static_cast<std::uint32_t>(r);
}

// True when b starts right after a and one ' ', so that a + ' ' + b can be read in place. The byte in between
// is read only when it lies between a's last byte and b's first, both of which are readable.
inline bool one_space_apart(std::string_view a, std::string_view b) {
  return !a.empty() && !b.empty() &&
         reinterpret_cast<std::uintptr_t>(a.data()) + a.size() + 1 ==
             reinterpret_cast<std::uintptr_t>(b.data()) &&
         b.data()[-1] == ' ';
}

constexpr std::uint32_t kNoId = ~std::uint32_t{0};
constexpr std::size_t kMaxMemoTokenBytes = 48;
constexpr std::uint32_t kMaxTokens = 1u << 19;  // ids fit 19 bits
constexpr std::uint32_t kMaxPairs = 1u << 20;

// Open-addressing memo of token -> (id, bucket) with linear probing, keyed by the token's XXH3; the token
// bytes live in one arena. About 24 bytes a slot, at most half full.
class TokenMemo {
 public:
  TokenMemo() { slots_.resize(1u << 12); }

  void prefetch(std::uint64_t h) const { __builtin_prefetch(&slots_[slot_of(h)]); }

  // The token's id and bucket, computing the bucket with `hash` on a miss. Tokens that do not fit get kNoId.
  template <class HashFn>
  std::uint32_t find_or_insert(std::string_view tok, std::uint64_t h, std::uint32_t& bucket, HashFn&& hash) {
    if (tok.size() > kMaxMemoTokenBytes) {
      bucket = hash(tok);
      return kNoId;
    }
    h |= 1;  // 0 marks an empty slot
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = slot_of(h);; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.hash == h && s.len == tok.size() &&
          std::memcmp(arena_.data() + s.offset, tok.data(), tok.size()) == 0) {
        bucket = s.bucket;
        return s.id;
      }
      if (s.hash == 0) {
        bucket = hash(tok);
        if (count_ >= kMaxTokens) return kNoId;
        s = Slot{h, static_cast<std::uint32_t>(arena_.size()), static_cast<std::uint32_t>(tok.size()), bucket,
                 count_};
        arena_.append(tok);
        const std::uint32_t id = count_++;
        if (2 * std::size_t{count_} > slots_.size()) grow();
        return id;
      }
    }
  }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::uint32_t offset = 0;
    std::uint32_t len = 0;
    std::uint32_t bucket = 0;
    std::uint32_t id = 0;
  };

  std::size_t slot_of(std::uint64_t h) const {
    return static_cast<std::size_t>(h >> 20) & (slots_.size() - 1);
  }

  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    const std::size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.hash == 0) continue;
      std::size_t i = slot_of(s.hash);
      while (slots_[i].hash != 0) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  std::string arena_;
  std::uint32_t count_ = 0;
};

// Open-addressing memo of (token id, token id) -> bucket, one 64-bit word a slot: 1 (occupied), the 38-bit id
// pair, the 24-bit bucket. At most half full: 16 MiB for kMaxPairs.
class PairMemo {
 public:
  static constexpr std::uint32_t kMaxBucket = (1u << 24) - 1;

  PairMemo() { slots_.resize(1u << 12); }

  static std::uint64_t key(std::uint32_t a, std::uint32_t b) {
    return ((std::uint64_t{a} << 19) | b) & kKeyMask;  // exact for ids < 2^19
  }

  void prefetch(std::uint64_t key) const { __builtin_prefetch(&slots_[slot_of(key)]); }

  template <class HashFn>
  std::uint32_t find_or_insert(std::uint64_t key, HashFn&& hash) {
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = slot_of(key);; i = (i + 1) & mask) {
      const std::uint64_t s = slots_[i];
      if (((s >> 24) & kKeyMask) == key && s != 0) return static_cast<std::uint32_t>(s & kMaxBucket);
      if (s == 0) {
        const std::uint32_t bucket = hash();
        if (count_ >= kMaxPairs) return bucket;
        slots_[i] = kOccupied | (key << 24) | bucket;
        if (2 * std::size_t{++count_} > slots_.size()) grow();
        return bucket;
      }
    }
  }

 private:
  static constexpr std::uint64_t kKeyMask = (std::uint64_t{1} << 38) - 1;
  static constexpr std::uint64_t kOccupied = std::uint64_t{1} << 63;

  std::size_t slot_of(std::uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> 40) & (slots_.size() - 1);
  }

  void grow() {
    std::vector<std::uint64_t> old(slots_.size() * 2);
    old.swap(slots_);
    const std::size_t mask = slots_.size() - 1;
    for (const std::uint64_t s : old) {
      if (s == 0) continue;
      std::size_t i = slot_of((s >> 24) & kKeyMask);
      while (slots_[i] != 0) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }

  std::vector<std::uint64_t> slots_;
  std::uint32_t count_ = 0;
};

}  // namespace

HashKind parse_hash_kind(std::string_view name) {
  if (name == "xxh3") return HashKind::xxh3;
  if (name == "sha256") return HashKind::sha256;
  throw std::invalid_argument("unknown hash '" + std::string(name) + "' (expected xxh3 or sha256)");
}

const char* to_string(HashKind kind) {
  return kind == HashKind::xxh3 ? "xxh3" : "sha256";
}

struct NgramHasher::Impl {
  Impl(HashKind k, int n, std::uint32_t b) : kind(k), ngrams(n), num_buckets(b), mod(b) {}

  std::uint32_t xxh3(std::string_view s) const { return mod(XXH3_64bits(s.data(), s.size())); }

  std::uint32_t sha256(std::string_view s) const {
    Sha256 sha;
    sha.init();
    sha.update(s);
    unsigned char digest[32];
    sha.final(digest);
    return digest_mod(digest, mod);
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
  Modulus mod;
  std::unique_ptr<char[]> scratch;
  std::size_t scratch_cap = 0;
  std::vector<std::uint64_t> hashes;
  std::vector<std::uint32_t> ids;
  std::unique_ptr<TokenMemo> token_memo;
  std::unique_ptr<PairMemo> pair_memo;
};

// With xxh3 every n-gram is hashed directly: a memo probe would cost as much as the hash.
void NgramHasher::Impl::buckets_xxh3(const std::vector<std::string_view>& tokens, std::uint32_t* out) {
  const std::size_t n = tokens.size();
  for (std::size_t i = 0; i < n; ++i) *out++ = xxh3(tokens[i]);
  if (ngrams >= 2) {
    for (std::size_t i = 0; i + 1 < n; ++i) {
      const std::string_view a = tokens[i], b = tokens[i + 1];
      *out++ = one_space_apart(a, b) ? xxh3({a.data(), a.size() + 1 + b.size()}) : xxh3(join(tokens, i, 2));
    }
  }
  for (std::size_t k = 3; k <= static_cast<std::size_t>(ngrams) && k <= n; ++k) {
    for (std::size_t i = 0; i + k <= n; ++i) *out++ = xxh3(join(tokens, i, k));
  }
}

// Unigrams and bigrams go through the memo in two sweeps, each prefetching the table slot of the entry a few
// positions ahead: the tables outgrow the caches, and a miss to memory costs about as much as a SHA-256.
void NgramHasher::Impl::buckets_sha256(const std::vector<std::string_view>& tokens, std::uint32_t* out) {
  constexpr std::size_t kAhead = 16;
  const std::size_t n = tokens.size();
  if (!token_memo) {
    token_memo = std::make_unique<TokenMemo>();
    if (num_buckets <= PairMemo::kMaxBucket + 1) pair_memo = std::make_unique<PairMemo>();
  }
  auto sha = [this](std::string_view s) { return sha256(s); };

  hashes.resize(n);
  for (std::size_t i = 0; i < n; ++i) hashes[i] = XXH3_64bits(tokens[i].data(), tokens[i].size());
  ids.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) token_memo->prefetch(hashes[i + kAhead]);
    ids[i] = token_memo->find_or_insert(tokens[i], hashes[i], out[i], sha);
  }
  out += n;
  if (ngrams >= 2 && n >= 2) {
    for (std::size_t i = 0; i + 1 < n; ++i) {
      auto direct = [&] { return sha256(join(tokens, i, 2)); };
      if (pair_memo && ids[i] != kNoId && ids[i + 1] != kNoId) {
        if (i + 1 + kAhead < n) pair_memo->prefetch(PairMemo::key(ids[i + kAhead], ids[i + 1 + kAhead]));
        out[i] = pair_memo->find_or_insert(PairMemo::key(ids[i], ids[i + 1]), direct);
      } else {
        out[i] = direct();
      }
    }
    out += n - 1;
  }
  for (std::size_t k = 3; k <= static_cast<std::size_t>(ngrams) && k <= n; ++k) {
    for (std::size_t i = 0; i + k <= n; ++i) *out++ = sha256(join(tokens, i, k));
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
