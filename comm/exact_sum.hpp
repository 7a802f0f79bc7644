// Exact, order-independent sums of doubles across ranks: every term becomes a 128-bit fixed-point integer
// on a scale all ranks share, integers add exactly, so a sum is the same bits whatever the order, the
// grouping or the number of ranks. This is what makes Krylov iterates and data-parallel gradients identical
// at 1, 2 or 3 ranks (a checkpoint written at 2 ranks resumes at 3 to the same output).
//
// How: one allreduce(max) of |terms| gives E with max|t| < 2^E; the scale is 2^S with
// S = kExactTopBit - kExactTermsLog2 - E, so |t 2^S| < 2^(123 - 40) and any sum of up to 2^40 terms stays
// below 2^123, clear of __int128's 2^127. Each term is truncated toward zero to an integer (the error is at
// most 2^-83 of the largest term, ~30 bits below a double's rounding), the integers are summed (Kokkos
// reducer, MPI_Allreduce with a user op over 16-byte elements), and the sum is rounded once to double.
//
// Non-finite terms: the scale says so (max = inf; NaN counts as inf) and every term then becomes a count
// (NaN 1, +inf 2^40, -inf 2^80), so the result is NaN (any NaN, or both infinities), +inf or -inf on every
// rank, never undefined behaviour. This header needs neither MPI nor Kokkos in its inline part, and those
// functions are host and device code (nvcc compiles __int128 in device code).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define SKEIN_EXACT_FUNCTION __host__ __device__ inline
#else
#define SKEIN_EXACT_FUNCTION inline
#endif

namespace skein::comm {

class Communicator;

using ExactInt = __int128;

// Headroom: a sum may have up to 2^kExactTermsLog2 terms (over all ranks) without overflow.
constexpr int kExactTermsLog2 = 40;
constexpr int kExactTopBit = 123;  // every partial sum stays below 2^123 (4 bits of slack under 2^127)

// The shared scale of one sum, from the global max of exact_magnitude() over its terms.
struct ExactScale {
  int shift = 0;           // S: a term t becomes trunc(t 2^S)
  double factor = 0;       // 2^(S - 62) when that is a normal double (fast path of to_exact), else 0
  bool zero = true;        // every term is 0 (the sum is 0; S is unused)
  bool nonfinite = false;  // some term is NaN or infinite: terms become counts (see above)
};

namespace detail {
SKEIN_EXACT_FUNCTION std::uint64_t double_bits(double x) {
#if defined(__CUDA_ARCH__)
  return static_cast<std::uint64_t>(__double_as_longlong(x));
#else
  std::uint64_t bits;
  __builtin_memcpy(&bits, &x, sizeof bits);
  return bits;
#endif
}
SKEIN_EXACT_FUNCTION double double_from_bits(std::uint64_t bits) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(bits));
#else
  double x;
  __builtin_memcpy(&x, &bits, sizeof x);
  return x;
#endif
}
// Namespace-scope constants rather than calls: nvcc refuses host constexpr functions (numeric_limits) in
// device code without --expt-relaxed-constexpr, but takes constexpr scalars.
constexpr double kMaxFinite = std::numeric_limits<double>::max();
constexpr double kInfinity = std::numeric_limits<double>::infinity();
constexpr ExactInt kExactNanCount = 1;
constexpr ExactInt kExactPosInfCount = ExactInt(1) << kExactTermsLog2;
constexpr ExactInt kExactNegInfCount = ExactInt(1) << (2 * kExactTermsLog2);
}  // namespace detail

// |t| for the max pass, with NaN mapped to +inf (a max over NaN is order-dependent; inf is not).
SKEIN_EXACT_FUNCTION double exact_magnitude(double t) {
  const double a = t < 0 ? -t : t;
  return a <= detail::kMaxFinite ? a : detail::kInfinity;
}

// The scale for terms whose global max exact_magnitude() is `max_magnitude`.
SKEIN_EXACT_FUNCTION ExactScale exact_scale(double max_magnitude) {
  ExactScale scale;
  if (!(max_magnitude <= detail::kMaxFinite)) {
    scale.zero = false;
    scale.nonfinite = true;
    return scale;
  }
  if (max_magnitude == 0.0) return scale;
  scale.zero = false;
  // E with max < 2^E, from the bits (no libm, so host and device agree): the biased exponent field, or for a
  // subnormal the position of its top bit.
  const std::uint64_t bits = detail::double_bits(max_magnitude);
  const int biased = static_cast<int>((bits >> 52) & 0x7ff);
  int top_exponent;
  if (biased != 0) {
    top_exponent = biased - 1022;  // max = 1.f 2^(biased - 1023) < 2^(biased - 1022)
  } else {
    std::uint64_t fraction = bits & ((std::uint64_t(1) << 52) - 1);
    int length = 0;
    while (fraction != 0) {
      ++length;
      fraction >>= 1;
    }
    top_exponent = length - 1074;  // max = fraction 2^-1074 < 2^(length - 1074)
  }
  scale.shift = kExactTopBit - kExactTermsLog2 - top_exponent;
  // 2^(S - 62) built from its bits, when normal (every max above ~2^-1002); else to_exact takes the bits.
  const int biased_factor = scale.shift - 62 + 1023;
  if (biased_factor >= 1 && biased_factor <= 2046) {
    scale.factor = detail::double_from_bits(static_cast<std::uint64_t>(biased_factor) << 52);
  }
  return scale;
}

// The fast path's pieces (every scale with factor != 0, i.e. whenever the largest term is above ~2^-1002):
// y = t 2^(S-62) is exact (a power of two; a product in the subnormal range is below 2^-1022 and truncates
// to 0 either way) and |y| < 2^21. Cutting y at 2^0 and 2^-31 gives three integers, each exact in a double,
// with trunc(t 2^S) = high 2^62 + middle 2^31 + low (all of one sign, so truncating the pieces truncates
// the whole). Pieces of many terms add exactly in doubles while each sum stays below 2^53: up to
// kExactPartsTerms terms per ExactParts. A kernel's inner loop is then plain double arithmetic (several
// times faster than 128-bit integer work per term), and each row's parts become one __int128.
struct ExactParts {
  double high = 0, middle = 0, low = 0;
};
constexpr std::int64_t kExactPartsTerms = std::int64_t(1) << 22;

SKEIN_EXACT_FUNCTION void accumulate_exact(double t, double factor, ExactParts& parts) {
  const double y = t * factor;
  const double high = std::trunc(y);
  const double rest = (y - high) * 2147483648.0;  // 2^31
  const double middle = std::trunc(rest);
  parts.high += high;
  parts.middle += middle;
  parts.low += std::trunc((rest - middle) * 2147483648.0);
}

SKEIN_EXACT_FUNCTION ExactInt exact_from_parts(const ExactParts& parts) {
  return static_cast<ExactInt>(static_cast<std::int64_t>(parts.high)) * (ExactInt(1) << 62) +
         static_cast<ExactInt>(static_cast<std::int64_t>(parts.middle)) * (ExactInt(1) << 31) +
         static_cast<ExactInt>(static_cast<std::int64_t>(parts.low));
}

// trunc(t 2^S) as an integer. Exact either way: no floating-point rounding is involved.
SKEIN_EXACT_FUNCTION ExactInt to_exact(double t, const ExactScale& scale) {
  if (scale.factor != 0) {
    ExactParts parts;
    accumulate_exact(t, scale.factor, parts);
    return exact_from_parts(parts);
  }
  if (scale.zero) return 0;
  const std::uint64_t bits = detail::double_bits(t);
  const bool negative = (bits >> 63) != 0;
  const int biased = static_cast<int>((bits >> 52) & 0x7ff);
  const std::uint64_t fraction = bits & ((std::uint64_t(1) << 52) - 1);
  if (scale.nonfinite) {
    if (biased != 0x7ff) return 0;
    if (fraction != 0) return detail::kExactNanCount;
    return negative ? detail::kExactNegInfCount : detail::kExactPosInfCount;
  }
  // t = mantissa 2^exponent with an integer mantissa below 2^53.
  const std::uint64_t mantissa = biased == 0 ? fraction : (fraction | (std::uint64_t(1) << 52));
  const int exponent = (biased == 0 ? 1 : biased) - 1075;
  const int at = exponent + scale.shift;  // |t| 2^S < 2^83 by the choice of S, so the shift cannot overflow
  ExactInt magnitude;
  if (at >= 0)
    magnitude = static_cast<ExactInt>(mantissa) << at;
  else if (at > -64)
    magnitude = static_cast<ExactInt>(mantissa >> -at);
  else
    magnitude = 0;
  return negative ? -magnitude : magnitude;
}

// The sum of to_exact() terms as the nearest double (ties to even, done on the integer so that it is the
// same on every rank and every backend), times 2^-S.
double from_exact(ExactInt sum, const ExactScale& scale);

// --- Cross-rank reductions (comm/exact_sum.cpp) -----------------------------------------------------------

// In place: data[i] = sum over ranks of data[i], exactly (MPI_Allreduce with a user op on 16-byte elements).
void exact_allreduce(const Communicator& comm, ExactInt* data, std::size_t count);

// The whole two-pass protocol for host terms. `terms` is this rank's local_terms x length block (row-major:
// one row per term); result[c] = sum over every rank's rows of column c, exactly, with one scale per column
// (gradients of different layers differ by orders of magnitude, one scale for all would truncate the small
// ones). Two allreduces: the max (length doubles), then the sums (length x 16 bytes). Collective; every rank
// passes the same length.
void exact_sum_columns(const Communicator& comm, std::size_t length, std::size_t local_terms,
                       const double* terms, double* result);

// One exact sum of a host array spread over the ranks (local_terms on each).
double exact_sum(const Communicator& comm, const double* terms, std::size_t local_terms);

// The two passes split, for callers that compute their terms in a kernel (comm/ cannot see Kokkos):
// `max_magnitude` holds this rank's max exact_magnitude() per sum and becomes the global one; scales gets
// exact_scale() of each. Then the caller sums to_exact(t, scales[c]) locally and calls finish.
void exact_agree_scales(const Communicator& comm, std::size_t count, double* max_magnitude,
                        ExactScale* scales);
void exact_finish(const Communicator& comm, std::size_t count, ExactInt* local_sums, const ExactScale* scales,
                  double* result);

}  // namespace skein::comm
