// Counter-based random numbers keyed by (seed, stream, global id): results never depend on the rank count.
#pragma once

#include <Kokkos_Core.hpp>

#include <cmath>
#include <cstdint>

namespace skein::engine {

// Philox4x32-10 (Salmon et al., SC'11). Written out here because Kokkos has no counter-based generator
// and this must run inside kernels on any backend; it is the same function cuRAND and Random123 use.
struct Philox4x32 {
  std::uint32_t v[4];
};

KOKKOS_INLINE_FUNCTION void philox_mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi,
                                           std::uint32_t& lo) {
  const std::uint64_t product = static_cast<std::uint64_t>(a) * b;
  hi = static_cast<std::uint32_t>(product >> 32);
  lo = static_cast<std::uint32_t>(product);
}

KOKKOS_INLINE_FUNCTION Philox4x32 philox4x32_10(Philox4x32 counter, std::uint32_t key0, std::uint32_t key1) {
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, counter.v[0], hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, counter.v[2], hi1, lo1);
    counter = Philox4x32{{hi1 ^ counter.v[1] ^ key0, lo1, hi0 ^ counter.v[3] ^ key1, lo0}};
    key0 += 0x9E3779B9u;
    key1 += 0xBB67AE85u;
  }
  return counter;
}

// Kokkos 3.4 keeps math functions in Kokkos::Experimental; 3.7+ and 4.x in Kokkos.
KOKKOS_INLINE_FUNCTION double portable_log(double x) {
#if KOKKOS_VERSION >= 30700
  return Kokkos::log(x);
#else
  return Kokkos::Experimental::log(x);
#endif
}

// Named streams so that two uses of the same seed never share numbers.
enum class Stream : std::uint32_t { gumbel = 1, baseline = 2, subsample = 3 };

// 64 random bits for item `id` of `stream` under `seed`.
KOKKOS_INLINE_FUNCTION std::uint64_t random_bits(std::uint64_t seed, Stream stream, std::uint64_t id) {
  const Philox4x32 counter{{static_cast<std::uint32_t>(id), static_cast<std::uint32_t>(id >> 32),
                            static_cast<std::uint32_t>(stream), 0u}};
  const Philox4x32 out =
      philox4x32_10(counter, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
  return (static_cast<std::uint64_t>(out.v[0]) << 32) | out.v[1];
}

// Uniform in the open interval (0, 1), 53 bits.
KOKKOS_INLINE_FUNCTION double uniform_open01(std::uint64_t seed, Stream stream, std::uint64_t id) {
  const std::uint64_t bits = random_bits(seed, stream, id) >> 11;
  return (static_cast<double>(bits) + 0.5) * (1.0 / 9007199254740992.0);
}

// Standard Gumbel(0, 1) sample: -log(-log(U)).
KOKKOS_INLINE_FUNCTION double gumbel(std::uint64_t seed, Stream stream, std::uint64_t id) {
  return -portable_log(-portable_log(uniform_open01(seed, stream, id)));
}

}  // namespace skein::engine
