// The vector-space policy that every Krylov and Lanczos solver in solvers/ is written against, and its
// implementation for distributed rank-1 Kokkos Views (each rank holds its owned entries).
#pragma once

#include "comm/view_collectives.hpp"
#include "engine/random.hpp"
#include "solvers/exact_reduce.hpp"

#include <Kokkos_Core.hpp>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace skein::solvers {

// A VectorSpace policy is a small copyable object (it refers to the communicator, it does not own it) with:
//
//   using vector_type = ...;   // a handle type: copies share data, like a Kokkos::View
//   vector_type create(const std::string& label) const;                    // zero-filled
//   void copy(const vector_type& from, const vector_type& to) const;      // to = from
//   void fill(const vector_type& v, double value) const;
//   void scale(const vector_type& v, double a) const;                     // v = a v
//   void axpby(double a, const vector_type& x, double b, const vector_type& y) const;  // y = a x + b y
//   void multiply(const vector_type& d, const vector_type& x, const vector_type& y) const;  // y = d .* x
//   void reciprocal(const vector_type& x, const vector_type& y) const;   // y = 1 / x, 0 where x == 0
//   // result[k] = <xs[k], ys[k]> for k < count, with ONE global reduction for all of them.
//   void dots(std::size_t count, const vector_type* const* xs, const vector_type* const* ys,
//             double* result) const;
//   // out = sum_k coeffs[k] xs[k] (out must not be one of xs).
//   void combine(std::size_t count, const vector_type* const* xs, const double* coeffs,
//                const vector_type& out) const;
//   // Entry with global index g gets engine::standard_normal(seed, stream, draw * global_size() + g).
//   void fill_normal(const vector_type& v, std::uint64_t seed, engine::StreamId stream,
//                    std::uint64_t draw) const;
//   std::int64_t global_size() const;
//   // Optional (trace and density estimators): +-1 entries keyed like fill_normal.
//   void fill_rademacher(const vector_type& v, std::uint64_t seed, engine::StreamId stream,
//                        std::uint64_t draw) const;
//
// Solvers only ever touch vectors through the space and the operator, so the vector type is whatever the
// operator wants. How a 3-D stencil with ghost layers plugs in: either (a) its apply() takes rank-1 Views
// of the owned cells (flattened, this rank's block) and copies them into its ghosted array before the
// stencil, using DistributedVectorSpace below; or (b) it defines its own space whose vector_type is the
// ghosted 3-D View and whose reductions run over the interior only (an MDRangePolicy over [g, n+g)^3),
// which avoids the copy. The solver never reads ghost cells, and the operator may write them.
//
// Reductions are reproducible for a fixed rank count and backend (each rank's partial sum is a
// deterministic Kokkos reduction, then one MPI allreduce); across rank counts the partial sums group
// differently, so results may differ in the last bits, unless the communicator asks for exact sums
// (comm.reproducible: comm/exact_sum.hpp, solvers/exact_reduce.hpp), which are the same bits at any rank
// count and block split. Decisions taken from reduced values (convergence, breakdown) are the same on every
// rank because every rank gets the same reduced value.

namespace detail {

// Up to this many dot products (or combined vectors) are fused into one kernel; more take several kernels,
// still with one allreduce at the end.
constexpr std::size_t kFused = 8;

// Array reduction over up to kFused pairs. No init/join: Kokkos' defaults (zero, +=) are the same in
// Kokkos 3.4 and 4.x, which differ in the signature a user-written join must have.
template <class ConstView>
struct FusedDots {
  using value_type = double[];
  using size_type = std::size_t;
  unsigned value_count = 0;
  ConstView x[kFused];
  ConstView y[kFused];

  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i, value_type sums) const {
    for (unsigned k = 0; k < value_count; ++k) {
      sums[k] += static_cast<double>(x[k](i)) * static_cast<double>(y[k](i));
    }
  }
};

// One dot product's terms, summed exactly (solvers/exact_reduce.hpp); always in double.
template <class ConstView>
struct DotTerm {
  ConstView x, y;
  KOKKOS_INLINE_FUNCTION double operator()(const std::int64_t i) const {
    return static_cast<double>(x(i)) * static_cast<double>(y(i));
  }
};

template <class ConstView, class View>
struct FusedCombine {
  ConstView x[kFused];
  double c[kFused] = {};
  unsigned count = 0;
  bool accumulate = false;
  View out;

  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i) const {
    double sum = accumulate ? static_cast<double>(out(i)) : 0.0;
    for (unsigned k = 0; k < count; ++k) sum += c[k] * static_cast<double>(x[k](i));
    out(i) = static_cast<typename View::value_type>(sum);
  }
};

}  // namespace detail

// Vectors are rank-1 Views of this rank's owned entries, a contiguous block [global_offset, +local_size)
// of the global index space. Scalar may be float (storage); reductions always accumulate in double.
template <class Scalar = double, class MemorySpace = Kokkos::DefaultExecutionSpace::memory_space>
class DistributedVectorSpace {
 public:
  using scalar_type = Scalar;
  using vector_type = Kokkos::View<Scalar*, MemorySpace>;
  using const_vector_type = Kokkos::View<const Scalar*, MemorySpace>;
  using execution_space = typename vector_type::execution_space;
  using policy_type = Kokkos::RangePolicy<execution_space, Kokkos::IndexType<std::int64_t>>;

  DistributedVectorSpace(const comm::Communicator& comm, std::int64_t local_size, std::int64_t global_offset,
                         std::int64_t global_size)
      : comm_(&comm), local_size_(local_size), global_offset_(global_offset), global_size_(global_size) {}

  // The even share used everywhere in skein: rank r of P owns [r*n/P, (r+1)*n/P).
  static DistributedVectorSpace even(const comm::Communicator& comm, std::int64_t global_size) {
    const std::int64_t p = comm.size(), r = comm.rank();
    const std::int64_t begin = r * global_size / p, end = (r + 1) * global_size / p;
    return DistributedVectorSpace(comm, end - begin, begin, global_size);
  }

  const comm::Communicator& communicator() const { return *comm_; }
  std::int64_t local_size() const { return local_size_; }
  std::int64_t global_offset() const { return global_offset_; }
  std::int64_t global_size() const { return global_size_; }
  policy_type policy() const { return policy_type(0, local_size_); }

  vector_type create(const std::string& label) const {
    return vector_type(label, static_cast<std::size_t>(local_size_));
  }
  void copy(const vector_type& from, const vector_type& to) const { Kokkos::deep_copy(to, from); }
  void fill(const vector_type& v, double value) const { Kokkos::deep_copy(v, static_cast<Scalar>(value)); }

  void scale(const vector_type& v, double a) const {
    const Scalar s = static_cast<Scalar>(a);
    Kokkos::parallel_for(
        "skein::scale", policy(), KOKKOS_LAMBDA(const std::int64_t i) { v(i) *= s; });
  }

  void axpby(double a, const vector_type& x, double b, const vector_type& y) const {
    const Scalar sa = static_cast<Scalar>(a), sb = static_cast<Scalar>(b);
    if (b == 0.0) {  // y may hold NaN garbage; 0 * NaN would keep it
      Kokkos::parallel_for(
          "skein::axpy0", policy(), KOKKOS_LAMBDA(const std::int64_t i) { y(i) = sa * x(i); });
    } else {
      Kokkos::parallel_for(
          "skein::axpby", policy(), KOKKOS_LAMBDA(const std::int64_t i) { y(i) = sa * x(i) + sb * y(i); });
    }
  }

  void multiply(const vector_type& d, const vector_type& x, const vector_type& y) const {
    Kokkos::parallel_for(
        "skein::multiply", policy(), KOKKOS_LAMBDA(const std::int64_t i) { y(i) = d(i) * x(i); });
  }

  void reciprocal(const vector_type& x, const vector_type& y) const {
    Kokkos::parallel_for(
        "skein::reciprocal", policy(),
        KOKKOS_LAMBDA(const std::int64_t i) { y(i) = x(i) == Scalar(0) ? Scalar(0) : Scalar(1) / x(i); });
  }

  void dots(std::size_t count, const vector_type* const* xs, const vector_type* const* ys,
            double* result) const {
    if (comm_->exact_sums()) {
      std::vector<detail::DotTerm<const_vector_type>> terms(count);
      for (std::size_t k = 0; k < count; ++k) terms[k] = {*xs[k], *ys[k]};
      exact_sums(*comm_, policy(), count, terms.data(), result);
      return;
    }
    for (std::size_t begin = 0; begin < count; begin += detail::kFused) {
      detail::FusedDots<const_vector_type> functor;
      functor.value_count =
          static_cast<unsigned>(count - begin < detail::kFused ? count - begin : detail::kFused);
      for (unsigned k = 0; k < functor.value_count; ++k) {
        functor.x[k] = *xs[begin + k];
        functor.y[k] = *ys[begin + k];
      }
      Kokkos::View<double*, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> out(
          result + begin, functor.value_count);
      Kokkos::parallel_reduce("skein::dots", policy(), functor, out);
    }
    Kokkos::fence();
    comm_->allreduce_inplace(result, count, comm::Op::sum);
  }

  void combine(std::size_t count, const vector_type* const* xs, const double* coeffs,
               const vector_type& out) const {
    if (count == 0) {
      fill(out, 0.0);
      return;
    }
    for (std::size_t begin = 0; begin < count; begin += detail::kFused) {
      detail::FusedCombine<const_vector_type, vector_type> functor;
      functor.count = static_cast<unsigned>(count - begin < detail::kFused ? count - begin : detail::kFused);
      for (unsigned k = 0; k < functor.count; ++k) {
        functor.x[k] = *xs[begin + k];
        functor.c[k] = coeffs[begin + k];
      }
      functor.accumulate = begin > 0;
      functor.out = out;
      Kokkos::parallel_for("skein::combine", policy(), functor);
    }
  }

  void fill_normal(const vector_type& v, std::uint64_t seed, engine::StreamId stream,
                   std::uint64_t draw) const {
    const std::uint64_t first = draw * static_cast<std::uint64_t>(global_size_) + global_offset_;
    Kokkos::parallel_for(
        "skein::fill_normal", policy(), KOKKOS_LAMBDA(const std::int64_t i) {
          v(i) = static_cast<Scalar>(
              engine::standard_normal(seed, stream, first + static_cast<std::uint64_t>(i)));
        });
  }

  // +-1 with equal probability, keyed like fill_normal (Hutchinson's trace estimator, SLQ start vectors).
  void fill_rademacher(const vector_type& v, std::uint64_t seed, engine::StreamId stream,
                       std::uint64_t draw) const {
    const std::uint64_t first = draw * static_cast<std::uint64_t>(global_size_) + global_offset_;
    Kokkos::parallel_for(
        "skein::fill_rademacher", policy(), KOKKOS_LAMBDA(const std::int64_t i) {
          v(i) = static_cast<Scalar>(engine::rademacher(seed, stream, first + static_cast<std::uint64_t>(i)));
        });
  }

 private:
  const comm::Communicator* comm_;
  std::int64_t local_size_;
  std::int64_t global_offset_;
  std::int64_t global_size_;
};

// --- Conveniences on any VectorSpace ------------------------------------------------------------------

template <class Space>
double dot(const Space& space, const typename Space::vector_type& x, const typename Space::vector_type& y) {
  const typename Space::vector_type* xs[1] = {&x};
  const typename Space::vector_type* ys[1] = {&y};
  double result = 0.0;
  space.dots(1, xs, ys, &result);
  return result;
}

template <class Space>
double norm2(const Space& space, const typename Space::vector_type& x) {
  const double squared = dot(space, x, x);
  return squared > 0.0 ? std::sqrt(squared) : 0.0;
}

// Several dot products of (x_k, y_k) pairs with one reduction: multi_dot(space, {{&r, &r}, {&r, &z}}).
template <class Space, std::size_t N>
std::array<double, N> multi_dot(
    const Space& space,
    const std::pair<const typename Space::vector_type*, const typename Space::vector_type*> (&pairs)[N]) {
  const typename Space::vector_type* xs[N];
  const typename Space::vector_type* ys[N];
  for (std::size_t k = 0; k < N; ++k) {
    xs[k] = pairs[k].first;
    ys[k] = pairs[k].second;
  }
  std::array<double, N> result{};
  space.dots(N, xs, ys, result.data());
  return result;
}

}  // namespace skein::solvers
