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
#include <memory>
#include <string>
#include <utility>
#include <vector>

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
//   // comm.reproducible: Z(g) = Xs[rows, local column group g] * U[group g], each group's product
//   // computed the same way on whichever rank owns it (solvers/cca_groups.hpp).
//   void multiply_groups(rows, U, std::int64_t group_columns, Kokkos::View<Scalar***, LayoutRight> Z) const;
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

// Where a DenseFeatureBlock that does not hold its values gets them (e.g. rows streamed from a file each
// time they are needed, so that the page cache, not the process, holds the data). Implementations live
// outside solvers/ (file I/O); the block calls them on the host, outside kernels. They must not
// communicate: ranks call them different numbers of times.
template <class Scalar>
class FeatureSource {
 public:
  using HostMatrix = Kokkos::View<Scalar**, Kokkos::LayoutRight, Kokkos::HostSpace>;
  virtual ~FeatureSource() = default;
  // n (the block's rows) and this rank's column count.
  virtual std::int64_t rows() const = 0;
  virtual std::int64_t columns() const = 0;
  // out (rows.size() x (c1 - c0)) = the raw (unstandardised) values of block rows `rows` (ascending,
  // distinct) and local columns [c0, c1). Must not throw for I/O or data errors: record them for the
  // caller to agree on, and leave finite values (zeros) in out.
  virtual void read(const std::vector<std::int64_t>& rows, std::int64_t c0, std::int64_t c1,
                    HostMatrix out) const = 0;
};

namespace detail {

// Column statistics over row chunks, each column's terms added in row order (so any split of the rows into
// consecutive chunks gives the same numbers). Work items are tiles of `tile` columns, so that a LayoutRight
// View is read along its rows (the per-column loop of one work item at a time was strided by the row
// length: a cache and TLB miss per value). In one pass over the values it adds, per column j,
//   sums(j)      += v                  (the mean: sum / n, as a plain sum, the same with or without scaling)
//   deviations(j) += v - shifts(j), squares(j) += (v - shifts(j))^2   (when Scaled)
// and the variance is (squares - deviations^2 / n) / n: the shifted-data form of the two-pass variance,
// exact (zero) when the spread is zero. The shift is a value of the column (ColumnShifts: its first
// statistics row), so (mean - shift)^2 <= (n - 1) variance and the cancellation loses at most what a plain
// sum of n terms may; for a typical shift, within a few standard deviations of the mean, a few ulps.
template <class Values, bool Scaled>
struct ColumnMoments {
  static constexpr std::int64_t tile = 64;
  Values values;
  Kokkos::View<const std::int64_t*> rows;  // empty: rows row0 .. row0 + count - 1
  std::int64_t row0, count, value_column0, stat_column0, columns;
  Kokkos::View<double*> sums, deviations, squares;
  Kokkos::View<const double*> shifts;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t t) const {
    const std::int64_t j0 = t * tile;
    const std::int64_t w = j0 + tile < columns ? tile : columns - j0;
    double sum[tile], deviation[tile], square[tile], shift[tile];
    for (std::int64_t j = 0; j < w; ++j) {
      sum[j] = sums(stat_column0 + j0 + j);
      if (Scaled) {
        deviation[j] = deviations(stat_column0 + j0 + j);
        square[j] = squares(stat_column0 + j0 + j);
        shift[j] = shifts(stat_column0 + j0 + j);
      }
    }
    for (std::int64_t i = 0; i < count; ++i) {
      const std::int64_t row = rows.extent(0) > 0 ? rows(row0 + i) : row0 + i;
      const auto* line = &values(row, value_column0 + j0);  // LayoutRight: the tile is contiguous
      for (std::int64_t j = 0; j < w; ++j) {
        const double v = static_cast<double>(line[j]);
        sum[j] += v;
        if (Scaled) {
          const double d = v - shift[j];
          deviation[j] += d;
          square[j] += d * d;
        }
      }
    }
    for (std::int64_t j = 0; j < w; ++j) {
      sums(stat_column0 + j0 + j) = sum[j];
      if (Scaled) {
        deviations(stat_column0 + j0 + j) = deviation[j];
        squares(stat_column0 + j0 + j) = square[j];
      }
    }
  }
};

// shifts(stat_column0 + j) = values(row, value_column0 + j): the shift of ColumnMoments.
template <class Values>
struct ColumnShifts {
  Values values;
  std::int64_t row, value_column0, stat_column0;
  Kokkos::View<double*> shifts;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t j) const {
    shifts(stat_column0 + j) = static_cast<double>(values(row, value_column0 + j));
  }
};

// out(i, j) = standardised values(row_i, value_column0 + j) with the statistics of local column
// stat_column0 + j; row_i = rows(row0 + i), or row0 + i with an empty rows View.
template <class Scalar, class Values, class Out>
struct GatherStandardized {
  Values values;
  Kokkos::View<const std::int64_t*> rows;
  std::int64_t row0;
  std::int64_t value_column0, stat_column0;
  Kokkos::View<const double*> means;
  Kokkos::View<const double*> inverse_scales;
  Out out;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i, const std::int64_t j) const {
    const std::int64_t row = rows.extent(0) > 0 ? rows(row0 + i) : row0 + i;
    const std::int64_t c = stat_column0 + j;
    out(i, j) = static_cast<Scalar>((static_cast<double>(values(row, value_column0 + j)) - means(c)) *
                                    inverse_scales(c));
  }
};

}  // namespace detail

// This rank's columns of X, either held as an n x p_local View of raw values (copies of the View share its
// data: the caller keeps it alive) or read on demand from a FeatureSource (streaming: the block then holds
// only O(row_slab x column_slab) values, plus one minibatch when it is small). The standardisation
// statistics are computed once, at construction, over all n rows or the given statistics rows (like
// GenotypeFeatureBlock's statistics_rows), in ascending row order.
//
// Both kinds do the same arithmetic in the same order, so they give bit-identical results for the same
// values: every product works on row chunks of at most row_slab rows (in the order given) and, within
// each, on column slabs of at most column_slab columns, gathering the standardised chunk x slab into a
// buffer and calling BLAS on it; row chunks accumulate in order. The extra memory is row_slab x
// column_slab values whatever n and p_local are.
template <class Scalar>
class DenseFeatureBlock {
 public:
  using scalar_type = Scalar;
  using Rows = Kokkos::View<const std::int64_t*>;
  using ConstMatrix = Kokkos::View<const Scalar**, Kokkos::LayoutRight>;
  using Matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight>;
  using Source = FeatureSource<Scalar>;
  using Grouped = Kokkos::View<Scalar***, Kokkos::LayoutRight>;

  // Columns gathered per BLAS call.
  static constexpr std::int64_t column_slab = 2048;
  // Rows per chunk (products and statistics).
  static constexpr std::int64_t row_slab = 1024;
  // A streamed block keeps the standardised rows of its last row chunk (a minibatch: multiply and then
  // transpose_multiply on the same rows read them once) when they take at most this many bytes.
  static constexpr std::int64_t cache_bytes = std::int64_t{256} << 20;
  // A streamed block's statistics pass reads its rows in pieces of about this many bytes (on the bench's
  // wide case, 256 KiB to 4 MiB cost about the same CPU time; 40 MiB 40% more).
  static constexpr std::int64_t statistics_bytes = std::int64_t{1} << 20;

  // statistics_rows: the rows (distinct, in 0..n-1) whose values define each column's mean and scale, e.g.
  // the training rows when validation rows share the block; empty: all n rows.
  DenseFeatureBlock(ConstMatrix values, std::int64_t first_column, Standardize standardize,
                    Rows statistics_rows = Rows())
      : values_(values),
        rows_(static_cast<std::int64_t>(values.extent(0))),
        columns_(static_cast<std::int64_t>(values.extent(1))),
        first_column_(first_column) {
    compute_statistics(standardize, statistics_rows);
  }

  // Values from `source` (shared: the block keeps it alive), read again each time they are needed.
  DenseFeatureBlock(std::shared_ptr<const Source> source, std::int64_t first_column, Standardize standardize,
                    Rows statistics_rows = Rows())
      : source_(std::move(source)),
        rows_(source_ ? source_->rows() : 0),
        columns_(source_ ? source_->columns() : 0),
        first_column_(first_column) {
    if (!source_) throw engine::InternalError("DenseFeatureBlock: no source");
    compute_statistics(standardize, statistics_rows);
  }

  std::int64_t rows() const { return rows_; }
  std::int64_t columns() const { return columns_; }
  std::int64_t first_column() const { return first_column_; }
  bool streamed() const { return static_cast<bool>(source_); }
  // Per-column statistics over the statistics rows (this rank's columns).
  Kokkos::View<const double*> means() const { return means_; }
  Kokkos::View<const double*> inverse_scales() const { return inverse_scales_; }

  void multiply(Rows rows, ConstMatrix U, Matrix Z) const {
    const std::int64_t b = static_cast<std::int64_t>(rows.extent(0));
    check_shapes("multiply", U.extent(0), Z.extent(0), b, U.extent(1), Z.extent(1));
    for_each_slab(
        rows, false, b,
        [&](std::int64_t r0, std::int64_t r1, std::int64_t c0, std::int64_t c1, const Matrix& slab) {
          auto u = Kokkos::subview(U, std::make_pair(c0, c1), Kokkos::ALL());
          auto z = Kokkos::subview(Z, std::make_pair(r0, r1), Kokkos::ALL());
          blas::gemm(blas::Op::none, blas::Op::none, Scalar(1), slab, u, Scalar(1), z);
        });
  }

  // comm.reproducible's partial products (solvers/cca_groups.hpp): Z(g, r, :) = Xs[rows(r), group g] U[group
  // g] for each local column group g of `group_columns` columns (local columns [g G, min((g + 1) G,
  // columns()))). A group lies inside one column slab (first_column() is a multiple of G and G divides
  // column_slab), so its product is one BLAS call per row chunk on its columns alone: the same bits on
  // whichever rank owns it. Z: groups x b x k, overwritten.
  void multiply_groups(Rows rows, ConstMatrix U, std::int64_t group_columns, Grouped Z) const {
    const std::int64_t b = static_cast<std::int64_t>(rows.extent(0));
    check_shapes("multiply_groups", U.extent(0), Z.extent(1), b, U.extent(1), Z.extent(2));
    if (group_columns < 1 || column_slab % group_columns != 0 || first_column_ % group_columns != 0 ||
        static_cast<std::int64_t>(Z.extent(0)) != (columns() + group_columns - 1) / group_columns)
      throw engine::InternalError("DenseFeatureBlock::multiply_groups: columns from " +
                                  std::to_string(first_column_) + " do not split into groups of " +
                                  std::to_string(group_columns));
    Kokkos::deep_copy(Z, Scalar(0));
    for_each_slab(
        rows, false, b,
        [&](std::int64_t r0, std::int64_t r1, std::int64_t c0, std::int64_t c1, const Matrix& slab) {
          for (std::int64_t g0 = c0; g0 < c1; g0 += group_columns) {
            const std::int64_t g1 = std::min(c1, g0 + group_columns);
            auto x = Kokkos::subview(slab, Kokkos::ALL(), std::make_pair(g0 - c0, g1 - c0));
            auto u = Kokkos::subview(U, std::make_pair(g0, g1), Kokkos::ALL());
            auto z = Kokkos::subview(Z, g0 / group_columns, std::make_pair(r0, r1), Kokkos::ALL());
            blas::gemm(blas::Op::none, blas::Op::none, Scalar(1), x, u, Scalar(0), z);
          }
        });
  }

  void transpose_multiply(Rows rows, ConstMatrix G, Matrix out) const {
    const std::int64_t b = static_cast<std::int64_t>(rows.extent(0));
    check_shapes("transpose_multiply", out.extent(0), G.extent(0), b, out.extent(1), G.extent(1));
    Kokkos::deep_copy(out, Scalar(0));
    for_each_slab(
        rows, false, b,
        [&](std::int64_t r0, std::int64_t r1, std::int64_t c0, std::int64_t c1, const Matrix& slab) {
          auto g = Kokkos::subview(G, std::make_pair(r0, r1), Kokkos::ALL());
          auto o = Kokkos::subview(out, std::make_pair(c0, c1), Kokkos::ALL());
          blas::gemm(blas::Op::transpose, blas::Op::none, Scalar(1), slab, g, Scalar(1), o);
        });
  }

  void full_cross(ConstMatrix Y, Matrix out) const {
    const std::int64_t n = rows();
    check_shapes("full_cross", out.extent(0), Y.extent(0), n, out.extent(1), Y.extent(1));
    Kokkos::deep_copy(out, Scalar(0));
    for_each_slab(
        Rows(), true, n,
        [&](std::int64_t r0, std::int64_t r1, std::int64_t c0, std::int64_t c1, const Matrix& slab) {
          auto y = Kokkos::subview(Y, std::make_pair(r0, r1), Kokkos::ALL());
          auto o = Kokkos::subview(out, std::make_pair(c0, c1), Kokkos::ALL());
          blas::gemm(blas::Op::transpose, blas::Op::none, Scalar(1), slab, y, Scalar(1), o);
        });
  }

 private:
  void check_shapes(const char* what, std::size_t weight_rows, std::size_t data_rows, std::int64_t b,
                    std::size_t k1, std::size_t k2) const {
    if (static_cast<std::int64_t>(weight_rows) != columns() || static_cast<std::int64_t>(data_rows) != b ||
        k1 != k2)
      throw engine::InternalError(std::string("DenseFeatureBlock::") + what + ": shapes do not match (" +
                                  std::to_string(columns()) + " columns, " + std::to_string(b) + " rows)");
  }

  // A rows x columns LayoutRight View over `storage`, grown (never shrunk) to hold it: buffers are reused
  // across chunks and slabs of different shapes, since fresh memory costs a page fault per page on first
  // touch (on the VM measured, more than reading the same bytes from the page cache).
  static Matrix shaped(Kokkos::View<Scalar*>& storage, std::int64_t offset, std::int64_t rows,
                       std::int64_t columns, const char* label) {
    const auto need = static_cast<std::size_t>(offset + rows * columns);
    if (storage.extent(0) < need)
      storage =
          Kokkos::View<Scalar*>(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string(label)), need);
    return Matrix(storage.data() + offset, static_cast<std::size_t>(rows), static_cast<std::size_t>(columns));
  }

  // A streamed block's raw values of the sorted distinct block rows `sorted` and columns [c0, c1) (the
  // source's read, copied to the block's memory space).
  Matrix read_raw(const std::vector<std::int64_t>& sorted, std::int64_t c0, std::int64_t c1) const {
    const auto count = static_cast<std::int64_t>(sorted.size());
    Matrix raw = shaped(raw_, 0, count, c1 - c0, "DenseFeatureBlock::raw");
    auto host = Kokkos::create_mirror_view(Kokkos::HostSpace(), raw);
    source_->read(sorted, c0, c1, host);
    Kokkos::deep_copy(raw, host);
    return raw;
  }

  // Calls body(r0, r1, c0, c1, slab) for each row chunk [r0, r1) of the `count` rows (rows(i), or i when
  // all_rows) and, within it, each column slab [c0, c1), slab = the standardised chunk x slab values.
  template <class Body>
  void for_each_slab(Rows rows, bool all_rows, std::int64_t count, Body&& body) const {
    using exec = typename Matrix::execution_space;
    std::vector<std::int64_t> host_rows;
    if (source_ && !all_rows) {
      auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), rows);
      host_rows.assign(h.data(), h.data() + count);
    }
    for (std::int64_t r0 = 0; r0 < count; r0 += row_slab) {
      const std::int64_t r1 = std::min(count, r0 + row_slab), m = r1 - r0;
      if (!source_) {
        for (std::int64_t c0 = 0; c0 < columns(); c0 += column_slab) {
          const std::int64_t c1 = std::min(columns(), c0 + column_slab);
          Matrix slab = shaped(buffer_, 0, m, c1 - c0, "DenseFeatureBlock::slab");
          Kokkos::parallel_for("skein::DenseFeatureBlock::gather",
                               Kokkos::MDRangePolicy<exec, Kokkos::Rank<2>>({0, 0}, {m, c1 - c0}),
                               detail::GatherStandardized<Scalar, ConstMatrix, Matrix>{
                                   values_, all_rows ? Rows() : rows, all_rows ? r0 : r0, c0, c0, means_,
                                   inverse_scales_, slab});
          Kokkos::fence();
          body(r0, r1, c0, c1, slab);
        }
        continue;
      }
      // Streamed: the chunk's distinct rows in ascending order, and where each requested row is in them.
      std::vector<std::int64_t> chunk(static_cast<std::size_t>(m));
      for (std::int64_t i = 0; i < m; ++i) chunk[i] = all_rows ? r0 + i : host_rows[r0 + i];
      const bool cacheable = m * columns() * static_cast<std::int64_t>(sizeof(Scalar)) <= cache_bytes;
      if (cacheable && chunk == cached_rows_ && !cached_slabs_.empty()) {
        std::size_t s = 0;
        for (std::int64_t c0 = 0; c0 < columns(); c0 += column_slab, ++s)
          body(r0, r1, c0, std::min(columns(), c0 + column_slab), cached_slabs_[s]);
        continue;
      }
      std::vector<std::int64_t> sorted = chunk;
      std::sort(sorted.begin(), sorted.end());
      sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
      Kokkos::View<std::int64_t*> position("DenseFeatureBlock::position", static_cast<std::size_t>(m));
      auto host_position = Kokkos::create_mirror_view(position);
      for (std::int64_t i = 0; i < m; ++i)
        host_position(i) = std::lower_bound(sorted.begin(), sorted.end(), chunk[i]) - sorted.begin();
      Kokkos::deep_copy(position, host_position);
      cached_rows_.clear();
      cached_slabs_.clear();
      if (cacheable) shaped(cache_, 0, m, columns(), "DenseFeatureBlock::cache");  // room for all slabs
      // All columns in one read when they fit (fewer, longer reads), else slab by slab.
      const bool whole =
          static_cast<std::int64_t>(sorted.size()) * columns() * static_cast<std::int64_t>(sizeof(Scalar)) <=
          cache_bytes;
      const Matrix all_columns = whole ? read_raw(sorted, 0, columns()) : Matrix();
      std::size_t s = 0;
      for (std::int64_t c0 = 0; c0 < columns(); c0 += column_slab, ++s) {
        const std::int64_t c1 = std::min(columns(), c0 + column_slab);
        const Matrix raw = whole ? all_columns : read_raw(sorted, c0, c1);
        Matrix slab = cacheable ? shaped(cache_, m * c0, m, c1 - c0, "DenseFeatureBlock::cache")
                                : shaped(buffer_, 0, m, c1 - c0, "DenseFeatureBlock::slab");
        Kokkos::parallel_for("skein::DenseFeatureBlock::gather",
                             Kokkos::MDRangePolicy<exec, Kokkos::Rank<2>>({0, 0}, {m, c1 - c0}),
                             detail::GatherStandardized<Scalar, Matrix, Matrix>{
                                 raw, Rows(position), 0, whole ? c0 : 0, c0, means_, inverse_scales_, slab});
        Kokkos::fence();
        if (cacheable) cached_slabs_.push_back(slab);
        body(r0, r1, c0, c1, slab);
      }
      if (cacheable) cached_rows_ = std::move(chunk);
    }
  }

  // The per-column sums of detail::ColumnMoments over the statistics rows (ascending): one pass over the
  // values (one read of each row for a streamed block), in row chunks of row_slab rows.
  struct Moments {
    Kokkos::View<double*> sums, deviations, squares, shifts;  // the last three only when scaled
  };

  template <bool Scaled, class Values>
  static void add_moments(const Values& values, Rows rows, std::int64_t count, std::int64_t stat_column0,
                          std::int64_t width, const Moments& m) {
    using exec = typename Matrix::execution_space;
    using Kernel = detail::ColumnMoments<Values, Scaled>;
    Kokkos::parallel_for(
        "skein::DenseFeatureBlock::statistics",
        Kokkos::RangePolicy<exec>(0, (width + Kernel::tile - 1) / Kernel::tile),
        Kernel{values, rows, 0, count, 0, stat_column0, width, m.sums, m.deviations, m.squares, m.shifts});
    Kokkos::fence();
  }

  // Adds `values` (rows `rows`, or 0 .. count - 1 when empty; columns 0 .. width - 1, which are the block's
  // stat_column0 ..), first setting the shifts from values' row shift_row (the first statistics row) when
  // it is not negative.
  template <class Values>
  static void add_chunk(const Values& values, Rows rows, std::int64_t count, std::int64_t stat_column0,
                        std::int64_t width, bool scaled, std::int64_t shift_row, const Moments& m) {
    using exec = typename Matrix::execution_space;
    if (!scaled) {
      add_moments<false>(values, rows, count, stat_column0, width, m);
      return;
    }
    if (shift_row >= 0) {
      Kokkos::parallel_for("skein::DenseFeatureBlock::shifts", Kokkos::RangePolicy<exec>(0, width),
                           detail::ColumnShifts<Values>{values, shift_row, 0, stat_column0, m.shifts});
      Kokkos::fence();
    }
    add_moments<true>(values, rows, count, stat_column0, width, m);
  }

  void accumulate(const std::vector<std::int64_t>& sorted_rows, bool scaled, const Moments& m) const {
    const auto count = static_cast<std::int64_t>(sorted_rows.size());
    if (count == 0) return;
    if (!source_) {
      Kokkos::View<std::int64_t*> rows("DenseFeatureBlock::statistics_rows", static_cast<std::size_t>(count));
      auto host = Kokkos::create_mirror_view(rows);
      for (std::int64_t i = 0; i < count; ++i) host(i) = sorted_rows[i];
      Kokkos::deep_copy(rows, host);
      add_chunk(values_, Rows(rows), count, 0, columns(), scaled, sorted_rows[0], m);
      return;
    }
    // Streamed: rows in pieces of about statistics_bytes (at least one row), all columns at once unless a
    // row is wider than cache_bytes. A piece is read, checked by the source and summed while it is still
    // in cache; in 1,024-row chunks (40 MB on the bench's wide case) the values went to memory and back
    // once for each.
    const std::int64_t row_bytes = columns() * static_cast<std::int64_t>(sizeof(Scalar));
    const std::int64_t width = row_bytes <= cache_bytes ? columns() : column_slab;
    const std::int64_t piece = std::clamp<std::int64_t>(
        statistics_bytes / std::max<std::int64_t>(1, width * static_cast<std::int64_t>(sizeof(Scalar))), 1,
        row_slab);
    std::vector<std::int64_t> rows;
    for (std::int64_t r0 = 0; r0 < count; r0 += piece) {
      const std::int64_t r1 = std::min(count, r0 + piece);
      rows.assign(sorted_rows.begin() + r0, sorted_rows.begin() + r1);
      for (std::int64_t c0 = 0; c0 < columns(); c0 += width) {
        const std::int64_t c1 = std::min(columns(), c0 + width);
        add_chunk(read_raw(rows, c0, c1), Rows(), r1 - r0, c0, c1 - c0, scaled, r0 == 0 ? 0 : -1, m);
      }
    }
  }

  void compute_statistics(Standardize standardize, Rows statistics_rows) {
    if (first_column_ < 0) throw engine::InternalError("DenseFeatureBlock: negative first column");
    means_ = Kokkos::View<double*>("DenseFeatureBlock::means", static_cast<std::size_t>(columns_));
    inverse_scales_ =
        Kokkos::View<double*>("DenseFeatureBlock::inverse_scales", static_cast<std::size_t>(columns_));
    std::vector<std::int64_t> sorted;
    if (statistics_rows.extent(0) > 0) {
      auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), statistics_rows);
      sorted.assign(h.data(), h.data() + h.extent(0));
      std::sort(sorted.begin(), sorted.end());
    } else {
      sorted.resize(static_cast<std::size_t>(rows_));
      for (std::int64_t i = 0; i < rows_; ++i) sorted[i] = i;
    }
    const auto n = static_cast<double>(sorted.size());
    const bool scaled = standardize == Standardize::scale;
    const auto columns = static_cast<std::size_t>(columns_);
    Moments m{Kokkos::View<double*>("DenseFeatureBlock::sums", columns), {}, {}, {}};
    if (scaled) {
      m.deviations = Kokkos::View<double*>("DenseFeatureBlock::deviations", columns);
      m.squares = Kokkos::View<double*>("DenseFeatureBlock::squares", columns);
      m.shifts = Kokkos::View<double*>("DenseFeatureBlock::shifts", columns);
    }
    accumulate(sorted, scaled, m);
    auto host_sums = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.sums);
    auto host_means = Kokkos::create_mirror_view(means_);
    auto host_inverse = Kokkos::create_mirror_view(inverse_scales_);
    for (std::int64_t j = 0; j < columns_; ++j) {
      host_means(j) = n > 0 ? host_sums(j) / n : 0.0;
      host_inverse(j) = 1.0;
    }
    Kokkos::deep_copy(means_, host_means);
    if (scaled && n > 0) {
      auto deviations = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.deviations);
      auto squares = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.squares);
      for (std::int64_t j = 0; j < columns_; ++j) {
        const double variance = std::max(0.0, (squares(j) - deviations(j) * deviations(j) / n) / n);
        const double sd = std::sqrt(variance);
        host_inverse(j) = sd > 0.0 ? 1.0 / sd : 1.0;
      }
    }
    Kokkos::deep_copy(inverse_scales_, host_inverse);
  }

  ConstMatrix values_;
  std::shared_ptr<const Source> source_;
  std::int64_t rows_, columns_;
  std::int64_t first_column_;
  Kokkos::View<double*> means_;
  Kokkos::View<double*> inverse_scales_;
  mutable Kokkos::View<Scalar*> buffer_, raw_, cache_;  // storage of the slab, raw and cached Views
  mutable std::vector<std::int64_t> cached_rows_;
  mutable std::vector<Matrix> cached_slabs_;
};

}  // namespace skein::solvers
