// The VectorSpace policy (vector_space.hpp) for ghosted 3-D Poisson fields, so CgSolver runs on the
// operator's own layout with no copy in or out: element-wise operations run over the whole padded array
// (contiguous, and ghosts stay harmless combinations), reductions over the owned cells only; exact
// (comm/exact_sum.hpp) when the communicator asks for it (comm.reproducible), and then the same bits at any
// rank count, so CG iterates do not depend on it.
#pragma once

#include "comm/cartesian.hpp"
#include "engine/random.hpp"
#include "solvers/exact_reduce.hpp"
#include "solvers/poisson_operator.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace skein::solvers {

namespace detail {

using SpacePolicy1 = Kokkos::RangePolicy<Kokkos::IndexType<std::int64_t>>;
using SpacePolicy3 = Kokkos::MDRangePolicy<Kokkos::Rank<3>, Kokkos::IndexType<int>>;
constexpr std::size_t kSpaceFused = 8;  // vectors combined per kernel

// Element-wise kernels on the flat padded array (a LayoutRight View is contiguous).
struct SpaceAxpby {
  double* y;
  const double* x;
  double a, b;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t i) const { y[i] = a * x[i] + b * y[i]; }
};
struct SpaceAx {  // y = a x, never reading y (it may hold NaN garbage, which 0 * y would keep)
  double* y;
  const double* x;
  double a;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t i) const { y[i] = a * x[i]; }
};
struct SpaceMultiply {
  double* y;
  const double *d, *x;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t i) const { y[i] = d[i] * x[i]; }
};
struct SpaceReciprocal {
  double* y;
  const double* x;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t i) const { y[i] = x[i] == 0.0 ? 0.0 : 1.0 / x[i]; }
};
struct SpaceCombine {
  double* out;
  const double* x[kSpaceFused];
  double c[kSpaceFused] = {};
  unsigned count = 0;
  bool accumulate = false;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t i) const {
    double sum = accumulate ? out[i] : 0.0;
    for (unsigned k = 0; k < count; ++k) sum += c[k] * x[k][i];
    out[i] = sum;
  }
};
// One dot product over the owned cells: a plain sum, or its terms summed exactly when the communicator asks
// for exact sums (solvers/exact_reduce.hpp). Several are several kernels (one allreduce for all, two when
// exact): in Kokkos 3.4 an MDRange array reduction is slower than separate scalar ones.
struct SpaceDot {
  Kokkos::View<const double***, Kokkos::LayoutRight> x, y;
  KOKKOS_INLINE_FUNCTION void operator()(int i, int j, int k, double& sum) const {
    sum += x(i, j, k) * y(i, j, k);
  }
};
struct SpaceDotTerm {  // its terms (a functor with one operator(): Kokkos deduces a reducer's type from it)
  Kokkos::View<const double***, Kokkos::LayoutRight> x, y;
  KOKKOS_INLINE_FUNCTION double operator()(int i, int j, int k) const { return x(i, j, k) * y(i, j, k); }
};
struct SpaceFillNormal {
  PoissonField v;
  std::uint64_t seed;
  engine::StreamId stream;
  std::uint64_t first;  // draw * global size
  std::int64_t offset[3], global[3];
  KOKKOS_INLINE_FUNCTION void operator()(int i, int j, int k) const {
    const std::int64_t g =
        ((offset[0] + i - 1) * global[1] + (offset[1] + j - 1)) * global[2] + (offset[2] + k - 1);
    v(i, j, k) = engine::standard_normal(seed, stream, first + static_cast<std::uint64_t>(g));
  }
};

}  // namespace detail

// Vectors are PoissonFields (ghost width 1) of one decomposition. Global index of cell (i, j, k):
// (i * ny + j) * nz + k, so fill_normal gives the same field at any rank count.
class PoissonVectorSpace {
 public:
  using vector_type = PoissonField;

  explicit PoissonVectorSpace(const comm::CartDecomposition& decomposition) : decomposition_(decomposition) {
    const auto owned = decomposition_.owned();
    for (int a = 0; a < 3; ++a) {
      offset_[a] = owned.offset[a];
      extent_[a] = owned.extent[a];
    }
    span_ = (extent_[0] + 2) * (extent_[1] + 2) * (extent_[2] + 2);
  }
  explicit PoissonVectorSpace(const PoissonOperator& op) : PoissonVectorSpace(op.decomposition()) {}

  const comm::CartDecomposition& decomposition() const { return decomposition_; }
  std::int64_t global_size() const {
    const auto g = decomposition_.global_extent();
    return g[0] * g[1] * g[2];
  }

  vector_type create(const std::string& label) const {
    return comm::make_field<double>(decomposition_, 1, label);
  }
  void copy(const vector_type& from, const vector_type& to) const { Kokkos::deep_copy(to, from); }
  void fill(const vector_type& v, double value) const { Kokkos::deep_copy(v, value); }
  void scale(const vector_type& v, double a) const { axpby(a, v, 0.0, v); }
  void axpby(double a, const vector_type& x, double b, const vector_type& y) const {
    if (b == 0.0)
      Kokkos::parallel_for("poisson_space_ax", flat(), detail::SpaceAx{y.data(), x.data(), a});
    else
      Kokkos::parallel_for("poisson_space_axpby", flat(), detail::SpaceAxpby{y.data(), x.data(), a, b});
  }
  void multiply(const vector_type& d, const vector_type& x, const vector_type& y) const {
    Kokkos::parallel_for("poisson_space_multiply", flat(),
                         detail::SpaceMultiply{y.data(), d.data(), x.data()});
  }
  void reciprocal(const vector_type& x, const vector_type& y) const {
    Kokkos::parallel_for("poisson_space_reciprocal", flat(), detail::SpaceReciprocal{y.data(), x.data()});
  }
  void dots(std::size_t count, const vector_type* const* xs, const vector_type* const* ys,
            double* result) const {
    const auto& comm = decomposition_.comm();
    if (comm.exact_sums()) {
      std::vector<detail::SpaceDotTerm> terms(count);
      for (std::size_t m = 0; m < count; ++m) terms[m] = detail::SpaceDotTerm{*xs[m], *ys[m]};
      exact_sums(comm, owned(), count, terms.data(), result);
      return;
    }
    for (std::size_t m = 0; m < count; ++m)
      Kokkos::parallel_reduce("poisson_space_dot", owned(), detail::SpaceDot{*xs[m], *ys[m]}, result[m]);
    Kokkos::fence();
    comm.allreduce_inplace(result, count, comm::Op::sum);
  }
  void combine(std::size_t count, const vector_type* const* xs, const double* coeffs,
               const vector_type& out) const {
    if (count == 0) {
      fill(out, 0.0);
      return;
    }
    for (std::size_t begin = 0; begin < count; begin += detail::kSpaceFused) {
      detail::SpaceCombine functor;
      functor.out = out.data();
      functor.count = static_cast<unsigned>(std::min(count - begin, detail::kSpaceFused));
      for (unsigned m = 0; m < functor.count; ++m) {
        functor.x[m] = xs[begin + m]->data();
        functor.c[m] = coeffs[begin + m];
      }
      functor.accumulate = begin > 0;
      Kokkos::parallel_for("poisson_space_combine", flat(), functor);
    }
  }
  void fill_normal(const vector_type& v, std::uint64_t seed, engine::StreamId stream,
                   std::uint64_t draw) const {
    fill(v, 0.0);
    const auto g = decomposition_.global_extent();
    detail::SpaceFillNormal functor{v,  seed, stream, draw * static_cast<std::uint64_t>(global_size()),
                                    {}, {}};
    for (int a = 0; a < 3; ++a) {
      functor.offset[a] = offset_[a];
      functor.global[a] = g[a];
    }
    Kokkos::parallel_for("poisson_space_fill_normal", owned(), functor);
  }

 private:
  detail::SpacePolicy1 flat() const { return detail::SpacePolicy1(0, span_); }
  detail::SpacePolicy3 owned() const {
    return detail::SpacePolicy3({1, 1, 1},
                                {static_cast<int>(extent_[0]) + 1, static_cast<int>(extent_[1]) + 1,
                                 static_cast<int>(extent_[2]) + 1});
  }

  comm::CartDecomposition decomposition_;
  std::int64_t offset_[3] = {}, extent_[3] = {};
  std::int64_t span_ = 0;
};

// CgSolver's projector for `op`: removes the mean over fluid cells when op is singular (all Neumann), none
// (an empty function) otherwise. `op` must outlive it.
inline std::function<void(const PoissonField&)> poisson_projector(const PoissonOperator& op) {
  if (!op.singular()) return {};
  return [&op](const PoissonField& v) { op.remove_mean(v); };
}

}  // namespace skein::solvers
