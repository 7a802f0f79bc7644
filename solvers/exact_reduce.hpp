// Rank-count-independent global sums of kernel-computed terms (comm/exact_sum.hpp's fixed-point sums): a
// Kokkos max pass, the agreed scale, a Kokkos pass summing __int128, one exact allreduce. The same bits at
// any rank count, any decomposition and any backend, so Krylov iterates do not depend on how many ranks ran.
#pragma once

#include "comm/exact_sum.hpp"
#include "comm/view_collectives.hpp"

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace skein::solvers {

namespace detail {

// Term: a functor term(i, j, k) (rank-3 index) or term(i) (rank-1) returning the double to be summed.
// Rank-3 boxes run as (i, j) rows with the k loop inside: the accumulator stays in registers (an
// __int128 reduced through Kokkos 3.4's MDRange tile loop per cell ran ~3x slower).
template <class Term>
struct ExactMax3 {
  Term term;
  int k_begin, k_end;
  KOKKOS_INLINE_FUNCTION void operator()(int i, int j, double& m) const {
    double row = m;
    for (int k = k_begin; k < k_end; ++k) {
      const double a = comm::exact_magnitude(term(i, j, k));
      row = a > row ? a : row;
    }
    m = row;
  }
};
template <class Term>
struct ExactSum3 {
  using value_type = comm::ExactInt;  // Kokkos' default init (0) and join (+=) are what an exact sum needs
  Term term;
  comm::ExactScale scale;
  int k_begin, k_end;
  KOKKOS_INLINE_FUNCTION void operator()(int i, int j, value_type& sum) const {
    if (scale.factor != 0) {  // a row is far shorter than kExactPartsTerms
      comm::ExactParts parts;
      for (int k = k_begin; k < k_end; ++k) comm::accumulate_exact(term(i, j, k), scale.factor, parts);
      sum += comm::exact_from_parts(parts);
    } else {
      for (int k = k_begin; k < k_end; ++k) sum += comm::to_exact(term(i, j, k), scale);
    }
  }
};
template <class Term>
struct ExactMax1 {
  Term term;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t i, double& m) const {
    const double a = comm::exact_magnitude(term(i));
    if (a > m) m = a;
  }
};
// Rank-1 ranges run in chunks of kExactChunk terms, each chunk's parts summed in doubles (see ExactParts).
constexpr std::int64_t kExactChunk = 2048;
template <class Term>
struct ExactSum1 {
  using value_type = comm::ExactInt;
  Term term;
  comm::ExactScale scale;
  std::int64_t begin, end;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t chunk, value_type& sum) const {
    const std::int64_t first = begin + chunk * kExactChunk;
    const std::int64_t last = first + kExactChunk < end ? first + kExactChunk : end;
    if (scale.factor != 0) {
      comm::ExactParts parts;
      for (std::int64_t i = first; i < last; ++i) comm::accumulate_exact(term(i), scale.factor, parts);
      sum += comm::exact_from_parts(parts);
    } else {
      for (std::int64_t i = first; i < last; ++i) sum += comm::to_exact(term(i), scale);
    }
  }
};

// 3 for an MDRangePolicy<Rank<3>>, 1 for a RangePolicy (which has no `rank`).
template <class Policy, class = void>
struct policy_rank {
  static constexpr int value = 1;
};
template <class Policy>
struct policy_rank<Policy, std::void_t<decltype(Policy::rank)>> {
  static constexpr int value = Policy::rank;
};

}  // namespace detail

// result[m] = sum over every rank's `policy` of terms[m], exactly (see comm/exact_sum.hpp). Collective: two
// allreduces for all `count` sums together (count doubles, then count x 16 bytes). Policy: a RangePolicy
// (terms called as term(i)) or a rank-3 MDRangePolicy (term(i, j, k)).
template <class Policy, class Term>
void exact_sums(const comm::Communicator& comm, const Policy& policy, std::size_t count, const Term* terms,
                double* result) {
  std::vector<double> max_magnitude(count, 0.0);
  std::vector<comm::ExactScale> scales(count);
  std::vector<comm::ExactInt> sums(count, 0);
  if constexpr (detail::policy_rank<Policy>::value == 3) {
    using Rows =
        Kokkos::MDRangePolicy<typename Policy::execution_space, Kokkos::Rank<2>, Kokkos::IndexType<int>>;
    const Rows rows({static_cast<int>(policy.m_lower[0]), static_cast<int>(policy.m_lower[1])},
                    {static_cast<int>(policy.m_upper[0]), static_cast<int>(policy.m_upper[1])});
    const int k_begin = static_cast<int>(policy.m_lower[2]), k_end = static_cast<int>(policy.m_upper[2]);
    for (std::size_t m = 0; m < count; ++m)
      Kokkos::parallel_reduce("skein::exact_max", rows, detail::ExactMax3<Term>{terms[m], k_begin, k_end},
                              Kokkos::Max<double>(max_magnitude[m]));
    Kokkos::fence();
    comm::exact_agree_scales(comm, count, max_magnitude.data(), scales.data());
    for (std::size_t m = 0; m < count; ++m)
      Kokkos::parallel_reduce("skein::exact_sum", rows,
                              detail::ExactSum3<Term>{terms[m], scales[m], k_begin, k_end}, sums[m]);
  } else {
    for (std::size_t m = 0; m < count; ++m)
      Kokkos::parallel_reduce("skein::exact_max", policy, detail::ExactMax1<Term>{terms[m]},
                              Kokkos::Max<double>(max_magnitude[m]));
    Kokkos::fence();
    comm::exact_agree_scales(comm, count, max_magnitude.data(), scales.data());
    const std::int64_t begin = static_cast<std::int64_t>(policy.begin()),
                       end = static_cast<std::int64_t>(policy.end());
    const std::int64_t chunks = (end - begin + detail::kExactChunk - 1) / detail::kExactChunk;
    const Kokkos::RangePolicy<typename Policy::execution_space, Kokkos::IndexType<std::int64_t>> chunked(
        0, chunks);
    for (std::size_t m = 0; m < count; ++m)
      Kokkos::parallel_reduce("skein::exact_sum", chunked,
                              detail::ExactSum1<Term>{terms[m], scales[m], begin, end}, sums[m]);
  }
  Kokkos::fence();
  comm::exact_finish(comm, count, sums.data(), scales.data(), result);
}

template <class Policy, class Term>
double exact_sum(const comm::Communicator& comm, const Policy& policy, const Term& term) {
  double result = 0.0;
  exact_sums(comm, policy, 1, &term, &result);
  return result;
}

}  // namespace skein::solvers
