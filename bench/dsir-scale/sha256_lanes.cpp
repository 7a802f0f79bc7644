// Would 16-lane AVX-512 SHA-256 beat SHA-NI for dsir's hash=sha256 cache misses? (not a test): thread CPU
// ns per one-block compression of padded n-gram blocks, with skein's SHA-NI path (one block at a time) and
// with a 16-lane AVX-512 kernel written here (16 independent blocks per call, as batched misses would be), and
// with skein's own 16-lane path that grew from it (sha256::digest_padded_blocks16); the digests are checked
// equal.
//
//   g++ -std=c++17 -O2 -DNDEBUG -I. bench/dsir-scale/sha256_lanes.cpp jobs/dsir/sha256.cpp -o
//   /tmp/sha256_lanes /tmp/sha256_lanes
#include "jobs/dsir/sha256.hpp"

#include <immintrin.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

namespace {

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

constexpr std::uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
constexpr std::uint32_t kH0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

// 16 padded blocks -> their 16 digests as words[lane][8].
__attribute__((target("avx512f"))) void compress16(const unsigned char* const blocks[16],
                                                   std::uint32_t words[16][8]) {
  __m512i w[16];
  alignas(64) std::uint32_t column[16];
  for (int t = 0; t < 16; ++t) {
    for (int lane = 0; lane < 16; ++lane) {
      std::uint32_t v;
      std::memcpy(&v, blocks[lane] + 4 * t, 4);
      column[lane] = __builtin_bswap32(v);
    }
    w[t] = _mm512_load_si512(column);
  }
  __m512i a = _mm512_set1_epi32(kH0[0]), b = _mm512_set1_epi32(kH0[1]), c = _mm512_set1_epi32(kH0[2]),
          d = _mm512_set1_epi32(kH0[3]), e = _mm512_set1_epi32(kH0[4]), f = _mm512_set1_epi32(kH0[5]),
          g = _mm512_set1_epi32(kH0[6]), h = _mm512_set1_epi32(kH0[7]);
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
    const __m512i big_s1 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(e, 6), _mm512_ror_epi32(e, 11),
                                                     _mm512_ror_epi32(e, 25), 0x96);
    const __m512i ch = _mm512_ternarylogic_epi32(e, f, g, 0xCA);
    const __m512i t1 = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(h, big_s1), ch),
                                        _mm512_add_epi32(_mm512_set1_epi32(kK[t]), wt));
    const __m512i big_s0 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(a, 2), _mm512_ror_epi32(a, 13),
                                                     _mm512_ror_epi32(a, 22), 0x96);
    const __m512i maj = _mm512_ternarylogic_epi32(a, b, c, 0xE8);
    h = g;
    g = f;
    f = e;
    e = _mm512_add_epi32(d, t1);
    d = c;
    c = b;
    b = a;
    a = _mm512_add_epi32(t1, _mm512_add_epi32(big_s0, maj));
  }
  const __m512i state[8] = {a, b, c, d, e, f, g, h};
  for (int i = 0; i < 8; ++i) {
    _mm512_store_si512(column, _mm512_add_epi32(state[i], _mm512_set1_epi32(kH0[i])));
    for (int lane = 0; lane < 16; ++lane) words[lane][i] = column[lane];
  }
}

}  // namespace

int main() {
  // Padded blocks of n-gram-like strings of 3..30 bytes.
  constexpr int kBlocks = 1 << 16;
  std::vector<unsigned char> blocks(64 * kBlocks, 0);
  std::uint64_t x = 88172645463325252ULL;
  for (int i = 0; i < kBlocks; ++i) {
    unsigned char* b = &blocks[64 * i];
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    const int len = 3 + static_cast<int>(x % 28);
    for (int j = 0; j < len; ++j) b[j] = static_cast<unsigned char>('a' + (x >> (j % 50)) % 26);
    b[len] = 0x80;
    b[62] = static_cast<unsigned char>((len * 8) >> 8);
    b[63] = static_cast<unsigned char>(len * 8);
  }
  std::vector<std::uint32_t> ref(8 * kBlocks), lanes(8 * kBlocks);
  const int rounds = 20;
  double t0 = cpu_seconds();
  for (int r = 0; r < rounds; ++r)
    for (int i = 0; i < kBlocks; ++i) skein::dsir::sha256::digest_padded_block(&blocks[64 * i], &ref[8 * i]);
  const double shani = (cpu_seconds() - t0) / (rounds * double{kBlocks}) * 1e9;
  t0 = cpu_seconds();
  for (int r = 0; r < rounds; ++r) {
    for (int i = 0; i < kBlocks; i += 16) {
      const unsigned char* ptrs[16];
      for (int l = 0; l < 16; ++l) ptrs[l] = &blocks[64 * (i + l)];
      compress16(ptrs, reinterpret_cast<std::uint32_t(*)[8]>(&lanes[8 * i]));
    }
  }
  const double avx = (cpu_seconds() - t0) / (rounds * double{kBlocks}) * 1e9;
  // skein's 16-lane path (sha256::digest_padded_blocks16: in-register transpose, columns out).
  std::vector<std::uint32_t> skein16(8 * kBlocks);
  t0 = cpu_seconds();
  for (int r = 0; r < rounds; ++r) {
    for (int i = 0; i < kBlocks; i += 16) {
      std::uint32_t columns[8][16];
      skein::dsir::sha256::digest_padded_blocks16(&blocks[64 * i], columns);
      if (r == 0) {
        for (int l = 0; l < 16; ++l)
          for (int w = 0; w < 8; ++w) skein16[8 * (i + l) + w] = columns[w][l];
      }
    }
  }
  const double avx_skein = (cpu_seconds() - t0) / (rounds * double{kBlocks}) * 1e9;
  const bool same = ref == lanes && ref == skein16;
  std::printf(
      "one-block SHA-256, %d blocks x %d: skein's path (%s) %.1f ns per block; AVX-512 16 lanes %.1f "
      "ns per block (here), %.1f (skein's digest_padded_blocks16, %s); digests %s\n",
      kBlocks, rounds, skein::dsir::sha256::shani_available() ? "SHA-NI" : "portable", shani, avx, avx_skein,
      skein::dsir::sha256::avx512_available() ? "AVX-512" : "no AVX-512: one at a time",
      same ? "equal" : "DIFFER");
  return same ? 0 : 1;
}
