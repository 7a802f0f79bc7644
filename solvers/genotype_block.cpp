#include "solvers/genotype_block.hpp"

#include "engine/error.hpp"
#include "solvers/dense_blas.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace skein::solvers {

namespace {

using HostRows = Kokkos::View<const std::int64_t*, Kokkos::HostSpace>;

std::int64_t slab_count(std::int64_t columns) {
  const std::int64_t threads = std::max<std::int64_t>(1, Kokkos::DefaultExecutionSpace().concurrency());
  return std::max<std::int64_t>(1, std::min(threads, columns));
}

KOKKOS_INLINE_FUNCTION std::int64_t slab_begin(std::int64_t slab, std::int64_t slabs, std::int64_t columns) {
  return slab * columns / slabs;
}

// Per SNP: observed calls and A2 alleles among the statistics samples. Every byte of a record (4 samples)
// is one lookup in a (membership mask of its 4 samples, byte value) table.
struct CountCalls {
  Kokkos::View<const std::uint8_t**, Kokkos::LayoutRight> packed;
  Kokkos::View<const std::uint8_t*> mask;  // per record byte: which of its samples count
  Kokkos::View<const std::uint8_t**, Kokkos::LayoutRight> observed_of, a2_of;  // [mask][byte]
  Kokkos::View<std::int64_t*> observed, a2;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t j) const {
    std::int64_t o = 0, a = 0;
    const std::int64_t bytes = static_cast<std::int64_t>(packed.extent(1));
    for (std::int64_t i = 0; i < bytes; ++i) {
      const unsigned m = mask(i), b = packed(j, i);
      o += observed_of(m, b);
      a += a2_of(m, b);
    }
    observed(j) = o;
    a2(j) = a;
  }
};

// Forward product, one slab of SNPs per work item: partial(slab) (k x b, sorted rows) = X_slab^T-free sum
// over the slab's SNPs of x_j (b) u_j^T. Decoding one SNP's b codes first, then k axpys over b contiguous
// values, keeps the inner loops branch-free and vectorisable.
template <class Scalar>
struct ForwardSlab {
  Kokkos::View<const std::uint8_t**, Kokkos::LayoutRight> packed;
  Kokkos::View<const Scalar**, Kokkos::LayoutRight> table;
  Kokkos::View<const std::int64_t*> byte;
  Kokkos::View<const std::uint8_t*> shift;
  Kokkos::View<const Scalar**, Kokkos::LayoutRight> u;
  Kokkos::View<Scalar***, Kokkos::LayoutRight> partial;
  Kokkos::View<Scalar**, Kokkos::LayoutRight> decoded;
  std::int64_t slabs, columns, b, k;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t slab) const {
    Scalar* x = &decoded(slab, 0);
    for (std::int64_t c = 0; c < k; ++c) {
      Scalar* z = &partial(slab, c, 0);
      for (std::int64_t r = 0; r < b; ++r) z[r] = 0;
    }
    const std::int64_t* by = byte.data();
    const std::uint8_t* sh = shift.data();
    for (std::int64_t j = slab_begin(slab, slabs, columns); j < slab_begin(slab + 1, slabs, columns); ++j) {
      const std::uint8_t* record = &packed(j, 0);
      const Scalar* t = &table(j, 0);
      for (std::int64_t r = 0; r < b; ++r) x[r] = t[(record[by[r]] >> sh[r]) & 3u];
      for (std::int64_t c = 0; c < k; ++c) {
        const Scalar uc = u(j, c);
        if (uc == Scalar(0)) continue;
        Scalar* __restrict__ z = &partial(slab, c, 0);
        for (std::int64_t r = 0; r < b; ++r) z[r] += x[r] * uc;
      }
    }
  }
};

// Z(position of sorted row r, c) += sum over slabs of partial(slab, c, r).
template <class Scalar>
struct ForwardGather {
  Kokkos::View<const Scalar***, Kokkos::LayoutRight> partial;
  Kokkos::View<const std::int64_t*> position;
  Kokkos::View<Scalar**, Kokkos::LayoutRight> z;
  std::int64_t slabs, k;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t r) const {
    const std::int64_t row = position(r);
    for (std::int64_t c = 0; c < k; ++c) {
      Scalar sum = 0;
      for (std::int64_t s = 0; s < slabs; ++s) sum += partial(s, c, r);
      z(row, c) += sum;
    }
  }
};

// G's rows in sorted order, transposed (k x b), so each SNP's k dot products run over contiguous memory.
template <class Scalar>
struct SortG {
  Kokkos::View<const Scalar**, Kokkos::LayoutRight> g;
  Kokkos::View<const std::int64_t*> position;
  Kokkos::View<Scalar**, Kokkos::LayoutRight> sorted;
  std::int64_t k;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t r) const {
    for (std::int64_t c = 0; c < k; ++c) sorted(c, r) = g(position(r), c);
  }
};

// Backward product, one slab of SNPs per work item: out(j, c) = sum_r x_rj G(r, c).
template <class Scalar>
struct TransposeSlab {
  Kokkos::View<const std::uint8_t**, Kokkos::LayoutRight> packed;
  Kokkos::View<const Scalar**, Kokkos::LayoutRight> table;
  Kokkos::View<const std::int64_t*> byte;
  Kokkos::View<const std::uint8_t*> shift;
  Kokkos::View<const Scalar**, Kokkos::LayoutRight> g;  // sorted, k x b
  Kokkos::View<Scalar**, Kokkos::LayoutRight> out;
  Kokkos::View<Scalar**, Kokkos::LayoutRight> decoded;
  std::int64_t slabs, columns, b, k;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t slab) const {
    Scalar* x = &decoded(slab, 0);
    const std::int64_t* by = byte.data();
    const std::uint8_t* sh = shift.data();
    constexpr int lanes = 8;
    const std::int64_t whole = b - b % lanes;
    for (std::int64_t j = slab_begin(slab, slabs, columns); j < slab_begin(slab + 1, slabs, columns); ++j) {
      const std::uint8_t* record = &packed(j, 0);
      const Scalar* t = &table(j, 0);
      for (std::int64_t r = 0; r < b; ++r) x[r] = t[(record[by[r]] >> sh[r]) & 3u];
      for (std::int64_t c = 0; c < k; ++c) {
        const Scalar* gc = &g(c, 0);
        // Eight partial sums: a vectorisable reduction without reassociation flags.
        Scalar acc[lanes] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (std::int64_t r = 0; r < whole; r += lanes)
          for (int l = 0; l < lanes; ++l) acc[l] += x[r + l] * gc[r + l];
        Scalar sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (std::int64_t r = whole; r < b; ++r) sum += x[r] * gc[r];
        out(j, c) = sum;
      }
    }
  }
};

// A panel of SNPs decoded into rows x panel-major values (panel(jj, row)), one lookup per byte: a table of
// the 4 standardised values of every byte value, built per SNP from its 4-entry code table.
template <class Scalar>
struct DecodePanel {
  Kokkos::View<const std::uint8_t**, Kokkos::LayoutRight> packed;
  Kokkos::View<const Scalar**, Kokkos::LayoutRight> table;
  Kokkos::View<const std::int64_t*> fam_row;  // row of each .fam sample, -1 when not a row
  Kokkos::View<Scalar**, Kokkos::LayoutRight> panel;
  std::int64_t first, fam_samples;
  bool identity;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t jj) const {
    const std::int64_t j = first + jj;
    const Scalar t[4] = {table(j, 0), table(j, 1), table(j, 2), table(j, 3)};
    Scalar byte_values[256][4];
    for (int v = 0; v < 256; ++v)
      for (int l = 0; l < 4; ++l) byte_values[v][l] = t[(v >> (2 * l)) & 3];
    const std::uint8_t* record = &packed(j, 0);
    Scalar* row_values = &panel(jj, 0);
    const std::int64_t whole = fam_samples / 4;
    if (identity) {
      for (std::int64_t i = 0; i < whole; ++i) {
        const Scalar* v = byte_values[record[i]];
        Scalar* into = row_values + 4 * i;
        into[0] = v[0];
        into[1] = v[1];
        into[2] = v[2];
        into[3] = v[3];
      }
      for (std::int64_t s = 4 * whole; s < fam_samples; ++s)
        row_values[s] = byte_values[record[whole]][s & 3];
    } else {
      for (std::int64_t s = 0; s < fam_samples; ++s) {
        const std::int64_t row = fam_row(s);
        if (row >= 0) row_values[row] = byte_values[record[s >> 2]][s & 3];
      }
    }
  }
};

}  // namespace

template <class Scalar>
GenotypeFeatureBlock<Scalar>::GenotypeFeatureBlock(Packed packed, std::int64_t fam_samples,
                                                   std::int64_t first_column,
                                                   const GenotypeBlockOptions& options)
    : packed_(packed), fam_samples_(fam_samples), first_column_(first_column) {
  const std::int64_t record = (fam_samples + 3) / 4;
  if (fam_samples <= 0 || static_cast<std::int64_t>(packed.extent(1)) != record) {
    throw engine::InternalError("GenotypeFeatureBlock: " + std::to_string(packed.extent(1)) +
                                " bytes per SNP record do not hold " + std::to_string(fam_samples) +
                                " samples");
  }
  // Rows and their .fam samples.
  rows_ = options.row_samples.extent(0) > 0 ? static_cast<std::int64_t>(options.row_samples.extent(0))
                                            : fam_samples;
  auto row_sample_host = Kokkos::View<std::int64_t*, Kokkos::HostSpace>("genotype_block::row_sample", rows_);
  std::vector<std::int64_t> fam_row(static_cast<std::size_t>(fam_samples), -1);
  for (std::int64_t r = 0; r < rows_; ++r) {
    const std::int64_t s = options.row_samples.extent(0) > 0 ? options.row_samples(r) : r;
    if (s < 0 || s >= fam_samples || fam_row[static_cast<std::size_t>(s)] >= 0) {
      throw engine::InternalError("GenotypeFeatureBlock: row " + std::to_string(r) + " names .fam sample " +
                                  std::to_string(s) + ", out of range or already a row");
    }
    fam_row[static_cast<std::size_t>(s)] = r;
    row_sample_host(r) = s;
  }
  row_sample_ =
      Kokkos::create_mirror_view_and_copy(Kokkos::DefaultExecutionSpace::memory_space(), row_sample_host);

  // Which record bytes' samples count towards the statistics.
  auto mask_host = Kokkos::View<std::uint8_t*, Kokkos::HostSpace>("genotype_block::mask", record);
  const std::int64_t stat_rows = options.statistics_rows.extent(0) > 0
                                     ? static_cast<std::int64_t>(options.statistics_rows.extent(0))
                                     : rows_;
  for (std::int64_t i = 0; i < stat_rows; ++i) {
    const std::int64_t r = options.statistics_rows.extent(0) > 0 ? options.statistics_rows(i) : i;
    if (r < 0 || r >= rows_) {
      throw engine::InternalError("GenotypeFeatureBlock: statistics row " + std::to_string(r) +
                                  " is not a row");
    }
    const std::int64_t s = row_sample_host(r);
    const auto bit = static_cast<std::uint8_t>(1u << (s & 3));
    if (mask_host(s >> 2) & bit) {
      throw engine::InternalError("GenotypeFeatureBlock: statistics row " + std::to_string(r) +
                                  " given twice");
    }
    mask_host(s >> 2) = static_cast<std::uint8_t>(mask_host(s >> 2) | bit);
  }
  auto observed_of_host =
      Kokkos::View<std::uint8_t**, Kokkos::LayoutRight, Kokkos::HostSpace>("observed_of", 16, 256);
  auto a2_of_host = Kokkos::View<std::uint8_t**, Kokkos::LayoutRight, Kokkos::HostSpace>("a2_of", 16, 256);
  for (unsigned m = 0; m < 16; ++m) {
    for (unsigned v = 0; v < 256; ++v) {
      unsigned o = 0, a = 0;
      for (unsigned l = 0; l < 4; ++l) {
        const unsigned code = (v >> (2 * l)) & 3u;
        if (!((m >> l) & 1u) || code == 1u) continue;
        ++o;
        a += code - (code >> 1);
      }
      observed_of_host(m, v) = static_cast<std::uint8_t>(o);
      a2_of_host(m, v) = static_cast<std::uint8_t>(a);
    }
  }
  using Space = Kokkos::DefaultExecutionSpace::memory_space;
  const std::int64_t p = columns();
  Kokkos::View<std::int64_t*> observed("genotype_block::observed", p), a2("genotype_block::a2", p);
  Kokkos::parallel_for("skein::genotype_block::count", Kokkos::RangePolicy<>(0, p),
                       CountCalls{packed_, Kokkos::create_mirror_view_and_copy(Space(), mask_host),
                                  Kokkos::create_mirror_view_and_copy(Space(), observed_of_host),
                                  Kokkos::create_mirror_view_and_copy(Space(), a2_of_host), observed, a2});
  auto observed_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), observed);
  auto a2_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), a2);

  // Tables: value of each code, mean-imputed missing = 0.
  auto frequency_host = Kokkos::View<double*, Kokkos::HostSpace>("genotype_block::frequency", p);
  auto table_host =
      Kokkos::View<Scalar**, Kokkos::LayoutRight, Kokkos::HostSpace>("genotype_block::table", p, 4);
  for (std::int64_t j = 0; j < p; ++j) {
    const std::int64_t o = observed_host(j), a = a2_host(j);
    const double f = o > 0 ? static_cast<double>(a) / (2.0 * static_cast<double>(o)) : 0.0;
    frequency_host(j) = f;
    double inverse_sd = 1.0;
    if (options.scaling == GenotypeScaling::scale && o > 0 && a > 0 && a < 2 * o) {
      inverse_sd = 1.0 / std::sqrt(2.0 * f * (1.0 - f));
    }
    const double mean = 2.0 * f;
    table_host(j, 0) = static_cast<Scalar>((0.0 - mean) * inverse_sd);
    table_host(j, 1) = Scalar(0);
    table_host(j, 2) = static_cast<Scalar>((1.0 - mean) * inverse_sd);
    table_host(j, 3) = static_cast<Scalar>((2.0 - mean) * inverse_sd);
    if (o == 0) table_host(j, 0) = table_host(j, 2) = table_host(j, 3) = Scalar(0);
  }
  frequency_ = Kokkos::create_mirror_view_and_copy(Space(), frequency_host);
  table_ = Kokkos::create_mirror_view_and_copy(Space(), table_host);
}

template <class Scalar>
void GenotypeFeatureBlock<Scalar>::prepare_rows(RowsView rows) const {
  const auto b = static_cast<std::int64_t>(rows.extent(0));
  auto rows_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), rows);
  auto row_sample_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), row_sample_);
  std::vector<std::int64_t> sample(static_cast<std::size_t>(b));
  for (std::int64_t i = 0; i < b; ++i) {
    const std::int64_t r = rows_host(i);
    if (r < 0 || r >= rows_)
      throw std::out_of_range("GenotypeFeatureBlock: row " + std::to_string(r) + " of " +
                              std::to_string(rows_));
    sample[static_cast<std::size_t>(i)] = row_sample_host(r);
  }
  // Sorted by .fam sample, each SNP record is read front to back once per product.
  std::vector<std::int64_t> order(static_cast<std::size_t>(b));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::sort(order.begin(), order.end(), [&](std::int64_t x, std::int64_t y) {
    return sample[static_cast<std::size_t>(x)] < sample[static_cast<std::size_t>(y)];
  });
  if (static_cast<std::int64_t>(sorted_byte_.extent(0)) != b) {
    sorted_byte_ = Kokkos::View<std::int64_t*>("genotype_block::sorted_byte", b);
    sorted_shift_ = Kokkos::View<std::uint8_t*>("genotype_block::sorted_shift", b);
    sorted_position_ = Kokkos::View<std::int64_t*>("genotype_block::sorted_position", b);
  }
  auto byte_host = Kokkos::create_mirror_view(sorted_byte_);
  auto shift_host = Kokkos::create_mirror_view(sorted_shift_);
  auto position_host = Kokkos::create_mirror_view(sorted_position_);
  for (std::int64_t r = 0; r < b; ++r) {
    const std::int64_t i = order[static_cast<std::size_t>(r)];
    const std::int64_t s = sample[static_cast<std::size_t>(i)];
    byte_host(r) = s >> 2;
    shift_host(r) = static_cast<std::uint8_t>(2 * (s & 3));
    position_host(r) = i;
  }
  Kokkos::deep_copy(sorted_byte_, byte_host);
  Kokkos::deep_copy(sorted_shift_, shift_host);
  Kokkos::deep_copy(sorted_position_, position_host);
}

template <class Scalar>
void GenotypeFeatureBlock<Scalar>::multiply(RowsView rows, ConstMatrix U, Matrix Z) const {
  const auto b = static_cast<std::int64_t>(rows.extent(0));
  const auto k = static_cast<std::int64_t>(U.extent(1));
  if (static_cast<std::int64_t>(U.extent(0)) != columns() || static_cast<std::int64_t>(Z.extent(0)) != b ||
      static_cast<std::int64_t>(Z.extent(1)) != k) {
    throw std::invalid_argument("GenotypeFeatureBlock::multiply: U is " + std::to_string(U.extent(0)) + "x" +
                                std::to_string(U.extent(1)) + ", Z " + std::to_string(Z.extent(0)) + "x" +
                                std::to_string(Z.extent(1)) + ", for " + std::to_string(b) + " rows and " +
                                std::to_string(columns()) + " columns");
  }
  if (b == 0 || k == 0 || columns() == 0) return;
  prepare_rows(rows);
  const std::int64_t slabs = slab_count(columns());
  if (partial_.extent(0) != static_cast<std::size_t>(slabs) ||
      partial_.extent(1) != static_cast<std::size_t>(k) ||
      partial_.extent(2) != static_cast<std::size_t>(b)) {
    partial_ = Kokkos::View<Scalar***, Kokkos::LayoutRight>(
        Kokkos::view_alloc(Kokkos::WithoutInitializing, "genotype_block::partial"), slabs, k, b);
  }
  if (decoded_.extent(0) != static_cast<std::size_t>(slabs) ||
      decoded_.extent(1) != static_cast<std::size_t>(b)) {
    decoded_ = Kokkos::View<Scalar**, Kokkos::LayoutRight>(
        Kokkos::view_alloc(Kokkos::WithoutInitializing, "genotype_block::decoded"), slabs, b);
  }
  Kokkos::parallel_for("skein::genotype_block::multiply", Kokkos::RangePolicy<>(0, slabs),
                       ForwardSlab<Scalar>{packed_, table_, sorted_byte_, sorted_shift_, U, partial_,
                                           decoded_, slabs, columns(), b, k});
  Kokkos::parallel_for("skein::genotype_block::multiply_gather", Kokkos::RangePolicy<>(0, b),
                       ForwardGather<Scalar>{partial_, sorted_position_, Z, slabs, k});
  Kokkos::fence();
}

template <class Scalar>
void GenotypeFeatureBlock<Scalar>::transpose_multiply(RowsView rows, ConstMatrix G, Matrix out) const {
  const auto b = static_cast<std::int64_t>(rows.extent(0));
  const auto k = static_cast<std::int64_t>(G.extent(1));
  if (static_cast<std::int64_t>(G.extent(0)) != b || static_cast<std::int64_t>(out.extent(0)) != columns() ||
      static_cast<std::int64_t>(out.extent(1)) != k) {
    throw std::invalid_argument("GenotypeFeatureBlock::transpose_multiply: G is " +
                                std::to_string(G.extent(0)) + "x" + std::to_string(G.extent(1)) + ", out " +
                                std::to_string(out.extent(0)) + "x" + std::to_string(out.extent(1)) +
                                ", for " + std::to_string(b) + " rows and " + std::to_string(columns()) +
                                " columns");
  }
  if (k == 0 || columns() == 0) return;
  if (b == 0) {
    Kokkos::deep_copy(out, Scalar(0));
    return;
  }
  prepare_rows(rows);
  const std::int64_t slabs = slab_count(columns());
  if (sorted_g_.extent(0) != static_cast<std::size_t>(k) ||
      sorted_g_.extent(1) != static_cast<std::size_t>(b)) {
    sorted_g_ = Kokkos::View<Scalar**, Kokkos::LayoutRight>(
        Kokkos::view_alloc(Kokkos::WithoutInitializing, "genotype_block::sorted_g"), k, b);
  }
  if (decoded_.extent(0) != static_cast<std::size_t>(slabs) ||
      decoded_.extent(1) != static_cast<std::size_t>(b)) {
    decoded_ = Kokkos::View<Scalar**, Kokkos::LayoutRight>(
        Kokkos::view_alloc(Kokkos::WithoutInitializing, "genotype_block::decoded"), slabs, b);
  }
  Kokkos::parallel_for("skein::genotype_block::sort_g", Kokkos::RangePolicy<>(0, b),
                       SortG<Scalar>{G, sorted_position_, sorted_g_, k});
  Kokkos::parallel_for("skein::genotype_block::transpose_multiply", Kokkos::RangePolicy<>(0, slabs),
                       TransposeSlab<Scalar>{packed_, table_, sorted_byte_, sorted_shift_, sorted_g_, out,
                                             decoded_, slabs, columns(), b, k});
  Kokkos::fence();
}

template <class Scalar>
void GenotypeFeatureBlock<Scalar>::full_cross(ConstMatrix Y, Matrix out) const {
  const auto q = static_cast<std::int64_t>(Y.extent(1));
  if (static_cast<std::int64_t>(Y.extent(0)) != rows_ ||
      static_cast<std::int64_t>(out.extent(0)) != columns() ||
      static_cast<std::int64_t>(out.extent(1)) != q) {
    throw std::invalid_argument("GenotypeFeatureBlock::full_cross: Y is " + std::to_string(Y.extent(0)) +
                                "x" + std::to_string(Y.extent(1)) + ", out " + std::to_string(out.extent(0)) +
                                "x" + std::to_string(out.extent(1)) + ", for " + std::to_string(rows_) +
                                " rows and " + std::to_string(columns()) + " columns");
  }
  if (q == 0 || columns() == 0) return;
  // The .fam -> row map (identity when every .fam sample is its own row, in order).
  auto row_sample_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), row_sample_);
  auto fam_row_host = Kokkos::View<std::int64_t*, Kokkos::HostSpace>("genotype_block::fam_row", fam_samples_);
  Kokkos::deep_copy(fam_row_host, std::int64_t{-1});
  bool identity = rows_ == fam_samples_;
  for (std::int64_t r = 0; r < rows_; ++r) {
    fam_row_host(row_sample_host(r)) = r;
    identity = identity && row_sample_host(r) == r;
  }
  auto fam_row =
      Kokkos::create_mirror_view_and_copy(Kokkos::DefaultExecutionSpace::memory_space(), fam_row_host);
  // Panels of SNPs small enough to stay in the last-level cache next to a slice of Y while BLAS runs.
  const std::int64_t panel_snps = std::max<std::int64_t>(
      1, std::min<std::int64_t>(
             columns(),
             std::max<std::int64_t>(16, (std::int64_t{8} << 20) / (rows_ * std::int64_t(sizeof(Scalar))))));
  Kokkos::View<Scalar**, Kokkos::LayoutRight> panel("genotype_block::panel", panel_snps, rows_);
  for (std::int64_t first = 0; first < columns(); first += panel_snps) {
    const std::int64_t count = std::min(panel_snps, columns() - first);
    auto panel_view = Kokkos::subview(panel, std::make_pair(std::int64_t{0}, count), Kokkos::ALL);
    Kokkos::parallel_for("skein::genotype_block::decode_panel", Kokkos::RangePolicy<>(0, count),
                         DecodePanel<Scalar>{packed_, table_, fam_row, panel, first, fam_samples_, identity});
    Kokkos::fence();
    auto out_rows = Kokkos::subview(out, std::make_pair(first, first + count), Kokkos::ALL);
    blas::gemm(blas::Op::none, blas::Op::none, Scalar(1), panel_view, Y, Scalar(0), out_rows);
  }
  Kokkos::fence();
}

template class GenotypeFeatureBlock<float>;
template class GenotypeFeatureBlock<double>;

}  // namespace skein::solvers
