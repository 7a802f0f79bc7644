// The FeatureBlock policy the CCA / PLS solvers are written against (this rank's columns of a standardised
// n x p data matrix, read by row subsets), and DenseFeatureBlock, its implementation on an in-memory View.
#pragma once

#include "engine/error.hpp"
#include "engine/random.hpp"
#include "solvers/dense_blas.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

namespace skein::solvers {

// A FeatureBlock<Scalar> (Scalar = float or double) is this rank's contiguous block of columns of an n x p
// data matrix X (one "view" of CCA: genotypes, imaging features, ...). Columns are sharded over ranks as
// comm::BlockPartition(p, P).range(rank); rows (samples) never are: every rank sees all n samples of its
// columns. The solvers only touch data through:
//
//   using scalar_type = Scalar;
//   std::int64_t rows() const;          // n
//   std::int64_t columns() const;       // this rank's column count (may be 0)
//   std::int64_t first_column() const;  // global index of its first column
//   // Z (b x k) += Xs[rows, my columns] * U (my columns x k). Each rank adds its partial product; the
//   // caller allreduces Z over ranks. rows: b global sample indices (0..n-1), any order, repeats allowed.
//   void multiply(Kokkos::View<const std::int64_t*> rows,
//                 Kokkos::View<const Scalar**, Kokkos::LayoutRight> U,
//                 Kokkos::View<Scalar**, Kokkos::LayoutRight> Z) const;
//   // out (my columns x k) = Xs[rows, my columns]^T * G (b x k). No communication (out is overwritten).
//   void transpose_multiply(Kokkos::View<const std::int64_t*> rows,
//                           Kokkos::View<const Scalar**, Kokkos::LayoutRight> G,
//                           Kokkos::View<Scalar**, Kokkos::LayoutRight> out) const;
//   // out (my columns x q) = Xs[all rows, my columns]^T * Y (n x q, rows in sample order 0..n-1): one pass
//   // over the data for the exact PLS solver (overwrites out; no communication).
//   void full_cross(Kokkos::View<const Scalar**, Kokkos::LayoutRight> Y,
//                   Kokkos::View<Scalar**, Kokkos::LayoutRight> out) const;
//
// Xs is X standardised with statistics over the training samples (all n rows, or the statistics rows the
// block was built with when validation rows share it):
// each column minus its mean and, with Standardize::scale, divided by its standard deviation (population
// form, divisor n; for genotypes sqrt(2 f (1 - f)), f the allele frequency). A column with zero spread is
// left centred (all zeros), never divided by zero. Missing values are mean-imputed, i.e. 0 after centring.
// Batch-centring (the minibatch mean of a projection) is the solver's business: it centres Z and G, and
// Xs^T (G - 1 mean(G)) = X̄^T G, so a block only does plain products.
//
// All Views are LayoutRight; host memory for now (the products go through solvers/dense_blas.hpp, which
// falls back to reference kernels for memory the host cannot read). Two implementations must give the same
// numbers for the same data: DenseFeatureBlock (below) and the PLINK genotype block of io/ or solvers/.

// How a block standardises its columns.
enum class Standardize { center, scale };

namespace detail {

// Column means and 1/scale over all n rows, in double (two passes: mean, then spread).
template <class Values>
struct ColumnStatistics {
  Values values;
  Kokkos::View<double*> means;
  Kokkos::View<double*> inverse_scales;
  Kokkos::View<const std::int64_t*> rows;  // the statistics rows; empty: rows 0..n-1
  std::int64_t n;
  bool scale;
  KOKKOS_INLINE_FUNCTION std::int64_t row(std::int64_t i) const { return rows.extent(0) > 0 ? rows(i) : i; }
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t j) const {
    double sum = 0.0;
    for (std::int64_t i = 0; i < n; ++i) sum += static_cast<double>(values(row(i), j));
    const double mean = n > 0 ? sum / static_cast<double>(n) : 0.0;
    means(j) = mean;
    double inverse = 1.0;
    if (scale) {
      double squares = 0.0;
      for (std::int64_t i = 0; i < n; ++i) {
        const double d = static_cast<double>(values(row(i), j)) - mean;
        squares += d * d;
      }
      const double sd = n > 0 ? engine::portable_sqrt(squares / static_cast<double>(n)) : 0.0;
      inverse = sd > 0.0 ? 1.0 / sd : 1.0;
    }
    inverse_scales(j) = inverse;
  }
};

// out(i, j) = standardised X(row_i, column0 + j), row_i = rows(i) or, with no rows View, row0 + i.
template <class Scalar, class Values, class Out>
struct GatherStandardized {
  Values values;
  Kokkos::View<const std::int64_t*> rows;
  bool contiguous;
  std::int64_t row0;
  std::int64_t column0;
  Kokkos::View<const double*> means;
  Kokkos::View<const double*> inverse_scales;
  Out out;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i, const std::int64_t j) const {
    const std::int64_t row = contiguous ? row0 + i : rows(i);
    const std::int64_t c = column0 + j;
    out(i, j) = static_cast<Scalar>((static_cast<double>(values(row, c)) - means(c)) * inverse_scales(c));
  }
};

}  // namespace detail

// This rank's columns of X held as an n x p_local View of raw values (copies of the View share its data:
// the caller keeps it alive). The standardisation statistics are computed once, at construction, over all
// n rows or the given statistics rows (like GenotypeFeatureBlock's statistics_rows). Products gather the
// needed rows of a slab of columns into a small buffer and call BLAS, so the extra memory is b x column_slab
// whatever p_local is.
template <class Scalar>
class DenseFeatureBlock {
 public:
  using scalar_type = Scalar;
  using Rows = Kokkos::View<const std::int64_t*>;
  using ConstMatrix = Kokkos::View<const Scalar**, Kokkos::LayoutRight>;
  using Matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight>;

  // Columns gathered per BLAS call (bounds the buffer at b x 2048 values).
  static constexpr std::int64_t column_slab = 2048;
  // Rows per slab in full_cross.
  static constexpr std::int64_t row_slab = 1024;

  // statistics_rows: the rows (distinct, in 0..n-1) whose values define each column's mean and scale, e.g.
  // the training rows when validation rows share the block; empty: all n rows.
  DenseFeatureBlock(ConstMatrix values, std::int64_t first_column, Standardize standardize,
                    Rows statistics_rows = Rows())
      : values_(values),
        first_column_(first_column),
        means_("DenseFeatureBlock::means", values.extent(1)),
        inverse_scales_("DenseFeatureBlock::inverse_scales", values.extent(1)) {
    if (first_column < 0) throw engine::InternalError("DenseFeatureBlock: negative first column");
    const std::int64_t count = statistics_rows.extent(0) > 0
                                   ? static_cast<std::int64_t>(statistics_rows.extent(0))
                                   : static_cast<std::int64_t>(values.extent(0));
    using exec = typename decltype(means_)::execution_space;
    Kokkos::parallel_for(
        "skein::DenseFeatureBlock::statistics",
        Kokkos::RangePolicy<exec>(0, static_cast<std::int64_t>(values.extent(1))),
        detail::ColumnStatistics<ConstMatrix>{values, means_, inverse_scales_, statistics_rows, count,
                                              standardize == Standardize::scale});
    Kokkos::fence();
  }

  std::int64_t rows() const { return static_cast<std::int64_t>(values_.extent(0)); }
  std::int64_t columns() const { return static_cast<std::int64_t>(values_.extent(1)); }
  std::int64_t first_column() const { return first_column_; }
  // Per-column statistics over all n rows (this rank's columns).
  Kokkos::View<const double*> means() const { return means_; }
  Kokkos::View<const double*> inverse_scales() const { return inverse_scales_; }

  void multiply(Rows rows, ConstMatrix U, Matrix Z) const {
    const std::int64_t b = static_cast<std::int64_t>(rows.extent(0));
    check_shapes("multiply", U.extent(0), Z.extent(0), b, U.extent(1), Z.extent(1));
    for (std::int64_t c0 = 0; c0 < columns(); c0 += column_slab) {
      const std::int64_t c1 = std::min(columns(), c0 + column_slab);
      auto slab = gather(rows, false, 0, b, c0, c1);
      auto u = Kokkos::subview(U, std::make_pair(c0, c1), Kokkos::ALL());
      blas::gemm(blas::Op::none, blas::Op::none, Scalar(1), slab, u, Scalar(1), Z);
    }
  }

  void transpose_multiply(Rows rows, ConstMatrix G, Matrix out) const {
    const std::int64_t b = static_cast<std::int64_t>(rows.extent(0));
    check_shapes("transpose_multiply", out.extent(0), G.extent(0), b, out.extent(1), G.extent(1));
    for (std::int64_t c0 = 0; c0 < columns(); c0 += column_slab) {
      const std::int64_t c1 = std::min(columns(), c0 + column_slab);
      auto slab = gather(rows, false, 0, b, c0, c1);
      auto o = Kokkos::subview(out, std::make_pair(c0, c1), Kokkos::ALL());
      blas::gemm(blas::Op::transpose, blas::Op::none, Scalar(1), slab, G, Scalar(0), o);
    }
  }

  void full_cross(ConstMatrix Y, Matrix out) const {
    const std::int64_t n = rows();
    check_shapes("full_cross", out.extent(0), Y.extent(0), n, out.extent(1), Y.extent(1));
    Kokkos::deep_copy(out, Scalar(0));
    for (std::int64_t c0 = 0; c0 < columns(); c0 += column_slab) {
      const std::int64_t c1 = std::min(columns(), c0 + column_slab);
      auto o = Kokkos::subview(out, std::make_pair(c0, c1), Kokkos::ALL());
      for (std::int64_t r0 = 0; r0 < n; r0 += row_slab) {
        const std::int64_t r1 = std::min(n, r0 + row_slab);
        auto slab = gather(Rows(), true, r0, r1 - r0, c0, c1);
        auto y = Kokkos::subview(Y, std::make_pair(r0, r1), Kokkos::ALL());
        blas::gemm(blas::Op::transpose, blas::Op::none, Scalar(1), slab, y, Scalar(1), o);
      }
    }
  }

 private:
  void check_shapes(const char* what, std::size_t weight_rows, std::size_t data_rows, std::int64_t b,
                    std::size_t k1, std::size_t k2) const {
    if (static_cast<std::int64_t>(weight_rows) != columns() || static_cast<std::int64_t>(data_rows) != b ||
        k1 != k2)
      throw engine::InternalError(std::string("DenseFeatureBlock::") + what + ": shapes do not match (" +
                                  std::to_string(columns()) + " columns, " + std::to_string(b) + " rows)");
  }

  // The standardised rows x columns [c0, c1) in the reused buffer (a b x (c1 - c0) LayoutRight View).
  Matrix gather(Rows rows, bool contiguous, std::int64_t row0, std::int64_t count, std::int64_t c0,
                std::int64_t c1) const {
    const std::int64_t width = c1 - c0;
    if (static_cast<std::int64_t>(buffer_.extent(0)) != count ||
        static_cast<std::int64_t>(buffer_.extent(1)) != width)
      buffer_ = Matrix(Kokkos::view_alloc(Kokkos::WithoutInitializing, "DenseFeatureBlock::slab"),
                       static_cast<std::size_t>(count), static_cast<std::size_t>(width));
    using exec = typename Matrix::execution_space;
    Kokkos::parallel_for("skein::DenseFeatureBlock::gather",
                         Kokkos::MDRangePolicy<exec, Kokkos::Rank<2>>({0, 0}, {count, width}),
                         detail::GatherStandardized<Scalar, ConstMatrix, Matrix>{
                             values_, rows, contiguous, row0, c0, means_, inverse_scales_, buffer_});
    Kokkos::fence();
    return buffer_;
  }

  ConstMatrix values_;
  std::int64_t first_column_;
  Kokkos::View<double*> means_;
  Kokkos::View<double*> inverse_scales_;
  mutable Matrix buffer_;
};

}  // namespace skein::solvers
