// Would 16-lane AVX-512 SHA-256 beat SHA-NI for dsir's hash=sha256 cache misses? (not a test): thread CPU
// ns per one-block compression of padded n-gram blocks, with skein's SHA-NI path (one block at a time) and
// with its 16-lane AVX-512 path (sha256::digest_padded_blocks16: 16 independent blocks per call, as batched
// misses are); the digests are checked equal. (The first 16-lane kernel, written here before skein had one,
// took 28.3 ns per block; bench/README.md.)
//
//   g++ -std=c++17 -O2 -DNDEBUG -I. bench/dsir-scale/sha256_lanes.cpp jobs/dsir/sha256.cpp -o
//   /tmp/sha256_lanes /tmp/sha256_lanes
#include "jobs/dsir/sha256.hpp"

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <vector>

namespace {

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
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
  std::vector<std::uint32_t> ref(8 * kBlocks);
  const int rounds = 20;
  double t0 = cpu_seconds();
  for (int r = 0; r < rounds; ++r)
    for (int i = 0; i < kBlocks; ++i) skein::dsir::sha256::digest_padded_block(&blocks[64 * i], &ref[8 * i]);
  const double shani = (cpu_seconds() - t0) / (rounds * double{kBlocks}) * 1e9;
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
  const bool same = ref == skein16;
  std::printf(
      "one-block SHA-256, %d blocks x %d: skein's path (%s) %.1f ns per block; 16 lanes %.1f ns per "
      "block (skein's digest_padded_blocks16, %s); digests %s\n",
      kBlocks, rounds, skein::dsir::sha256::shani_available() ? "SHA-NI" : "portable", shani, avx_skein,
      skein::dsir::sha256::avx512_available() ? "AVX-512" : "no AVX-512: one at a time",
      same ? "equal" : "DIFFER");
  return same ? 0 : 1;
}
