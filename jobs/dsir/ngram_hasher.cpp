#include "jobs/dsir/ngram_hasher.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "jobs/dsir/sha256.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(SKEIN_DSIR_NO_SHANI)
#define SKEIN_DSIR_X86 1  // AVX-512 code compiled with target attributes, run only where sha256.hpp found it
#include <immintrin.h>
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
    small_ = d <= (std::uint32_t{1} << 28);
  }
  // Whether sixteen digests' weighted sums fit 64 bits (d <= 2^28), so that lane_sums16 applies.
  bool small() const { return small_; }
  // The reduction of a sum from lane_sums16.
  std::uint32_t of_sum(std::uint64_t sum) const { return mod_(sum); }
  // sums[l] = sum_i words[i][l] * (2^(32 (7 - i)) mod d) for the 16 digests digest_padded_blocks16 leaves
  // in columns (< 2^63 when small()), all lanes at once: reading the columns back as scalars would stall on
  // store forwarding from the 512-bit stores that wrote them.
#ifdef SKEIN_DSIR_X86
  __attribute__((target("avx512f"))) void lane_sums16(const std::uint32_t words[8][16],
                                                      std::uint64_t sums[16]) const {
    __m512i low = _mm512_setzero_si512(), high = _mm512_setzero_si512();
    for (int i = 0; i < 8; ++i) {
      const __m512i w = _mm512_loadu_si512(words[i]);
      const __m512i weight = _mm512_set1_epi64(static_cast<long long>(limb_weight_[i]));
      low = _mm512_add_epi64(low, _mm512_mul_epu32(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(w)), weight));
      high = _mm512_add_epi64(
          high, _mm512_mul_epu32(_mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(w, 1)), weight));
    }
    _mm512_storeu_si512(sums, low);
    _mm512_storeu_si512(sums + 8, high);
  }
#endif
  std::uint32_t operator()(const std::uint32_t words[8]) const {
    if (small_) {  // each product < 2^60, their sum < 2^63: one reduction
      std::uint64_t sum = 0;
      for (int i = 0; i < 8; ++i) sum += std::uint64_t{words[i]} * limb_weight_[i];
      return mod_(sum);
    }
    u128 sum = 0;  // < 8 * 2^64
    for (int i = 0; i < 8; ++i) sum += u128{std::uint64_t{words[i]} * limb_weight_[i]};
    const auto high = static_cast<std::uint64_t>(sum >> 64), low = static_cast<std::uint64_t>(sum);
    return mod_(std::uint64_t{mod_(low)} + high * two64_);  // high * two64_ < 8 * 2^32
  }

 private:
  Modulus mod_;
  std::uint64_t limb_weight_[8];
  std::uint64_t two64_;
  bool small_;  // d <= 2^28, so the limb weights are < 2^28
};

// Copies n <= 64 bytes with a few fixed-size (overlapping) moves instead of a call to memcpy: n-grams are
// copied on every cache miss, and their lengths are short and vary at random.
inline void copy_short(unsigned char* dst, const char* src, std::size_t n) {
  if (n >= 8) {
    for (std::size_t i = 0; i + 8 < n; i += 8) std::memcpy(dst + i, src + i, 8);
    std::memcpy(dst + n - 8, src + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(dst, src, 4);
    std::memcpy(dst + n - 4, src + n - 4, 4);
  } else if (n > 0) {
    dst[0] = static_cast<unsigned char>(src[0]);
    dst[n >> 1] = static_cast<unsigned char>(src[n >> 1]);
    dst[n - 1] = static_cast<unsigned char>(src[n - 1]);
  }
}

inline std::uint64_t load64(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // native byte order: it changes which hash, not correctness
}
inline std::uint64_t load32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

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

// The longest n-gram hashed in one SHA-256 block: its bytes, 0x80, zeros, its length in bits (8 bytes).
constexpr std::size_t kMaxOneBlockBytes = 55;

// The sha256 bucket cache. Exactness does not rest on any hash: every cached token and n-gram gets an id,
// unique over the cache's lifetime (a 32-bit counter; before it would wrap, both tables are cleared and it
// restarts), and
// - a token's slot holds its bytes, compared in full on a probe (tokens of up to 23 bytes are cached);
// - an n-gram's slot (n >= 2) is keyed by (id of its first n - 1 tokens as an (n-1)-gram, id of its last
//   token): the ids identify those strings exactly, so equal keys mean equal n-grams, and a key compare
//   (8 bytes) replaces the 56-byte compare of the padded block and its XXH3 the cache had before.
// Token and n-gram ids come from one counter, so a bigram id never equals a token id. A replaced slot's id
// is never issued again, so n-grams keyed on it simply miss. Both tables replace on conflict (below), which
// keeps them on the corpus' current vocabulary.
//
// Misses are batched: each gets its id at once (so longer n-grams can be keyed on it) and its padded block
// joins a batch of 16, compressed together in AVX-512 lanes (sha256::digest_padded_blocks16) when the batch
// is full and at the end of each document. Ids are issued in batch order, so a probe that hits a slot whose
// id is in the open batch (id >= first_id) knows its bucket is pending and copies it at the flush.
struct SlotHead {
  std::uint32_t id;  // 0: empty
  std::uint32_t bucket;
};
constexpr std::size_t kMaxCachedTokenBytes = 23;
struct alignas(32) TokenSlot {       // bytes and size first: the 24-byte key a vector compare reads
  char bytes[kMaxCachedTokenBytes];  // zero after `size`
  std::uint8_t size;
  SlotHead head;
};
struct alignas(16) NgramSlot {
  SlotHead head;
  std::uint64_t key;  // (prefix id << 32) | last token id; 0: empty (ids start at 1)
};
// The tables are set-associative, one 64-byte cache line per set (a probe costs one line either way):
// 2 tokens or 4 n-grams; a miss replaces the way with the oldest id (an empty way's is 0), so that two hot
// entries whose hashes collide no longer evict each other, and a token keeps its id (on which all its
// n-grams' keys rest) for longer.
constexpr int kTokenWays = 2, kNgramWays = 4;
struct alignas(64) TokenSet {
  TokenSlot way[kTokenWays];
};
struct alignas(64) NgramSet {
  NgramSlot way[kNgramWays];
};
template <class Set>
auto* oldest_way(Set& set) {
  auto* oldest = &set.way[0];
  for (auto& w : set.way)
    if (w.head.id < oldest->head.id) oldest = &w;
  return oldest;
}

#ifndef SKEIN_DSIR_TOKEN_CACHE_BITS
#define SKEIN_DSIR_TOKEN_CACHE_BITS 19
#endif
#ifndef SKEIN_DSIR_NGRAM_CACHE_BITS
#define SKEIN_DSIR_NGRAM_CACHE_BITS 20
#endif

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// A zeroed array of `count` sets, in transparent huge pages where the kernel gives them on request: probes
// land anywhere in several MiB, and with 4 KiB pages most of them (and their prefetches) would also miss the
// TLB and wait for a page walk.
template <class Set>
std::unique_ptr<Set[], FreeDeleter> allocate_table(std::size_t count) {
  constexpr std::size_t kHugePage = std::size_t{2} << 20;
  const std::size_t bytes = sizeof(Set) * count;
  const std::size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, rounded);
  if (p == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE) && !defined(SKEIN_DSIR_NO_THP)
  ::madvise(p, rounded, MADV_HUGEPAGE);  // advice only: 4 KiB pages if refused
#endif
  std::memset(p, 0, bytes);
  return std::unique_ptr<Set[], FreeDeleter>(static_cast<Set*>(p));
}

class Sha256Cache {
 public:
  static constexpr int kTokenBits = SKEIN_DSIR_TOKEN_CACHE_BITS;  // 16 MiB
  static constexpr int kNgramBits = SKEIN_DSIR_NGRAM_CACHE_BITS;  // 16 MiB
  static constexpr std::size_t kTokenSets = (std::size_t{1} << kTokenBits) / kTokenWays;
  static constexpr std::size_t kNgramSets = (std::size_t{1} << kNgramBits) / kNgramWays;
  static constexpr std::size_t kLanes = 16;

  Sha256Cache()
      : tokens_(allocate_table<TokenSet>(kTokenSets)),
        ngrams_(allocate_table<NgramSet>(kNgramSets)),
        lanes_pay_(sha256::resolved16(sha256::Backend::automatic) == sha256::Backend::avx512) {}

  // Makes room for `count` new ids: clears both tables and restarts the counter if they would wrap.
  void reserve_ids(std::uint64_t count) {
    if (std::uint64_t{first_id_} + batch_size_ + count + kLanes < std::uint64_t{1} << 32) return;
    clear();
    first_id_ = 1;
  }
  // Clears the tables and issues ids from `id` on (tests of the wrap-around). With the batch empty only.
  void restart_ids(std::uint32_t id) {
    clear();
    first_id_ = id;
  }

  // A hash of a token of 1 .. 23 bytes for its slot: its bytes in at most three overlapping 8-byte loads (or
  // two 4-byte ones, or three bytes), mixed by one 64 x 64 -> 128-bit multiply (wyhash's "mum"). Cheaper than
  // XXH3's call and length dispatch; exactness does not rest on it (a probe compares the bytes).
  static std::uint64_t token_hash(std::string_view t) {
    const char* p = t.data();
    const std::size_t n = t.size();
    std::uint64_t a, b;
    if (n >= 8) {
      a = load64(p);
      b = load64(p + n - 8);
      if (n > 16) a ^= load64(p + 8) * 0x9E3779B97F4A7C15ULL;
    } else if (n >= 4) {
      a = load32(p);
      b = load32(p + n - 4);
    } else {
      a = (std::uint64_t{static_cast<unsigned char>(p[0])} << 16) |
          (std::uint64_t{static_cast<unsigned char>(p[n >> 1])} << 8) | static_cast<unsigned char>(p[n - 1]);
      b = 0;
    }
    const u128 m = u128{a ^ 0xA0761D6478BD642FULL ^ n} * (b ^ 0xE7037ED1A0B428DBULL);
    return static_cast<std::uint64_t>(m) ^ static_cast<std::uint64_t>(m >> 64);
  }
  TokenSet& token_set(std::uint64_t hash) const { return tokens_[hash & (kTokenSets - 1)]; }
  static std::uint64_t ngram_key(std::uint32_t prefix_id, std::uint32_t last_id) {
    return (std::uint64_t{prefix_id} << 32) | last_id;
  }
  NgramSet& ngram_set(std::uint64_t key) const {
    return ngrams_[(key * 0x9E3779B97F4A7C15ULL) >> (64 - (kNgramBits - 2))];
  }

  // Whether the token probes use AVX-512 (then the token hash is Avx512TokenProbe's, for the table's life).
  bool wide_probes() const { return lanes_pay_; }

  // The id the next miss gets.
  std::uint32_t next_id() const { return first_id_ + batch_size_; }
  // Whether a slot's bucket is still being computed in the open batch.
  bool pending(const SlotHead& head) const { return head.id >= first_id_; }
  // A hit on a pending slot: out[out_index] is copied from its miss at the flush.
  void copy_at_flush(std::uint32_t out_index, const SlotHead& head) {
    copies_.push_back({out_index, head.id - first_id_});
  }

  // A miss: the next id's n-gram tokens[i .. i + k) (`bytes` long, at most kMaxOneBlockBytes) goes into the
  // batch; its bucket goes to out[out_index] and, if the slot still holds that id then, to `slot`.
  template <class Flush>
  void add_miss(const std::vector<std::string_view>& tokens, std::size_t i, std::size_t k, std::size_t bytes,
                std::uint32_t out_index, SlotHead* slot, Flush&& flush) {
    unsigned char* b = blocks_ + 64 * batch_size_;
    std::memset(b, 0, 64);
    std::size_t o = 0;
    // In one move when the tokens lie one space apart in memory (as Tokenizer leaves most of them).
    std::size_t j = 1;
    while (j < k && one_space_apart(tokens[i + j - 1], tokens[i + j])) ++j;
    if (j == k) {
      copy_short(b, tokens[i].data(), bytes);
      o = bytes;
    } else {
      for (j = 0; j < k; ++j) {
        if (j > 0) b[o++] = ' ';
        const std::string_view t = tokens[i + j];
        copy_short(b + o, t.data(), t.size());
        o += t.size();
      }
    }
    b[o] = 0x80;
    const std::uint64_t bits = std::uint64_t{bytes} * 8;
    b[62] = static_cast<unsigned char>(bits >> 8);
    b[63] = static_cast<unsigned char>(bits);
    out_index_[batch_size_] = out_index;
    slot_[batch_size_] = slot;
#ifdef SKEIN_DSIR_STATS
    ++stat_miss[k > 1];
#endif
    if (++batch_size_ == kLanes) flush();
  }

  // Compresses the open batch, writes its buckets to `out` and to the slots that still hold their ids, and
  // resolves the copies.
  void flush(std::uint32_t* out, const DigestModulus& modulus) {
    if (batch_size_ == 0) return;
#ifdef SKEIN_DSIR_STATS
    ++stat_flush[batch_size_ == kLanes];
#endif
    // One 16-lane compression costs about as much as 7 single ones: fewer misses go one at a time.
    if (lanes_pay_ && batch_size_ >= 7) {
      alignas(64) std::uint32_t words[8][kLanes];
      sha256::digest_padded_blocks16(blocks_, words);
#ifdef SKEIN_DSIR_X86
      if (modulus.small()) {
        alignas(64) std::uint64_t sums[kLanes];
        modulus.lane_sums16(words, sums);
        for (std::uint32_t m = 0; m < batch_size_; ++m) finish(out, m, modulus.of_sum(sums[m]));
      } else
#endif
      {
        for (std::uint32_t m = 0; m < batch_size_; ++m) {
          std::uint32_t lane[8];
          for (int w = 0; w < 8; ++w) lane[w] = words[w][m];
          finish(out, m, modulus(lane));
        }
      }
    } else {
      for (std::uint32_t m = 0; m < batch_size_; ++m) {
        std::uint32_t lane[8];
        sha256::digest_padded_block(blocks_ + 64 * m, lane);
        finish(out, m, modulus(lane));
      }
    }
    for (const auto& c : copies_) out[c.first] = out[out_index_[c.second]];
    copies_.clear();
    first_id_ += batch_size_;
    batch_size_ = 0;
  }

 private:
  void finish(std::uint32_t* out, std::uint32_t m, std::uint32_t bucket) {
    out[out_index_[m]] = bucket;
    if (slot_[m] != nullptr && slot_[m]->id == first_id_ + m) slot_[m]->bucket = bucket;
  }

  void clear() {
    std::memset(static_cast<void*>(tokens_.get()), 0, sizeof(TokenSet) * kTokenSets);
    std::memset(static_cast<void*>(ngrams_.get()), 0, sizeof(NgramSet) * kNgramSets);
  }

  std::unique_ptr<TokenSet[], FreeDeleter> tokens_;
  std::unique_ptr<NgramSet[], FreeDeleter> ngrams_;
  bool lanes_pay_;
  std::uint32_t first_id_ = 1;  // id of the batch's first miss; every id below it has its bucket
  std::uint32_t batch_size_ = 0;
  alignas(64) unsigned char blocks_[64 * kLanes] = {};
  std::uint32_t out_index_[kLanes] = {};
  SlotHead* slot_[kLanes] = {};
  std::vector<std::pair<std::uint32_t, std::uint32_t>> copies_;  // (out index, miss in the batch)
#ifdef SKEIN_DSIR_STATS  // a build with -DSKEIN_DSIR_STATS prints each cache's miss counts (bench/README)
 public:
  std::uint64_t stat_miss[2] = {}, stat_flush[2] = {}, stat_calls[2] = {};
  ~Sha256Cache() {
    std::fprintf(stderr,
                 "misses: unigram %llu of %llu, n-gram %llu of %llu; flushes %llu partial, %llu full\n",
                 (unsigned long long)stat_miss[0], (unsigned long long)stat_calls[0],
                 (unsigned long long)stat_miss[1], (unsigned long long)stat_calls[1],
                 (unsigned long long)stat_flush[0], (unsigned long long)stat_flush[1]);
  }
#endif
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
  template <class Flush>
  void unigrams_portable(const std::vector<std::string_view>& tokens, std::uint32_t* out, Flush& flush);
  template <class Flush>
  void unigrams_avx512(const std::vector<std::string_view>& tokens, std::uint32_t* out, Flush& flush);

  HashKind kind;
  int ngrams;
  std::uint32_t num_buckets;
  DigestModulus digest_mod;
  std::unique_ptr<char[]> scratch;
  std::size_t scratch_cap = 0;
  std::vector<std::uint64_t> hashes;
  std::vector<std::uint32_t> token_ids, ids, sizes, miss_pos;  // sha256: per position
  std::vector<std::uint64_t> miss_key;
  std::unique_ptr<Sha256Cache> cache;
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

// The unigram sweep, with the token probe (hash and way search) as a policy: each token is looked up by its
// bytes (slots prefetched a few tokens ahead); a miss gets the next id and joins the batch.
template <class Probe, class Flush, class Hasher>
__attribute__((always_inline)) inline void unigram_sweep(
    Sha256Cache& c, const std::vector<std::string_view>& tokens, std::uint32_t* out,
    std::vector<std::uint64_t>& hashes, std::vector<std::uint32_t>& token_ids,
    std::vector<std::uint32_t>& sizes, Flush& flush, const Hasher& impl) {
  constexpr std::size_t kAhead = 8;
  const std::size_t n = tokens.size();
  for (std::size_t i = 0; i < std::min(n, kAhead); ++i) {
    if (tokens[i].size() - 1 < kMaxCachedTokenBytes) {
      hashes[i] = Probe::hash(tokens[i]);
      __builtin_prefetch(&c.token_set(hashes[i]));
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kAhead < n && tokens[i + kAhead].size() - 1 < kMaxCachedTokenBytes) {
      hashes[i + kAhead] = Probe::hash(tokens[i + kAhead]);
      __builtin_prefetch(&c.token_set(hashes[i + kAhead]));
    }
    const std::string_view t = tokens[i];
    sizes[i] = static_cast<std::uint32_t>(std::min<std::size_t>(t.size(), kMaxOneBlockBytes + 1));
    if (t.size() - 1 < kMaxCachedTokenBytes) {  // 1 .. 23 bytes
      TokenSet& set = c.token_set(hashes[i]);
      TokenSlot* slot = Probe::find(set, t);
      if (slot != nullptr) {
        if (c.pending(slot->head)) {
          c.copy_at_flush(static_cast<std::uint32_t>(i), slot->head);
        } else {
          out[i] = slot->head.bucket;
        }
        token_ids[i] = slot->head.id;
        continue;
      }
      slot = oldest_way(set);
      const std::uint32_t id = c.next_id();
      slot->head.id = id;
      slot->size = static_cast<std::uint8_t>(t.size());
      std::memset(slot->bytes, 0, kMaxCachedTokenBytes);
      std::memcpy(slot->bytes, t.data(), t.size());
      token_ids[i] = id;
      c.add_miss(tokens, i, 1, t.size(), static_cast<std::uint32_t>(i), &slot->head, flush);
    } else if (t.size() <= kMaxOneBlockBytes) {  // empty or too long to cache, one block
      token_ids[i] = 0;
      c.add_miss(tokens, i, 1, t.size(), static_cast<std::uint32_t>(i), nullptr, flush);
    } else {
      token_ids[i] = 0;
      out[i] = impl.sha256(t);
    }
  }
}

struct PortableTokenProbe {
  static std::uint64_t hash(std::string_view t) { return Sha256Cache::token_hash(t); }
  static TokenSlot* find(TokenSet& set, std::string_view t) {
    for (TokenSlot& w : set.way) {  // an empty way has size 0 and never matches
      if (w.size == t.size() && std::memcmp(w.bytes, t.data(), t.size()) == 0) return &w;
    }
    return nullptr;
  }
};

#ifdef SKEIN_DSIR_X86
// The same with AVX-512: a token of 1 .. 23 bytes is read with one masked (fault-free) load into the slot's
// 24-byte key layout (bytes, zeros, size), hashed from that, and compared against both ways at once, with
// no branch on its length or on which way holds it.
struct Avx512TokenProbe {
  __attribute__((target("avx512f,avx512bw,avx512vl"))) static __m256i key(std::string_view t) {
    const __mmask32 bytes = (__mmask32{1} << t.size()) - 1;
    const __m256i loaded = _mm256_maskz_loadu_epi8(bytes, t.data());
    return _mm256_mask_set1_epi8(loaded, __mmask32{1} << kMaxCachedTokenBytes, static_cast<char>(t.size()));
  }
  __attribute__((target("avx512f,avx512bw,avx512vl"))) static std::uint64_t hash(std::string_view t) {
    const __m256i k = key(t);
    const auto a = static_cast<std::uint64_t>(_mm256_extract_epi64(k, 0));
    const auto b = static_cast<std::uint64_t>(_mm256_extract_epi64(k, 1));
    const auto d = static_cast<std::uint64_t>(_mm256_extract_epi64(k, 2));
    const u128 m =
        u128{a ^ 0xA0761D6478BD642FULL ^ (d * 0x9E3779B97F4A7C15ULL)} * (b ^ d ^ 0xE7037ED1A0B428DBULL);
    return static_cast<std::uint64_t>(m) ^ static_cast<std::uint64_t>(m >> 64);
  }
  __attribute__((target("avx512f,avx512bw,avx512vl"))) static TokenSlot* find(TokenSet& set,
                                                                              std::string_view t) {
    static_assert(kTokenWays == 2 && sizeof(TokenSlot) == 32, "two 32-byte ways per set");
    const __m256i k = key(t);
    constexpr __mmask32 kKeyBytes = (__mmask32{1} << (kMaxCachedTokenBytes + 1)) - 1;
    const __mmask32 m0 = _mm256_mask_cmpeq_epi8_mask(
        kKeyBytes, _mm256_load_si256(reinterpret_cast<const __m256i*>(&set.way[0])), k);
    const __mmask32 m1 = _mm256_mask_cmpeq_epi8_mask(
        kKeyBytes, _mm256_load_si256(reinterpret_cast<const __m256i*>(&set.way[1])), k);
    TokenSlot* found = m1 == kKeyBytes ? &set.way[1] : nullptr;
    return m0 == kKeyBytes ? &set.way[0] : found;
  }
};
#endif

template <class Flush>
void NgramHasher::Impl::unigrams_portable(const std::vector<std::string_view>& tokens, std::uint32_t* out,
                                          Flush& flush) {
  unigram_sweep<PortableTokenProbe>(*cache, tokens, out, hashes, token_ids, sizes, flush, *this);
}

#ifdef SKEIN_DSIR_X86
template <class Flush>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void NgramHasher::Impl::unigrams_avx512(
    const std::vector<std::string_view>& tokens, std::uint32_t* out, Flush& flush) {
  unigram_sweep<Avx512TokenProbe>(*cache, tokens, out, hashes, token_ids, sizes, flush, *this);
}
#endif

// Unigrams first: each token is looked up by its bytes (slots prefetched a few tokens ahead); then each
// n-gram level k = 2 .. ngrams by the key (id of the (k-1)-gram at i, id of token i + k - 1), from the ids
// the previous level left in `ids` (slots prefetched ahead). Misses go to the batch (Sha256Cache); n-grams
// longer than one block, and the rare document with more n-grams than ids, are hashed directly.
void NgramHasher::Impl::buckets_sha256(const std::vector<std::string_view>& tokens, std::uint32_t* out) {
  // Prefetch distances (tokens, n-gram probes): the probes go to tables of several MiB, mostly beyond the
  // core's own caches; the n-gram sweep's iterations are short, so it looks further ahead.
  constexpr std::size_t kAhead = 8;
  constexpr std::size_t kProbeAhead = 32;
  const std::size_t n = tokens.size();
  const std::size_t max_k = std::min(static_cast<std::size_t>(ngrams), n);
  std::size_t total = 0;
  for (std::size_t k = 1; k <= max_k; ++k) total += n - k + 1;
  if (total >= (std::size_t{1} << 31)) {  // more than ids: uncached
    std::uint32_t* o = out;
    for (std::size_t k = 1; k <= max_k; ++k)
      for (std::size_t i = 0; i + k <= n; ++i) *o++ = sha256(join(tokens, i, k));
    return;
  }
  if (!cache) cache = std::make_unique<Sha256Cache>();
  Sha256Cache& c = *cache;
  c.reserve_ids(total);
#ifdef SKEIN_DSIR_STATS
  c.stat_calls[0] += n;
  c.stat_calls[1] += total - n;
#endif
  const auto flush = [&] { c.flush(out, digest_mod); };
  token_ids.resize(n);
  ids.resize(n);
  sizes.resize(n);
  hashes.resize(n);

  // Unigrams.
#ifdef SKEIN_DSIR_X86
  if (c.wide_probes()) {
    unigrams_avx512(tokens, out, flush);
  } else
#endif
  {
    unigrams_portable(tokens, out, flush);
  }
  std::memcpy(ids.data(), token_ids.data(), n * sizeof(std::uint32_t));

  // Longer n-grams; ids[i] turns from the id of the (k-1)-gram at i into that of the k-gram. Two sweeps per
  // level: the first probes every n-gram without branching on the outcome (about half of a cold corpus'
  // bigrams miss, at random, and each mispredicted branch would also discard the probes in flight behind
  // it), keeping the hits' buckets and ids and listing the rest with their keys; the second handles those in
  // order, probing again (an earlier one may have inserted the same n-gram), inserting, and batching.
  std::size_t j0 = n;  // output index of the level's first n-gram
  for (std::size_t k = 2; k <= max_k; j0 += n - k + 1, ++k) {
    const std::size_t count = n - k + 1;
    miss_pos.resize(count);
    miss_key.resize(count);
    std::size_t misses = 0;
    for (std::size_t i = 0; i < count; ++i) {
      if (i + kProbeAhead < count) {
        __builtin_prefetch(
            &c.ngram_set(Sha256Cache::ngram_key(ids[i + kProbeAhead], token_ids[i + kProbeAhead + k - 1])));
      }
      const std::uint32_t prefix_id = ids[i], last_id = token_ids[i + k - 1];
      sizes[i] = static_cast<std::uint32_t>(
          std::min<std::size_t>(sizes[i] + 1 + tokens[i + k - 1].size(), kMaxOneBlockBytes + 1));
      const std::uint64_t key = Sha256Cache::ngram_key(prefix_id, last_id);
      const NgramSet& set = c.ngram_set(key);
      int match = -1;
      for (int w = kNgramWays - 1; w >= 0; --w) match = set.way[w].key == key ? w : match;
      const SlotHead head = set.way[match & (kNgramWays - 1)].head;
      // A key with an id 0 is never inserted, but (0, 0) is an empty slot's.
      const bool hit = (match >= 0) & (prefix_id != 0) & (last_id != 0) & !c.pending(head);
      out[j0 + i] = head.bucket;
      ids[i] = head.id;
      miss_pos[misses] = static_cast<std::uint32_t>(i);
      miss_key[misses] = key;
      misses += !hit;
    }
    for (std::size_t m = 0; m < misses; ++m) {
      const std::size_t i = miss_pos[m];
      const std::uint64_t key = miss_key[m];
      const auto j = static_cast<std::uint32_t>(j0 + i);
      const std::size_t bytes = sizes[i];
      if (bytes > kMaxOneBlockBytes) {
        ids[i] = 0;
        out[j] = sha256(join(tokens, i, k));
      } else if ((key >> 32) == 0 || (key & 0xFFFFFFFFu) == 0) {
        ids[i] = 0;
        c.add_miss(tokens, i, k, bytes, j, nullptr, flush);
      } else {
        NgramSet& set = c.ngram_set(key);
        NgramSlot* slot = nullptr;
        for (NgramSlot& w : set.way)
          if (w.key == key) slot = &w;
        if (slot != nullptr) {
          if (c.pending(slot->head)) {
            c.copy_at_flush(j, slot->head);
          } else {
            out[j] = slot->head.bucket;
          }
          ids[i] = slot->head.id;
        } else {
          slot = oldest_way(set);
          const std::uint32_t id = c.next_id();
          slot->head.id = id;
          slot->key = key;
          ids[i] = id;
          c.add_miss(tokens, i, k, bytes, j, &slot->head, flush);
        }
      }
    }
  }
  flush();
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

void NgramHasher::restart_cache_ids_for_testing(std::uint32_t next_id) {
  if (!impl_->cache) impl_->cache = std::make_unique<Sha256Cache>();
  impl_->cache->restart_ids(next_id);
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
