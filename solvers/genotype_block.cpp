#include "solvers/genotype_block.hpp"

#include "engine/error.hpp"
#include "solvers/dense_blas.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace skein::solvers {

namespace {

using HostRows = Kokkos::View<const std::int64_t*, Kokkos::HostSpace>;

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

// The sample-major copy of the calls: by_row(r, q) holds SNPs 4q..4q+3 of row r (SNP 4q + l in bits 2l),
// so a minibatch reads only its own rows' bytes, contiguously. One work item per tile of 4 x kTileQuads
// SNPs and kTileBytes record bytes (4 samples each): a 4 x 4 transpose of 2-bit codes per output byte, the
// tile's reads (SNP records) and writes (rows) each within a few cache lines.
struct TransposeToRows {
  static constexpr std::int64_t kTileQuads = 64, kTileBytes = 64;
  Kokkos::View<const std::uint8_t**, Kokkos::LayoutRight> packed;
  Kokkos::View<const std::int64_t*> fam_row;  // row of each .fam sample, -1 when not a row
  Kokkos::View<std::uint8_t**, Kokkos::LayoutRight> by_row;
  std::int64_t snps, fam_samples, byte_tiles;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t tile) const {
    const std::int64_t q0 = (tile / byte_tiles) * kTileQuads, i0 = (tile % byte_tiles) * kTileBytes;
    const std::int64_t quads = static_cast<std::int64_t>(by_row.extent(1));
    const std::int64_t bytes = static_cast<std::int64_t>(packed.extent(1));
    const std::int64_t q1 = q0 + kTileQuads < quads ? q0 + kTileQuads : quads;
    const std::int64_t i1 = i0 + kTileBytes < bytes ? i0 + kTileBytes : bytes;
    for (std::int64_t i = i0; i < i1; ++i) {
      for (std::int64_t q = q0; q < q1; ++q) {
        unsigned in[4] = {0, 0, 0, 0};
        for (int l = 0; l < 4; ++l)
          if (4 * q + l < snps) in[l] = packed(4 * q + l, i);
        for (int m = 0; m < 4; ++m) {
          const std::int64_t s = 4 * i + m;
          if (s >= fam_samples) break;
          const std::int64_t row = fam_row(s);
          if (row < 0) continue;
          unsigned out = 0;
          for (int l = 0; l < 4; ++l) out |= ((in[l] >> (2 * m)) & 3u) << (2 * l);
          by_row(row, q) = static_cast<std::uint8_t>(out);
        }
      }
    }
  }
};

// The minibatch's values of a panel of SNPs: panel(i, jj) = x(rows(i), first + jj), first a multiple of 4;
// one 4-entry table lookup per value, reading the row's bytes of the sample-major copy in order.
template <class Scalar>
struct DecodeRows {
  Kokkos::View<const std::uint8_t**, Kokkos::LayoutRight> by_row;
  Kokkos::View<const Scalar**, Kokkos::LayoutRight> table;
  Kokkos::View<const std::int64_t*> rows;
  Kokkos::View<Scalar**, Kokkos::LayoutRight> panel;
  std::int64_t first, count;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i) const {
    const std::uint8_t* bytes = &by_row(rows(i), first / 4);
    const Scalar* t = &table(first, 0);
    Scalar* x = &panel(i, 0);
    const std::int64_t whole = count / 4;
    for (std::int64_t q = 0; q < whole; ++q) {
      const unsigned byte = bytes[q];
      x[4 * q + 0] = t[16 * q + 0 + (byte & 3u)];
      x[4 * q + 1] = t[16 * q + 4 + ((byte >> 2) & 3u)];
      x[4 * q + 2] = t[16 * q + 8 + ((byte >> 4) & 3u)];
      x[4 * q + 3] = t[16 * q + 12 + ((byte >> 6) & 3u)];
    }
    for (std::int64_t jj = 4 * whole; jj < count; ++jj)
      x[jj] = t[4 * jj + ((bytes[jj / 4] >> (2 * (jj & 3))) & 3u)];
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

  // The sample-major copy the minibatch products read (as many bytes as this block's share of the .bed).
  auto fam_row_host = Kokkos::View<std::int64_t*, Kokkos::HostSpace>("genotype_block::fam_row", fam_samples);
  for (std::int64_t s = 0; s < fam_samples; ++s) fam_row_host(s) = fam_row[static_cast<std::size_t>(s)];
  const std::int64_t quads = (p + 3) / 4;
  by_row_ = Kokkos::View<std::uint8_t**, Kokkos::LayoutRight>("genotype_block::by_row", rows_, quads);
  const std::int64_t byte_tiles = (record + TransposeToRows::kTileBytes - 1) / TransposeToRows::kTileBytes;
  const std::int64_t quad_tiles = (quads + TransposeToRows::kTileQuads - 1) / TransposeToRows::kTileQuads;
  Kokkos::parallel_for("skein::genotype_block::transpose", Kokkos::RangePolicy<>(0, byte_tiles * quad_tiles),
                       TransposeToRows{packed_, Kokkos::create_mirror_view_and_copy(Space(), fam_row_host),
                                       by_row_, p, fam_samples, byte_tiles});
  Kokkos::fence();
}

template <class Scalar>
void GenotypeFeatureBlock<Scalar>::check_rows(RowsView rows) const {
  auto rows_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), rows);
  for (std::size_t i = 0; i < rows_host.extent(0); ++i) {
    if (rows_host(i) < 0 || rows_host(i) >= rows_)
      throw std::out_of_range("GenotypeFeatureBlock: row " + std::to_string(rows_host(i)) + " of " +
                              std::to_string(rows_));
  }
}

template <class Scalar>
std::int64_t GenotypeFeatureBlock<Scalar>::prepare_panel(std::int64_t b, std::int64_t fixed) const {
  // Panels of SNPs (a multiple of 4) whose decoded minibatch (b x panel) stays in the L2 cache for BLAS.
  const std::int64_t fit = (std::int64_t{256} << 10) / (b * std::int64_t(sizeof(Scalar)));
  const std::int64_t panel = std::max<std::int64_t>(8, std::min<std::int64_t>(1024, fit)) / 4 * 4;
  const std::int64_t snps =
      fixed > 0 ? fixed : std::min(panel, (std::max<std::int64_t>(columns(), 1) + 3) / 4 * 4);
  if (decoded_.extent(0) != static_cast<std::size_t>(b) ||
      decoded_.extent(1) != static_cast<std::size_t>(snps)) {
    decoded_ = Kokkos::View<Scalar**, Kokkos::LayoutRight>(
        Kokkos::view_alloc(Kokkos::WithoutInitializing, "genotype_block::decoded"), b, snps);
  }
  return snps;
}

template <class Scalar>
template <class Use>
void GenotypeFeatureBlock<Scalar>::for_each_decoded_panel(RowsView rows, Use&& use,
                                                          std::int64_t fixed_panel) const {
  const auto b = static_cast<std::int64_t>(rows.extent(0));
  const std::int64_t panel = prepare_panel(b, fixed_panel);
  for (std::int64_t first = 0; first < columns(); first += panel) {
    const std::int64_t count = std::min(panel, columns() - first);
    Kokkos::parallel_for("skein::genotype_block::decode_rows", Kokkos::RangePolicy<>(0, b),
                         DecodeRows<Scalar>{by_row_, table_, rows, decoded_, first, count});
    Kokkos::fence();
    use(Kokkos::subview(decoded_, Kokkos::ALL, std::make_pair(std::int64_t{0}, count)), first, count);
  }
  Kokkos::fence();
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
  check_rows(rows);
  // Z += sum over panels of decoded (b x panel) U[panel]: the multiply-adds go to BLAS.
  for_each_decoded_panel(rows, [&](const auto& x, std::int64_t first, std::int64_t count) {
    auto u = Kokkos::subview(U, std::make_pair(first, first + count), Kokkos::ALL);
    blas::gemm(blas::Op::none, blas::Op::none, Scalar(1), x, u, Scalar(1), Z);
  });
}

template <class Scalar>
void GenotypeFeatureBlock<Scalar>::multiply_groups(RowsView rows, ConstMatrix U, std::int64_t group_columns,
                                                   Grouped Z) const {
  const auto b = static_cast<std::int64_t>(rows.extent(0));
  const auto k = static_cast<std::int64_t>(U.extent(1));
  const std::int64_t groups = group_columns > 0 ? (columns() + group_columns - 1) / group_columns : -1;
  if (group_columns < 4 || group_columns % 4 != 0 || first_column_ % group_columns != 0 ||
      static_cast<std::int64_t>(U.extent(0)) != columns() ||
      static_cast<std::int64_t>(Z.extent(0)) != groups || static_cast<std::int64_t>(Z.extent(1)) != b ||
      static_cast<std::int64_t>(Z.extent(2)) != k)
    throw std::invalid_argument(
        "GenotypeFeatureBlock::multiply_groups: groups of " + std::to_string(group_columns) +
        " SNPs from SNP " + std::to_string(first_column_) + " do not fit U " + std::to_string(U.extent(0)) +
        "x" + std::to_string(k) + " and Z of " + std::to_string(Z.extent(0)) + " groups");
  Kokkos::deep_copy(Z, Scalar(0));
  if (b == 0 || k == 0 || columns() == 0) return;
  check_rows(rows);
  for_each_decoded_panel(
      rows,
      [&](const auto& x, std::int64_t first, std::int64_t count) {
        auto u = Kokkos::subview(U, std::make_pair(first, first + count), Kokkos::ALL);
        auto z = Kokkos::subview(Z, first / group_columns, Kokkos::ALL, Kokkos::ALL);
        blas::gemm(blas::Op::none, blas::Op::none, Scalar(1), x, u, Scalar(0), z);
      },
      group_columns);
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
  check_rows(rows);
  for_each_decoded_panel(rows, [&](const auto& x, std::int64_t first, std::int64_t count) {
    auto o = Kokkos::subview(out, std::make_pair(first, first + count), Kokkos::ALL);
    blas::gemm(blas::Op::transpose, blas::Op::none, Scalar(1), x, G, Scalar(0), o);
  });
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
