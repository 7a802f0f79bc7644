// Dense matrix products on row-major 2-D Kokkos Views (C = alpha op(A) op(B) + beta C, y = alpha op(A) x +
// beta y): CBLAS (OpenBLAS) for host-accessible memory; the neural-network layers of solvers/nn use them.
#pragma once

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace skein::solvers::blas {

// Transposition of an operand, as BLAS names it.
enum class Op { none, transpose };

namespace detail {

// The row-major CBLAS calls on raw host pointers (dense_blas.cpp, so that cblas.h stays out of headers).
// Leading dimensions are row strides in elements. OpenBLAS's own thread count applies: the caller decides
// it (OPENBLAS_NUM_THREADS or openblas_set_num_threads), solvers/ never sets it.
void host_gemm(Op op_a, Op op_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
               int ldb, float beta, float* c, int ldc);
void host_gemm(Op op_a, Op op_b, int m, int n, int k, double alpha, const double* a, int lda, const double* b,
               int ldb, double beta, double* c, int ldc);
// y = alpha op(A) x + beta y with A of shape rows x cols (row-major, leading dimension lda).
void host_gemv(Op op_a, int rows, int cols, float alpha, const float* a, int lda, const float* x, float beta,
               float* y);
void host_gemv(Op op_a, int rows, int cols, double alpha, const double* a, int lda, const double* x,
               double beta, double* y);

template <class View>
int leading_dimension(const View& v) {
  if (v.extent(1) > 1 && v.stride(1) != 1)
    throw std::invalid_argument("blas: a matrix operand must have unit column stride (row-major)");
  const auto ld = static_cast<std::int64_t>(v.stride(0));
  return static_cast<int>(ld < static_cast<std::int64_t>(v.extent(1)) ? v.extent(1) : ld);
}

// Reference kernels for memory the host cannot read. A device build links KokkosKernels and calls
// KokkosBlas::gemm / gemv here instead (they dispatch to cuBLAS / rocBLAS); these keep such a build
// correct meanwhile, at a fraction of the speed.
template <class AV, class BV, class CV>
struct NaiveGemm {
  using scalar = typename CV::non_const_value_type;
  AV a;
  BV b;
  CV c;
  bool ta, tb;
  int k;
  scalar alpha, beta;
  KOKKOS_INLINE_FUNCTION void operator()(const int i, const int j) const {
    scalar sum = 0;
    for (int p = 0; p < k; ++p) sum += (ta ? a(p, i) : a(i, p)) * (tb ? b(j, p) : b(p, j));
    c(i, j) = alpha * sum + (beta == scalar(0) ? scalar(0) : beta * c(i, j));
  }
};

template <class AV, class XV, class YV>
struct NaiveGemv {
  using scalar = typename YV::non_const_value_type;
  AV a;
  XV x;
  YV y;
  bool ta;
  int k;
  scalar alpha, beta;
  KOKKOS_INLINE_FUNCTION void operator()(const int i) const {
    scalar sum = 0;
    for (int p = 0; p < k; ++p) sum += (ta ? a(p, i) : a(i, p)) * x(p);
    y(i) = alpha * sum + (beta == scalar(0) ? scalar(0) : beta * y(i));
  }
};

}  // namespace detail

// C (m x n) = alpha op(A) op(B) + beta C; every operand a 2-D View with unit column stride (LayoutRight
// or a row block of one). beta == 0 ignores C's old contents (NaN included), as BLAS does.
template <class AV, class BV, class CV>
void gemm(Op op_a, Op op_b, typename CV::non_const_value_type alpha, const AV& a, const BV& b,
          typename CV::non_const_value_type beta, const CV& c) {
  using scalar = typename CV::non_const_value_type;
  static_assert(std::is_same_v<scalar, float> || std::is_same_v<scalar, double>, "blas: float or double");
  const int m = static_cast<int>(c.extent(0)), n = static_cast<int>(c.extent(1));
  const bool ta = op_a == Op::transpose, tb = op_b == Op::transpose;
  const int k = static_cast<int>(ta ? a.extent(0) : a.extent(1));
  const int am = static_cast<int>(ta ? a.extent(1) : a.extent(0));
  const int bk = static_cast<int>(tb ? b.extent(1) : b.extent(0));
  const int bn = static_cast<int>(tb ? b.extent(0) : b.extent(1));
  if (am != m || bn != n || bk != k)
    throw std::invalid_argument("blas::gemm: shapes do not chain (" + std::to_string(m) + "x" +
                                std::to_string(n) + " from " + std::to_string(am) + "x" + std::to_string(k) +
                                " times " + std::to_string(bk) + "x" + std::to_string(bn) + ")");
  if (m == 0 || n == 0) return;
  using memory_space = typename CV::memory_space;
  // k == 0 (C = beta C) goes to the reference kernel: not every BLAS takes it.
  if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, memory_space>::accessible) {
    if (k > 0) {
      detail::host_gemm(op_a, op_b, m, n, k, alpha, a.data(), detail::leading_dimension(a), b.data(),
                        detail::leading_dimension(b), beta, c.data(), detail::leading_dimension(c));
      return;
    }
  }
  {
    using exec = typename CV::execution_space;
    Kokkos::parallel_for("skein::blas::naive_gemm",
                         Kokkos::MDRangePolicy<exec, Kokkos::Rank<2>>({0, 0}, {m, n}),
                         detail::NaiveGemm<AV, BV, CV>{a, b, c, ta, tb, k, alpha, beta});
  }
}

// y = alpha op(A) x + beta y, A a 2-D View with unit column stride, x and y 1-D contiguous Views.
template <class AV, class XV, class YV>
void gemv(Op op_a, typename YV::non_const_value_type alpha, const AV& a, const XV& x,
          typename YV::non_const_value_type beta, const YV& y) {
  const int rows = static_cast<int>(a.extent(0)), cols = static_cast<int>(a.extent(1));
  const bool ta = op_a == Op::transpose;
  const int k = ta ? rows : cols;
  if (static_cast<int>(x.extent(0)) != k || static_cast<int>(y.extent(0)) != (ta ? cols : rows))
    throw std::invalid_argument("blas::gemv: shapes do not chain");
  if (y.extent(0) == 0) return;
  using memory_space = typename YV::memory_space;
  if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, memory_space>::accessible) {
    if (k > 0) {
      detail::host_gemv(op_a, rows, cols, alpha, a.data(), detail::leading_dimension(a), x.data(), beta,
                        y.data());
      return;
    }
  }
  Kokkos::parallel_for("skein::blas::naive_gemv",
                       Kokkos::RangePolicy<typename YV::execution_space>(0, y.extent(0)),
                       detail::NaiveGemv<AV, XV, YV>{a, x, y, ta, k, alpha, beta});
}

}  // namespace skein::solvers::blas
