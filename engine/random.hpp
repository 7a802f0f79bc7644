// Counter-based random numbers keyed by (seed, stream, global id): results never depend on the rank count.
#pragma once

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

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

KOKKOS_INLINE_FUNCTION double portable_sqrt(double x) {
#if KOKKOS_VERSION >= 30700
  return Kokkos::sqrt(x);
#else
  return Kokkos::Experimental::sqrt(x);
#endif
}

KOKKOS_INLINE_FUNCTION double portable_cos(double x) {
#if KOKKOS_VERSION >= 30700
  return Kokkos::cos(x);
#else
  return Kokkos::Experimental::cos(x);
#endif
}

// Which stream of numbers: each job names its own streams (an enum with std::uint32_t values, e.g. dsir's
// DsirStream in jobs/dsir) so that two uses of one seed never share numbers. The engine knows no job's
// names; any enum converts implicitly, and so does a plain std::uint32_t. The value goes into the Philox
// counter, so changing a job's stream numbers changes its results.
struct StreamId {
  std::uint32_t value;
  KOKKOS_INLINE_FUNCTION constexpr StreamId(std::uint32_t v) : value(v) {}  // NOLINT: implicit on purpose
  template <class E, std::enable_if_t<std::is_enum_v<E>, int> = 0>
  KOKKOS_INLINE_FUNCTION constexpr StreamId(E e) : value(static_cast<std::uint32_t>(e)) {}  // NOLINT
};

namespace detail {
KOKKOS_INLINE_FUNCTION Philox4x32 philox_draw(std::uint64_t seed, StreamId stream, std::uint64_t id) {
  const Philox4x32 counter{
      {static_cast<std::uint32_t>(id), static_cast<std::uint32_t>(id >> 32), stream.value, 0u}};
  return philox4x32_10(counter, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}
// 53 random bits to a double in the open interval (0, 1).
KOKKOS_INLINE_FUNCTION double open01_from_bits(std::uint64_t bits64) {
  return (static_cast<double>(bits64 >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
}  // namespace detail

// 64 random bits for item `id` (a global index, never a rank-local one) of `stream` under `seed`.
KOKKOS_INLINE_FUNCTION std::uint64_t random_bits(std::uint64_t seed, StreamId stream, std::uint64_t id) {
  const Philox4x32 out = detail::philox_draw(seed, stream, id);
  return (static_cast<std::uint64_t>(out.v[0]) << 32) | out.v[1];
}

// Uniform in the open interval (0, 1), 53 bits.
KOKKOS_INLINE_FUNCTION double uniform_open01(std::uint64_t seed, StreamId stream, std::uint64_t id) {
  return detail::open01_from_bits(random_bits(seed, stream, id));
}

// Standard Gumbel(0, 1) sample: -log(-log(U)).
KOKKOS_INLINE_FUNCTION double gumbel(std::uint64_t seed, StreamId stream, std::uint64_t id) {
  return -portable_log(-portable_log(uniform_open01(seed, stream, id)));
}

// Standard normal N(0, 1) by Box-Muller on the two 53-bit uniforms of one Philox call (words 0-1 and 2-3);
// only the cosine branch is used, so each id gives one independent draw.
KOKKOS_INLINE_FUNCTION double standard_normal(std::uint64_t seed, StreamId stream, std::uint64_t id) {
  const Philox4x32 out = detail::philox_draw(seed, stream, id);
  const double u1 = detail::open01_from_bits((static_cast<std::uint64_t>(out.v[0]) << 32) | out.v[1]);
  const double u2 = detail::open01_from_bits((static_cast<std::uint64_t>(out.v[2]) << 32) | out.v[3]);
  constexpr double two_pi = 6.283185307179586476925286766559;
  return portable_sqrt(-2.0 * portable_log(u1)) * portable_cos(two_pi * u2);
}

// Rademacher sample: +1 or -1 with probability 1/2 each (Hutchinson's trace estimator).
KOKKOS_INLINE_FUNCTION double rademacher(std::uint64_t seed, StreamId stream, std::uint64_t id) {
  return (random_bits(seed, stream, id) >> 63) ? 1.0 : -1.0;
}

// `items` (global indices) in the order of their keys random_bits(seed, stream, base + item): a seeded
// permutation (an epoch's minibatch order: base = epoch * n) that every rank computes alike. Host only.
inline std::vector<std::int64_t> seeded_order(std::uint64_t seed, StreamId stream, std::uint64_t base,
                                              const std::vector<std::int64_t>& items) {
  std::vector<std::pair<std::uint64_t, std::int64_t>> keys(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    keys[i] = {random_bits(seed, stream, base + static_cast<std::uint64_t>(items[i])), items[i]};
  }
  std::sort(keys.begin(), keys.end());
  std::vector<std::int64_t> order(items.size());
  for (std::size_t i = 0; i < keys.size(); ++i) order[i] = keys[i].second;
  return order;
}

}  // namespace skein::engine
