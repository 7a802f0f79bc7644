#include "jobs/dsir/sha256.hpp"

#include <cstddef>
#include <cstring>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(SKEIN_DSIR_NO_SHANI)
#define SKEIN_DSIR_SHANI 1
#include <cpuid.h>
#include <immintrin.h>
#endif

// Why not OpenSSL: its SHA256_Init/Update/Final (or EVP) cost several times the compression itself on the
// one-block strings hashed here (context set-up, buffering, OPENSSL_cleanse), and the calls are per n-gram.
// The one-block path below pads in place and runs one compression.

namespace skein::dsir::sha256 {
namespace {

constexpr std::uint32_t kInitial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

alignas(16) constexpr std::uint32_t kRound[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

using CompressFn = void (*)(std::uint32_t state[8], const unsigned char* blocks, std::size_t count);

inline std::uint32_t rotr(std::uint32_t x, int n) {
  return (x >> n) | (x << (32 - n));
}

inline std::uint32_t load_be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

// FIPS 180-4 section 6.2.2, one 64-byte block at a time.
void compress_portable(std::uint32_t state[8], const unsigned char* blocks, std::size_t count) {
  for (; count > 0; --count, blocks += 64) {
    std::uint32_t w[64];
    for (int t = 0; t < 16; ++t) w[t] = load_be32(blocks + 4 * t);
    for (int t = 16; t < 64; ++t) {
      const std::uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      const std::uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    std::uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    std::uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 64; ++t) {
      const std::uint32_t t1 =
          h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kRound[t] + w[t];
      const std::uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
  }
}

#ifdef SKEIN_DSIR_SHANI
// The SHA extensions' compression (Intel, "New Instructions Supporting the Secure Hash Algorithm on Intel
// Architecture Processors", 2013): sha256rnds2 runs two rounds on the state held as ABEF/CDGH, sha256msg1/2
// extend the message schedule four words at a time. Compiled for these instructions whatever the build's
// -march, and called only when cpuid reports them.
__attribute__((target("sha,sse4.1,ssse3"))) void compress_shani(std::uint32_t state[8],
                                                                const unsigned char* blocks,
                                                                std::size_t count) {
  const __m128i byte_swap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
  __m128i tmp = _mm_loadu_si128(reinterpret_cast<const __m128i*>(state));         // ABCD (A lowest)
  __m128i state1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(state + 4));  // EFGH
  tmp = _mm_shuffle_epi32(tmp, 0xB1);                                             // CDAB
  state1 = _mm_shuffle_epi32(state1, 0x1B);                                       // HGFE
  __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);                               // ABEF
  state1 = _mm_blend_epi16(state1, tmp, 0xF0);                                    // CDGH

  for (; count > 0; --count, blocks += 64) {
    const __m128i abef_save = state0, cdgh_save = state1;
    __m128i msg[4];
    for (int g = 0; g < 16; ++g) {  // rounds 4g .. 4g+3
      __m128i& cur = msg[g & 3];
      if (g < 4) {
        cur = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks + 16 * g)), byte_swap);
      }
      __m128i m = _mm_add_epi32(cur, _mm_load_si128(reinterpret_cast<const __m128i*>(kRound + 4 * g)));
      state1 = _mm_sha256rnds2_epu32(state1, state0, m);
      if (g >= 3 && g < 15) {  // finish the schedule words of group g + 1
        __m128i& next = msg[(g + 1) & 3];
        next = _mm_add_epi32(next, _mm_alignr_epi8(cur, msg[(g + 3) & 3], 4));
        next = _mm_sha256msg2_epu32(next, cur);
      }
      m = _mm_shuffle_epi32(m, 0x0E);
      state0 = _mm_sha256rnds2_epu32(state0, state1, m);
      if (g >= 1 && g < 13) {  // start the schedule words of group g + 3
        __m128i& prev = msg[(g + 3) & 3];
        prev = _mm_sha256msg1_epu32(prev, cur);
      }
    }
    state0 = _mm_add_epi32(state0, abef_save);
    state1 = _mm_add_epi32(state1, cdgh_save);
  }

  tmp = _mm_shuffle_epi32(state0, 0x1B);        // FEBA
  state1 = _mm_shuffle_epi32(state1, 0xB1);     // DCHG
  state0 = _mm_blend_epi16(tmp, state1, 0xF0);  // DCBA
  state1 = _mm_alignr_epi8(state1, tmp, 8);     // ABEF
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state), state0);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state + 4), state1);
}

// Sixteen one-block messages in the 16 32-bit lanes of 512-bit registers (the "multi-buffer" method, as in
// Intel's ISA-L): FIPS 180-4 section 6.2.2 written once for all lanes, each rotation one vprord and each
// three-way xor/choose/majority one vpternlogd. On the Zen 4 this was measured on, 16 blocks take ~29 ns each
// against ~53 for one at a time with the SHA extensions (bench/dsir-scale/sha256_lanes.cpp).
__attribute__((target("avx512f,avx512bw"))) void compress16_avx512(const unsigned char* blocks,
                                                                   std::uint32_t words[8][16]) {
  // Load the 16 blocks as rows, byte-swap each 32-bit word, and transpose the 16 x 16 words so that w[t]
  // holds word t of every block: unpack 32-bit, then 64-bit pairs, then move 128-bit lanes.
  const __m512i byte_swap =
      _mm512_broadcast_i32x4(_mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3));
  __m512i r[16], a[16], w[16];
  for (int l = 0; l < 16; ++l) {
    r[l] = _mm512_shuffle_epi8(_mm512_loadu_si512(blocks + 64 * l), byte_swap);
  }
  for (int p = 0; p < 8; ++p) {
    a[2 * p] = _mm512_unpacklo_epi32(r[2 * p], r[2 * p + 1]);
    a[2 * p + 1] = _mm512_unpackhi_epi32(r[2 * p], r[2 * p + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // r[4g + c], 128-bit lane q: word 4q + c of rows 4g .. 4g + 3
    r[4 * g + 0] = _mm512_unpacklo_epi64(a[4 * g], a[4 * g + 2]);
    r[4 * g + 1] = _mm512_unpackhi_epi64(a[4 * g], a[4 * g + 2]);
    r[4 * g + 2] = _mm512_unpacklo_epi64(a[4 * g + 1], a[4 * g + 3]);
    r[4 * g + 3] = _mm512_unpackhi_epi64(a[4 * g + 1], a[4 * g + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i e0 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0x44),
                  e1 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0xEE);
    const __m512i f0 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0x44),
                  f1 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0xEE);
    w[c] = _mm512_shuffle_i32x4(e0, f0, 0x88);
    w[4 + c] = _mm512_shuffle_i32x4(e0, f0, 0xDD);
    w[8 + c] = _mm512_shuffle_i32x4(e1, f1, 0x88);
    w[12 + c] = _mm512_shuffle_i32x4(e1, f1, 0xDD);
  }

  __m512i sa = _mm512_set1_epi32(static_cast<int>(kInitial[0])),
          sb = _mm512_set1_epi32(static_cast<int>(kInitial[1])),
          sc = _mm512_set1_epi32(static_cast<int>(kInitial[2])),
          sd = _mm512_set1_epi32(static_cast<int>(kInitial[3])),
          se = _mm512_set1_epi32(static_cast<int>(kInitial[4])),
          sf = _mm512_set1_epi32(static_cast<int>(kInitial[5])),
          sg = _mm512_set1_epi32(static_cast<int>(kInitial[6])),
          sh = _mm512_set1_epi32(static_cast<int>(kInitial[7]));
#pragma GCC unroll 64
  for (int t = 0; t < 64; ++t) {
    __m512i wt;
    if (t < 16) {
      wt = w[t];
    } else {
      const __m512i w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15];
      const __m512i s0 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(w15, 7), _mm512_ror_epi32(w15, 18),
                                                   _mm512_srli_epi32(w15, 3), 0x96);
      const __m512i s1 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(w2, 17), _mm512_ror_epi32(w2, 19),
                                                   _mm512_srli_epi32(w2, 10), 0x96);
      wt = _mm512_add_epi32(_mm512_add_epi32(w[t & 15], s0), _mm512_add_epi32(w[(t - 7) & 15], s1));
      w[t & 15] = wt;
    }
    const __m512i big_s1 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(se, 6), _mm512_ror_epi32(se, 11),
                                                     _mm512_ror_epi32(se, 25), 0x96);
    const __m512i ch = _mm512_ternarylogic_epi32(se, sf, sg, 0xCA);
    const __m512i t1 = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(sh, big_s1), ch),
                                        _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(kRound[t])), wt));
    const __m512i big_s0 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(sa, 2), _mm512_ror_epi32(sa, 13),
                                                     _mm512_ror_epi32(sa, 22), 0x96);
    const __m512i maj = _mm512_ternarylogic_epi32(sa, sb, sc, 0xE8);
    sh = sg;
    sg = sf;
    sf = se;
    se = _mm512_add_epi32(sd, t1);
    sd = sc;
    sc = sb;
    sb = sa;
    sa = _mm512_add_epi32(t1, _mm512_add_epi32(big_s0, maj));
  }
  const __m512i state[8] = {sa, sb, sc, sd, se, sf, sg, sh};
  for (int i = 0; i < 8; ++i) {
    _mm512_storeu_si512(words[i],
                        _mm512_add_epi32(state[i], _mm512_set1_epi32(static_cast<int>(kInitial[i]))));
  }
}

bool cpu_has_avx512() {
  __builtin_cpu_init();  // libgcc also checks that the OS saves the 512-bit state (XCR0)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}

bool cpu_has_shani() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  const bool ssse3 = (ecx >> 9) & 1, sse41 = (ecx >> 19) & 1;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  const bool sha = (ebx >> 29) & 1;
  return ssse3 && sse41 && sha;
}
#endif

CompressFn compress_of(Backend backend) {
#ifdef SKEIN_DSIR_SHANI
  if (resolved(backend) == Backend::shani) return compress_shani;
#else
  (void)backend;
#endif
  return compress_portable;
}

}  // namespace

bool shani_available() {
#ifdef SKEIN_DSIR_SHANI
  static const bool available = cpu_has_shani();
  return available;
#else
  return false;
#endif
}

bool avx512_available() {
#ifdef SKEIN_DSIR_SHANI
  static const bool available = cpu_has_avx512();
  return available;
#else
  return false;
#endif
}

Backend resolved(Backend backend) {
  if (backend == Backend::automatic || backend == Backend::avx512) {
    return shani_available() ? Backend::shani : Backend::portable;
  }
  if (backend == Backend::shani && !shani_available()) return Backend::portable;
  return backend;
}

Backend resolved16(Backend backend) {
  if ((backend == Backend::automatic || backend == Backend::avx512) && avx512_available())
    return Backend::avx512;
  return resolved(backend == Backend::avx512 ? Backend::automatic : backend);
}

void digest_padded_blocks16(const unsigned char* blocks, std::uint32_t words[8][16], Backend backend) {
  static const Backend automatic = resolved16(Backend::automatic);
  const Backend use = backend == Backend::automatic ? automatic : resolved16(backend);
#ifdef SKEIN_DSIR_SHANI
  if (use == Backend::avx512) {
    compress16_avx512(blocks, words);
    return;
  }
#endif
  const CompressFn compress = compress_of(use);
  for (int l = 0; l < 16; ++l) {
    std::uint32_t state[8];
    std::memcpy(state, kInitial, sizeof kInitial);
    compress(state, blocks + 64 * l, 1);
    for (int i = 0; i < 8; ++i) words[i][l] = state[i];
  }
}

void digest_padded_block(const unsigned char block[64], std::uint32_t words[8]) {
  static const CompressFn automatic = compress_of(Backend::automatic);
  std::memcpy(words, kInitial, sizeof kInitial);
  automatic(words, block, 1);
}

void digest_words(std::string_view s, std::uint32_t words[8], Backend backend) {
  static const CompressFn automatic = compress_of(Backend::automatic);
  const CompressFn compress = backend == Backend::automatic ? automatic : compress_of(backend);
  std::memcpy(words, kInitial, sizeof kInitial);
  const auto* data = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t full = s.size() / 64;
  if (full > 0) compress(words, data, full);
  // The rest, 0x80, zeros, and the length in bits as a big-endian 64-bit number: one block when the rest
  // is at most 55 bytes, else two.
  const std::size_t rest = s.size() - 64 * full;
  const std::size_t tail_blocks = rest < 56 ? 1 : 2;
  alignas(16) unsigned char tail[128];
  std::memset(tail, 0, 64 * tail_blocks);
  if (rest > 0) std::memcpy(tail, data + 64 * full, rest);
  tail[rest] = 0x80;
  const std::uint64_t bits = static_cast<std::uint64_t>(s.size()) * 8;
  unsigned char* length = tail + 64 * tail_blocks - 8;
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(bits >> (56 - 8 * i));
  compress(words, tail, tail_blocks);
}

}  // namespace skein::dsir::sha256
