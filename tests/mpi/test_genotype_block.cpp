// GenotypeFeatureBlock against a dense standardised matrix built independently from the same calls: the
// minibatch products (rows in any order, repeated rows), the exact cross product, sample subsets and
// reordering, training-row statistics, both standardisations, float and double, SNP columns sharded over
// 1-3 ranks as the cca job shards them; and the hand-decoded tables of the tiny fileset of test_plink.
// skein-test-ranks: 1 2 3
#include "comm/block_partition.hpp"
#include "comm/communicator.hpp"
#include "engine/error.hpp"
#include "engine/random.hpp"
#include "solvers/genotype_block.hpp"

#include <gtest/gtest.h>
#include <mpi.h>
#if __has_include("solvers/feature_block.hpp")
#include "solvers/feature_block.hpp"
#define SKEIN_HAVE_DENSE_FEATURE_BLOCK 1
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

namespace {

using skein::comm::Communicator;
using skein::solvers::GenotypeBlockOptions;
using skein::solvers::GenotypeFeatureBlock;
using skein::solvers::GenotypeScaling;
namespace random = skein::engine;

using Packed = Kokkos::View<std::uint8_t**, Kokkos::LayoutRight>;
template <class Scalar>
using Matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight>;
using HostIndex = Kokkos::View<std::int64_t*, Kokkos::HostSpace>;

// Random calls: code[snp][sample] in {0 hom A1, 1 missing, 2 het, 3 hom A2}, about 6% missing, allele
// frequencies spread over (0.05, 0.95).
std::vector<std::vector<unsigned>> random_codes(std::int64_t snps, std::int64_t samples, std::uint64_t seed) {
  std::vector<std::vector<unsigned>> codes(snps, std::vector<unsigned>(samples));
  for (std::int64_t j = 0; j < snps; ++j) {
    const double p = 0.05 + 0.9 * random::uniform_open01(seed, 1, j);
    for (std::int64_t s = 0; s < samples; ++s) {
      const std::uint64_t id = static_cast<std::uint64_t>(j * samples + s);
      if (random::uniform_open01(seed, 2, id) < 0.06) {
        codes[j][s] = 1;
        continue;
      }
      const int dosage =
          (random::uniform_open01(seed, 3, id) < p) + (random::uniform_open01(seed, 4, id) < p);
      codes[j][s] = dosage == 0 ? 0u : dosage == 1 ? 2u : 3u;
    }
  }
  return codes;
}

// This rank's SNP records, packed as in a .bed (first sample in the low bits; padding bits left 0).
Packed pack(const std::vector<std::vector<unsigned>>& codes, std::int64_t first, std::int64_t count,
            std::int64_t samples) {
  Packed packed("packed", count, (samples + 3) / 4);
  auto host = Kokkos::create_mirror_view(packed);
  Kokkos::deep_copy(host, 0);
  for (std::int64_t j = 0; j < count; ++j)
    for (std::int64_t s = 0; s < samples; ++s)
      host(j, s / 4) = static_cast<std::uint8_t>(host(j, s / 4) | (codes[first + j][s] << (2 * (s % 4))));
  Kokkos::deep_copy(packed, host);
  return packed;
}

// The dense reference: rows x snps, row r = .fam sample row_samples[r], standardised over stat_rows.
std::vector<std::vector<double>> dense_x(const std::vector<std::vector<unsigned>>& codes,
                                         const std::vector<std::int64_t>& row_samples,
                                         const std::vector<std::int64_t>& stat_rows, bool scale) {
  const std::size_t rows = row_samples.size(), snps = codes.size();
  std::vector<std::vector<double>> x(rows, std::vector<double>(snps, 0.0));
  for (std::size_t j = 0; j < snps; ++j) {
    double observed = 0, sum = 0;
    for (const auto r : stat_rows) {
      const unsigned code = codes[j][row_samples[r]];
      if (code == 1) continue;
      observed += 1;
      sum += code == 0 ? 0 : code == 2 ? 1 : 2;
    }
    const double mean = sum / observed;  // 2p
    const double p = mean / 2;
    const double sd = scale ? std::sqrt(2 * p * (1 - p)) : 1.0;
    for (std::size_t r = 0; r < rows; ++r) {
      const unsigned code = codes[j][row_samples[r]];
      x[r][j] = code == 1 ? 0.0 : ((code == 0 ? 0 : code == 2 ? 1 : 2) - mean) / sd;
    }
  }
  return x;
}

template <class Scalar>
Matrix<Scalar> to_matrix(const std::vector<std::vector<double>>& values, std::size_t first_row,
                         std::size_t rows) {
  const std::size_t cols = values.empty() ? 0 : values[0].size();
  Matrix<Scalar> m("m", rows, cols);
  auto host = Kokkos::create_mirror_view(m);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t c = 0; c < cols; ++c) host(i, c) = static_cast<Scalar>(values[first_row + i][c]);
  Kokkos::deep_copy(m, host);
  return m;
}

std::vector<std::vector<double>> random_matrix(std::size_t rows, std::size_t cols, std::uint64_t seed) {
  std::vector<std::vector<double>> m(rows, std::vector<double>(cols));
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t c = 0; c < cols; ++c) m[i][c] = random::standard_normal(seed, 9, i * cols + c);
  return m;
}

HostIndex to_index(const std::vector<std::int64_t>& values) {
  HostIndex v("index", values.size());
  for (std::size_t i = 0; i < values.size(); ++i) v(i) = values[i];
  return v;
}

struct Case {
  const char* name;
  bool scale;
  bool subset;  // rows are a shuffled subset of the .fam; statistics from a part of them
};

template <class Scalar>
void check_products(const Communicator& comm, const Case& test_case, double tolerance) {
  SCOPED_TRACE(test_case.name);
  constexpr std::int64_t kSamples = 203, kSnps = 157, k = 4, q = 3;
  const auto codes = random_codes(kSnps, kSamples, 17);
  const auto range = skein::comm::BlockPartition(kSnps, comm.size()).range(comm.rank());
  const auto first = static_cast<std::int64_t>(range.begin), local = static_cast<std::int64_t>(range.size());

  std::vector<std::int64_t> row_samples(kSamples), stat_rows;
  std::iota(row_samples.begin(), row_samples.end(), 0);
  GenotypeBlockOptions options;
  options.scaling = test_case.scale ? GenotypeScaling::scale : GenotypeScaling::center;
  if (test_case.subset) {
    // 150 of the 203 samples in a scrambled order; statistics over the first 120 rows.
    row_samples.clear();
    for (std::int64_t i = 0; i < 150; ++i) row_samples.push_back((i * 37 + 11) % kSamples);
    stat_rows.resize(120);
    std::iota(stat_rows.begin(), stat_rows.end(), 0);
    std::reverse(stat_rows.begin(), stat_rows.end());
    options.row_samples = to_index(row_samples);
    options.statistics_rows = to_index(stat_rows);
  } else {
    stat_rows = row_samples;
  }
  const auto n = static_cast<std::int64_t>(row_samples.size());
  const auto x = dense_x(codes, row_samples, stat_rows, test_case.scale);

  GenotypeFeatureBlock<Scalar> block(pack(codes, first, local, kSamples), kSamples, first, options);
  EXPECT_EQ(block.rows(), n);
  EXPECT_EQ(block.columns(), local);
  EXPECT_EQ(block.first_column(), first);

  // A minibatch in no order, with repeats, crossing every byte position within records.
  std::vector<std::int64_t> batch;
  for (std::int64_t i = 0; i < 77; ++i) batch.push_back((i * 53 + 5) % n);
  batch.push_back(batch[3]);
  batch.push_back(batch[3]);
  batch.push_back(n - 1);
  batch.push_back(0);
  const auto b = batch.size();
  Kokkos::View<std::int64_t*> rows("rows", b);
  auto rows_host = Kokkos::create_mirror_view(rows);
  for (std::size_t i = 0; i < b; ++i) rows_host(i) = batch[i];
  Kokkos::deep_copy(rows, rows_host);

  // multiply: Z = Z0 + X[rows] U, Z allreduced over the ranks' column blocks.
  const auto u_all = random_matrix(kSnps, k, 1);
  const auto z0 = random_matrix(b, k, 2);
  auto u = to_matrix<Scalar>(u_all, first, local);
  Matrix<Scalar> z("z", b, k);
  if (comm.rank() == 0) Kokkos::deep_copy(z, to_matrix<Scalar>(z0, 0, b));
  block.multiply(rows, u, z);
  comm.allreduce(z, skein::comm::Op::sum);
  auto z_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), z);
  for (std::size_t i = 0; i < b; ++i) {
    for (std::int64_t c = 0; c < k; ++c) {
      double expected = z0[i][c];
      for (std::int64_t j = 0; j < kSnps; ++j) expected += x[batch[i]][j] * u_all[j][c];
      EXPECT_NEAR(z_host(i, c), expected, tolerance * (1 + std::abs(expected)))
          << "Z(" << i << ", " << c << ")";
    }
  }

  // transpose_multiply: out = X[rows, my columns]^T G.
  const auto g_all = random_matrix(b, k, 3);
  Matrix<Scalar> out("out", local, k);
  Kokkos::deep_copy(out, Scalar(7));  // overwritten, not accumulated
  block.transpose_multiply(rows, to_matrix<Scalar>(g_all, 0, b), out);
  auto out_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), out);
  for (std::int64_t j = 0; j < local; ++j) {
    for (std::int64_t c = 0; c < k; ++c) {
      double expected = 0;
      for (std::size_t i = 0; i < b; ++i) expected += x[batch[i]][first + j] * g_all[i][c];
      EXPECT_NEAR(out_host(j, c), expected, tolerance * (1 + std::abs(expected)))
          << "out(" << j << ", " << c << ")";
    }
  }

  // full_cross: X[all rows, my columns]^T Y.
  const auto y_all = random_matrix(n, q, 4);
  Matrix<Scalar> cross("cross", local, q);
  block.full_cross(to_matrix<Scalar>(y_all, 0, n), cross);
  auto cross_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), cross);
  for (std::int64_t j = 0; j < local; ++j) {
    for (std::int64_t c = 0; c < q; ++c) {
      double expected = 0;
      for (std::int64_t i = 0; i < n; ++i) expected += x[i][first + j] * y_all[i][c];
      EXPECT_NEAR(cross_host(j, c), expected, tolerance * (1 + std::abs(expected)))
          << "cross(" << j << ", " << c << ")";
    }
  }
}

const Case kCases[] = {
    {"all rows, center", false, false},
    {"all rows, scale", true, false},
    {"shuffled subset, training statistics, center", false, true},
    {"shuffled subset, training statistics, scale", true, true},
};

TEST(GenotypeBlock, DoubleMatchesDenseStandardisedMatrix) {
  Communicator comm(MPI_COMM_WORLD);
  for (const auto& c : kCases) check_products<double>(comm, c, 1e-12);
}

TEST(GenotypeBlock, FloatMatchesDenseStandardisedMatrix) {
  Communicator comm(MPI_COMM_WORLD);
  for (const auto& c : kCases) check_products<float>(comm, c, 2e-5);
}

// The 7-sample fileset of test_plink, SNP 0: A2 dosages 0 1 2 NA 2 2 1 (bytes 0x78 0x2f), p = 8/12 = 2/3.
// By hand: centred, hom A1 -> -4/3, het -> -1/3, hom A2 -> 2/3, missing -> 0; scaled by sd =
// sqrt(2 * 2/3 * 1/3) = 2/3: -2, -1/2, 1, 0.
TEST(GenotypeBlock, HandDecodedTables) {
  Packed packed("packed", 1, 2);
  auto host = Kokkos::create_mirror_view(packed);
  host(0, 0) = 0x78;
  host(0, 1) = 0x2f;
  Kokkos::deep_copy(packed, host);
  GenotypeBlockOptions options;
  GenotypeFeatureBlock<double> centred(packed, 7, 0, options);
  options.scaling = GenotypeScaling::scale;
  GenotypeFeatureBlock<double> scaled(packed, 7, 0, options);
  auto c = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), centred.code_values());
  auto s = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), scaled.code_values());
  EXPECT_NEAR(c(0, 0), -4.0 / 3, 1e-15);
  EXPECT_EQ(c(0, 1), 0.0);
  EXPECT_NEAR(c(0, 2), -1.0 / 3, 1e-15);
  EXPECT_NEAR(c(0, 3), 2.0 / 3, 1e-15);
  EXPECT_NEAR(s(0, 0), -2.0, 1e-15);
  EXPECT_EQ(s(0, 1), 0.0);
  EXPECT_NEAR(s(0, 2), -0.5, 1e-15);
  EXPECT_NEAR(s(0, 3), 1.0, 1e-15);
  auto f = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), scaled.a2_frequency());
  EXPECT_NEAR(f(0), 2.0 / 3, 1e-15);

  // X^T 1 over all 7 rows is the column's sum, 0 after centring (missing imputed to the mean): by hand
  // -2 - 1/2 + 1 + 0 + 1 + 1 - 1/2 = 0; and X^T e_2 picks row 2 (hom A2) = 1.
  Matrix<double> y("y", 7, 2);
  auto y_host = Kokkos::create_mirror_view(y);
  for (int i = 0; i < 7; ++i) y_host(i, 0) = 1.0;
  y_host(2, 1) = 1.0;
  Kokkos::deep_copy(y, y_host);
  Matrix<double> out("out", 1, 2);
  scaled.full_cross(y, out);
  auto out_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), out);
  EXPECT_NEAR(out_host(0, 0), 0.0, 1e-15);
  EXPECT_NEAR(out_host(0, 1), 1.0, 1e-15);
}

// A SNP polymorphic in the file but without variance over the training rows is left centred, unscaled
// (DenseFeatureBlock's rule), never divided by zero.
TEST(GenotypeBlock, NoVarianceOverStatisticsRowsIsLeftCentred) {
  Packed packed("packed", 2, 2);
  auto host = Kokkos::create_mirror_view(packed);
  host(0, 0) = 0x78;  // SNP 0 of the tiny fileset
  host(0, 1) = 0x2f;
  host(1, 0) = 0xff;  // all hom A2 ...
  host(1, 1) = 0x2f;  // ... except sample 6 (het)
  Kokkos::deep_copy(packed, host);
  GenotypeBlockOptions options;
  options.scaling = GenotypeScaling::scale;
  options.statistics_rows = to_index({0, 1, 2, 3, 4, 5});
  GenotypeFeatureBlock<double> block(packed, 7, 40, options);
  auto t = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), block.code_values());
  EXPECT_EQ(t(1, 3), 0.0);   // hom A2 is the training mean
  EXPECT_EQ(t(1, 2), -1.0);  // het: 1 - 2, not divided by sd 0
  EXPECT_EQ(t(1, 1), 0.0);
  // SNP 0 over rows 0-5 (dosages 0 1 2 NA 2 2): p = 7/10, sd = sqrt(2 * 0.7 * 0.3) = sqrt(0.42).
  EXPECT_NEAR(t(0, 3), (2 - 1.4) / std::sqrt(0.42), 1e-15);
}

#ifdef SKEIN_HAVE_DENSE_FEATURE_BLOCK
// The two FeatureBlocks give the same numbers for the same data: DenseFeatureBlock on the mean-imputed
// dosages of a shuffled subset of the samples, GenotypeFeatureBlock on the packed calls with those rows.
// Centring only: with scale they differ by design (the dense block divides by the empirical sd of the
// imputed column, the genotype block by sqrt(2p(1-p))).
TEST(GenotypeBlock, SameProductsAsDenseFeatureBlock) {
  Communicator comm(MPI_COMM_WORLD);
  constexpr std::int64_t kSamples = 131, kSnps = 61, k = 3, q = 2;
  const auto codes = random_codes(kSnps, kSamples, 23);
  const auto range = skein::comm::BlockPartition(kSnps, comm.size()).range(comm.rank());
  const auto first = static_cast<std::int64_t>(range.begin), local = static_cast<std::int64_t>(range.size());
  std::vector<std::int64_t> row_samples;
  for (std::int64_t i = 0; i < 100; ++i) row_samples.push_back((i * 29 + 3) % kSamples);
  const auto n = static_cast<std::int64_t>(row_samples.size());
  // Raw dosages with each missing call replaced by its column's mean over the rows.
  std::vector<std::vector<double>> raw(n, std::vector<double>(local));
  for (std::int64_t j = 0; j < local; ++j) {
    double observed = 0, sum = 0;
    for (std::int64_t r = 0; r < n; ++r) {
      const unsigned code = codes[first + j][row_samples[r]];
      if (code != 1) observed += 1, sum += code == 0 ? 0 : code == 2 ? 1 : 2;
    }
    for (std::int64_t r = 0; r < n; ++r) {
      const unsigned code = codes[first + j][row_samples[r]];
      raw[r][j] = code == 1 ? sum / observed : code == 0 ? 0 : code == 2 ? 1 : 2;
    }
  }
  skein::solvers::DenseFeatureBlock<double> dense(to_matrix<double>(raw, 0, n), first,
                                                  skein::solvers::Standardize::center);
  GenotypeBlockOptions options;
  options.row_samples = to_index(row_samples);
  GenotypeFeatureBlock<double> genotypes(pack(codes, first, local, kSamples), kSamples, first, options);

  const std::int64_t b = 40;
  Kokkos::View<std::int64_t*> rows("rows", b);
  auto rows_host = Kokkos::create_mirror_view(rows);
  for (std::int64_t i = 0; i < b; ++i) rows_host(i) = (i * 17 + 1) % n;
  rows_host(b - 1) = rows_host(0);
  Kokkos::deep_copy(rows, rows_host);
  const auto u = to_matrix<double>(random_matrix(kSnps, k, 5), first, local);
  const auto g = to_matrix<double>(random_matrix(b, k, 6), 0, b);
  const auto y = to_matrix<double>(random_matrix(n, q, 7), 0, n);
  Matrix<double> z1("z1", b, k), z2("z2", b, k), o1("o1", local, k), o2("o2", local, k), c1("c1", local, q),
      c2("c2", local, q);
  dense.multiply(rows, u, z1);
  genotypes.multiply(rows, u, z2);
  dense.transpose_multiply(rows, g, o1);
  genotypes.transpose_multiply(rows, g, o2);
  dense.full_cross(y, c1);
  genotypes.full_cross(y, c2);
  const auto expect_near = [](const Matrix<double>& a, const Matrix<double>& e, const char* what) {
    auto ah = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), a);
    auto eh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), e);
    for (std::size_t i = 0; i < ah.extent(0); ++i)
      for (std::size_t c = 0; c < ah.extent(1); ++c)
        EXPECT_NEAR(ah(i, c), eh(i, c), 1e-12 * (1 + std::abs(eh(i, c))))
            << what << "(" << i << ", " << c << ")";
  };
  expect_near(z2, z1, "Z");
  expect_near(o2, o1, "out");
  expect_near(c2, c1, "cross");
}
#endif

}  // namespace
