// A FeatureBlock over packed PLINK genotypes: this rank's SNP columns of X, standardised on the fly through
// per-SNP lookup tables, never expanded into a float copy of X.
#pragma once

#include "solvers/feature_block.hpp"

#include <Kokkos_Core.hpp>

#include <cstdint>

namespace skein::solvers {

// How the columns are standardised (solvers::Standardize of feature_block.hpp); the statistics come from
// the `statistics_rows` (the training rows):
//   center: x = dosage - 2p;  scale: x = (dosage - 2p) / sqrt(2p(1-p));  a missing call is mean-imputed,
//   i.e. x = 0. The dosage counts the A2 allele (io/plink.hpp) and p is the A2 frequency over the observed
//   calls of the statistics rows.
using GenotypeScaling = Standardize;

struct GenotypeBlockOptions {
  GenotypeScaling scaling = GenotypeScaling::center;
  // The .fam sample of each row of X (rows() is its length), distinct; empty: row i is .fam sample i.
  Kokkos::View<const std::int64_t*, Kokkos::HostSpace> row_samples;
  // Rows (indices into 0..rows()-1, distinct) whose calls define each SNP's mean and standard deviation;
  // empty: every row.
  Kokkos::View<const std::int64_t*, Kokkos::HostSpace> statistics_rows;
};

// The FeatureBlock interface (solvers/feature_block.hpp) over SNP-major packed records: `packed` is
// p_local x ceil(N/4) bytes (io::PlinkGenotypes::packed), N the .fam's sample count. Products take a row
// subset (a minibatch: sample indices 0..rows()-1 in any order, repeats allowed); Z, U, G, out are
// LayoutRight. The block keeps, besides `packed` (read by full_cross), a sample-major copy of the codes
// (4 SNPs a byte; as many bytes again): a random minibatch then reads b x columns/4 bytes instead of
// streaming every SNP record (which each pass would, since 500 random rows touch every cache line of a
// record). Products decode a panel of SNPs' minibatch values (b x panel, cache-sized) through the per-SNP
// 4-entry tables and leave the multiply-adds to BLAS (solvers/dense_blas). The object keeps scratch space
// between calls: one product at a time per object.
template <class Scalar>
class GenotypeFeatureBlock {
 public:
  using scalar_type = Scalar;
  using RowsView = Kokkos::View<const std::int64_t*>;
  using ConstMatrix = Kokkos::View<const Scalar**, Kokkos::LayoutRight>;
  using Matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight>;
  using Packed = Kokkos::View<const std::uint8_t**, Kokkos::LayoutRight>;
  using Grouped = Kokkos::View<Scalar***, Kokkos::LayoutRight>;

  // Computes each SNP's statistics over the statistics rows and its lookup tables. A SNP without variance
  // there (monomorphic, or no observed call) is left centred, not scaled, as DenseFeatureBlock does (a
  // column of zeros on those rows); io::read_plink refuses SNPs monomorphic in the whole file under scale.
  GenotypeFeatureBlock(Packed packed, std::int64_t fam_samples, std::int64_t first_column,
                       const GenotypeBlockOptions& options = {});

  std::int64_t rows() const { return rows_; }
  std::int64_t columns() const { return static_cast<std::int64_t>(packed_.extent(0)); }
  std::int64_t first_column() const { return first_column_; }

  // Z (b x k) += X[rows, my columns] U (my columns x k). The caller allreduces Z over ranks.
  void multiply(RowsView rows, ConstMatrix U, Matrix Z) const;
  // comm.reproducible's partial products (feature_block.hpp): Z(g) (b x k) = X[rows, local SNP group g]
  // U[group g] for groups of `group_columns` SNPs (a multiple of 4, dividing first_column()), each decoded
  // as one panel of exactly the group's SNPs: the same bits on whichever rank owns the group.
  void multiply_groups(RowsView rows, ConstMatrix U, std::int64_t group_columns, Grouped Z) const;
  // out (my columns x k) = X[rows, my columns]^T G (b x k). No communication.
  void transpose_multiply(RowsView rows, ConstMatrix G, Matrix out) const;
  // out (my columns x q) = X[all rows, my columns]^T Y (rows() x q): the exact PLS pass. Decodes panels of
  // SNPs a byte (4 samples) per table lookup and multiplies them by BLAS. To leave rows out (validation),
  // zero their rows of Y.
  void full_cross(ConstMatrix Y, Matrix out) const;

  // Per local SNP: the A2 frequency p over the statistics rows, and the standardised value of each 2-bit
  // code (table(j, code); code 1, missing, is 0).
  Kokkos::View<const double*> a2_frequency() const { return frequency_; }
  Kokkos::View<const Scalar**, Kokkos::LayoutRight> code_values() const { return table_; }

 private:
  Packed packed_;
  std::int64_t fam_samples_ = 0;
  std::int64_t first_column_ = 0;
  std::int64_t rows_ = 0;
  Kokkos::View<std::int64_t*> row_sample_;  // .fam sample of each row
  Kokkos::View<double*> frequency_;
  Kokkos::View<Scalar**, Kokkos::LayoutRight> table_;  // columns() x 4

  Kokkos::View<std::uint8_t**, Kokkos::LayoutRight> by_row_;  // rows x ceil(columns/4): sample-major codes

  // Scratch of the last product: a panel of SNPs' decoded minibatch values (b x panel).
  void check_rows(RowsView rows) const;
  // fixed > 0: panels of exactly that many SNPs (multiply_groups), else sized for the cache.
  std::int64_t prepare_panel(std::int64_t b, std::int64_t fixed = 0) const;
  // Decodes the minibatch `rows` panel by panel of SNPs and calls use(x, first, count) with x the decoded
  // b x count values of SNPs [first, first + count) (multiply and transpose_multiply differ only in use).
  template <class Use>
  void for_each_decoded_panel(RowsView rows, Use&& use, std::int64_t fixed_panel = 0) const;
  mutable Kokkos::View<Scalar**, Kokkos::LayoutRight> decoded_;
};

extern template class GenotypeFeatureBlock<float>;
extern template class GenotypeFeatureBlock<double>;

}  // namespace skein::solvers
