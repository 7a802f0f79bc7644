// The exact CCA-family solvers against independent dense references computed in the test from the raw
// planted data: exact PLS against LAPACK dgesvd of Xs^T Ys / (n - 1); dense CCA and ridge CCA against
// the SVD of Bx^{-1/2} S_xy By^{-1/2} (B^{-1/2} by dsyev); subspace scores of the exact weights; the
// size and definiteness refusals. At 1-3 ranks (feature-sharded).
// skein-test-ranks: 1 2 3
#include "cca_planted.hpp"
#include "comm/communicator.hpp"
#include "engine/error.hpp"
#include "solvers/cca_exact.hpp"
#include "solvers/cca_ey.hpp"
#include "solvers/cca_metrics.hpp"
#include "solvers/genotype_block.hpp"
#include "solvers/lapack.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

extern "C" void dgesvd_(const char* jobu, const char* jobvt, const int* m, const int* n, double* a,
                        const int* lda, double* s, double* u, const int* ldu, double* vt, const int* ldvt,
                        double* work, const int* lwork, int* info);

using skein::comm::Communicator;
using namespace cca_test;
namespace cca = skein::solvers::cca;

namespace {

// Column-major m x n SVD: singular values descending, U (m x min) and V (n x min) column-major.
struct Svd {
  std::vector<double> s, u, v;
};
Svd svd(int m, int n, std::vector<double> a) {
  const int r = std::min(m, n);
  Svd out;
  out.s.resize(r);
  out.u.resize(static_cast<std::size_t>(m) * r);
  std::vector<double> vt(static_cast<std::size_t>(r) * n);
  int lwork = -1, info = 0;
  double query = 0;
  const char job = 'S';
  dgesvd_(&job, &job, &m, &n, a.data(), &m, out.s.data(), out.u.data(), &m, vt.data(), &r, &query, &lwork,
          &info);
  lwork = static_cast<int>(query);
  std::vector<double> work(lwork);
  dgesvd_(&job, &job, &m, &n, a.data(), &m, out.s.data(), out.u.data(), &m, vt.data(), &r, work.data(),
          &lwork, &info);
  EXPECT_EQ(info, 0);
  out.v.resize(static_cast<std::size_t>(n) * r);
  for (int i = 0; i < r; ++i)
    for (int j = 0; j < n; ++j)
      out.v[static_cast<std::size_t>(i) * n + j] = vt[static_cast<std::size_t>(j) * r + i];
  return out;
}

// Standardised (scale) full views from the raw generator, n x p row-major, computed independently of
// DenseFeatureBlock.
std::vector<double> standardized(const PlantedSpec& s, int view) {
  const std::int64_t n = s.n, w = view == 0 ? s.p : s.q;
  std::vector<double> out(static_cast<std::size_t>(n * w));
  for (std::int64_t j = 0; j < w; ++j) {
    double sum = 0, ss = 0;
    for (std::int64_t i = 0; i < n; ++i) sum += out[i * w + j] = planted_value(s, view, i, j);
    const double mean = sum / n;
    for (std::int64_t i = 0; i < n; ++i) ss += (out[i * w + j] - mean) * (out[i * w + j] - mean);
    const double sd = std::sqrt(ss / n);
    for (std::int64_t i = 0; i < n; ++i) out[i * w + j] = (out[i * w + j] - mean) / sd;
  }
  return out;
}

// Column-major a x b cross-covariance of two row-major standardised views (already centred).
std::vector<double> cross_cov(const std::vector<double>& x, std::int64_t p, const std::vector<double>& y,
                              std::int64_t q, std::int64_t n) {
  std::vector<double> m(static_cast<std::size_t>(p * q), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t c = 0; c < q; ++c)
      for (std::int64_t r = 0; r < p; ++r) m[c * p + r] += x[i * p + r] * y[i * q + c] / (n - 1);
  return m;
}

// |cos| between this rank's block of a learned column (gathered over ranks) and a reference vector.
double abs_cosine(const Communicator& comm, const Matrix& local, int column, std::int64_t first,
                  const std::vector<double>& reference) {
  double dot = 0, nl = 0, nr = 0;
  for (std::size_t r = 0; r < local.extent(0); ++r) {
    dot += local(r, column) * reference[first + r];
    nl += local(r, column) * local(r, column);
  }
  for (double v : reference) nr += v * v;
  dot = comm.allreduce(dot, skein::comm::Op::sum);
  nl = comm.allreduce(nl, skein::comm::Op::sum);
  return std::abs(dot) / std::sqrt(nl * nr);
}

TEST(ExactPls, MatchesDenseSvdOfCrossCovariance) {
  Communicator comm(MPI_COMM_WORLD);
  PlantedSpec spec;
  spec.n = 500;
  spec.p = 45;
  spec.q = 23;
  const auto data = make_planted(comm, spec);
  const int k = 6;
  const auto solution = cca::exact_pls(comm, *data->x, *data->y, k);
  const auto xs = standardized(spec, 0), ys = standardized(spec, 1);
  const Svd reference = svd(spec.p, spec.q, cross_cov(xs, spec.p, ys, spec.q, spec.n));
  ASSERT_EQ(solution.values.size(), static_cast<std::size_t>(k));
  for (int c = 0; c < k; ++c) {
    EXPECT_NEAR(solution.values[c], reference.s[c], 1e-8 * reference.s[0]) << "sigma " << c;
    const std::vector<double> ux(reference.u.begin() + c * spec.p, reference.u.begin() + (c + 1) * spec.p);
    const std::vector<double> vy(reference.v.begin() + c * spec.q, reference.v.begin() + (c + 1) * spec.q);
    EXPECT_NEAR(abs_cosine(comm, solution.weights_x, c, data->first_x, ux), 1.0, 1e-8) << "u " << c;
    EXPECT_NEAR(abs_cosine(comm, solution.weights_y, c, data->first_y, vy), 1.0, 1e-8) << "v " << c;
  }
  // The exact weights capture everything: their subspace eigenvalues (PLS) are the singular values.
  const auto scores = cca::subspace_scores(comm, *data->x, *data->y, solution.weights_x, solution.weights_y,
                                           range_rows(0, spec.n), 1.0, 1.0);
  for (int c = 0; c < k; ++c) EXPECT_NEAR(scores.eigenvalues[c], reference.s[c], 1e-8 * reference.s[0]);
}

// Reference (ridge) CCA: K = Bx^{-1/2} S_xy By^{-1/2}, B_i = alpha I + (1 - alpha) S_ii; values = its
// singular values, x weights Bx^{-1/2} u.
struct CcaReference {
  std::vector<double> values;
  std::vector<std::vector<double>> wx, wy;
};
std::vector<double> inverse_sqrt(std::int64_t m, const std::vector<double>& b) {
  const auto e = skein::solvers::symmetric_eigen(static_cast<int>(m), b, true);
  std::vector<double> out(static_cast<std::size_t>(m * m), 0.0);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < m; ++j)
      for (std::int64_t l = 0; l < m; ++l)
        out[j * m + i] += e.vector(i, l) * e.vector(j, l) / std::sqrt(e.values[l]);
  return out;
}
CcaReference reference_cca(const PlantedSpec& s, double ax, double ay, int k) {
  const auto xs = standardized(s, 0), ys = standardized(s, 1);
  auto bx = cross_cov(xs, s.p, xs, s.p, s.n), by = cross_cov(ys, s.q, ys, s.q, s.n);
  for (auto& v : bx) v *= 1 - ax;
  for (auto& v : by) v *= 1 - ay;
  for (std::int64_t i = 0; i < s.p; ++i) bx[i * s.p + i] += ax;
  for (std::int64_t i = 0; i < s.q; ++i) by[i * s.q + i] += ay;
  const auto hx = inverse_sqrt(s.p, bx), hy = inverse_sqrt(s.q, by);
  const auto sxy = cross_cov(xs, s.p, ys, s.q, s.n);
  // K = hx * sxy * hy (column-major).
  std::vector<double> t(static_cast<std::size_t>(s.p * s.q), 0.0), kmat(t.size(), 0.0);
  for (std::int64_t c = 0; c < s.q; ++c)
    for (std::int64_t l = 0; l < s.p; ++l)
      for (std::int64_t r = 0; r < s.p; ++r) t[c * s.p + r] += hx[l * s.p + r] * sxy[c * s.p + l];
  for (std::int64_t c = 0; c < s.q; ++c)
    for (std::int64_t l = 0; l < s.q; ++l)
      for (std::int64_t r = 0; r < s.p; ++r) kmat[c * s.p + r] += t[l * s.p + r] * hy[c * s.q + l];
  const Svd d = svd(static_cast<int>(s.p), static_cast<int>(s.q), kmat);
  CcaReference out;
  for (int c = 0; c < k; ++c) {
    out.values.push_back(d.s[c]);
    std::vector<double> wx(s.p, 0.0), wy(s.q, 0.0);
    for (std::int64_t r = 0; r < s.p; ++r)
      for (std::int64_t l = 0; l < s.p; ++l) wx[r] += hx[l * s.p + r] * d.u[c * s.p + l];
    for (std::int64_t r = 0; r < s.q; ++r)
      for (std::int64_t l = 0; l < s.q; ++l) wy[r] += hy[l * s.q + r] * d.v[c * s.q + l];
    out.wx.push_back(wx);
    out.wy.push_back(wy);
  }
  return out;
}

void check_dense_cca(double alpha) {
  Communicator comm(MPI_COMM_WORLD);
  PlantedSpec spec;
  spec.n = 400;
  spec.p = 35;
  spec.q = 22;
  const auto data = make_planted(comm, spec);
  const int k = 4;
  const auto solution = cca::dense_cca(comm, *data->x, *data->y, k, alpha, alpha, range_rows(0, spec.n));
  const auto reference = reference_cca(spec, alpha, alpha, k);
  for (int c = 0; c < k; ++c) {
    EXPECT_NEAR(solution.values[c], reference.values[c], 1e-8) << "value " << c;
    EXPECT_NEAR(abs_cosine(comm, solution.weights_x, c, data->first_x, reference.wx[c]), 1.0, 1e-8);
    EXPECT_NEAR(abs_cosine(comm, solution.weights_y, c, data->first_y, reference.wy[c]), 1.0, 1e-8);
  }
  // Subspace scores of the exact weights: the GEP values themselves; for CCA the correlations too, and
  // the weights give unit-variance variates.
  const auto scores = cca::subspace_scores(comm, *data->x, *data->y, solution.weights_x, solution.weights_y,
                                           range_rows(0, spec.n), alpha, alpha);
  for (int c = 0; c < k; ++c) EXPECT_NEAR(scores.eigenvalues[c], reference.values[c], 1e-8);
  if (alpha == 0) {
    for (int c = 0; c < k; ++c) EXPECT_NEAR(scores.correlations[c], reference.values[c], 1e-8);
    const auto cov = cca::projection_covariance(comm, *data->x, *data->y, solution.weights_x,
                                                solution.weights_y, range_rows(0, spec.n));
    for (int c = 0; c < 2 * k; ++c) EXPECT_NEAR(cov[c * 2 * k + c], 1.0, 1e-8);
  }
}

TEST(DenseCca, CcaMatchesWhitenedSvd) {
  check_dense_cca(0.0);
}
TEST(DenseCca, RidgeCcaMatchesWhitenedSvd) {
  check_dense_cca(0.3);
}
TEST(DenseCca, PlsLimitMatchesWhitenedSvd) {
  check_dense_cca(1.0);
}

TEST(DenseCca, RefusesSingularCovarianceAndOversizeProblems) {
  Communicator comm(MPI_COMM_WORLD);
  PlantedSpec spec;
  spec.n = 30;  // fewer samples than features: S_xx singular
  spec.p = 40;
  spec.q = 10;
  const auto data = make_planted(comm, spec);
  EXPECT_THROW(cca::dense_cca(comm, *data->x, *data->y, 2, 0.0, 0.0, range_rows(0, spec.n)),
               skein::engine::DataError);
  // Ridge makes it definite.
  EXPECT_NO_THROW(cca::dense_cca(comm, *data->x, *data->y, 2, 0.5, 0.5, range_rows(0, spec.n)));
  EXPECT_THROW(cca::exact_pls(comm, *data->x, *data->y, 11), skein::engine::UsageError);
  PlantedSpec wide = spec;
  wide.p = cca::kDenseCcaMaxDimension;
  wide.n = 3;
  wide.latent = 1;
  const auto big = make_planted(comm, wide);
  EXPECT_THROW(cca::dense_cca(comm, *big->x, *big->y, 2, 0.5, 0.5, range_rows(0, wide.n)),
               skein::engine::UsageError);
}

// Exact PLS on training rows of a block that also holds validation rows (statistics from the training
// rows) equals exact PLS on a block of the training rows alone.
TEST(ExactPls, TrainingRowsOfASharedBlockMatchATrainingOnlyBlock) {
  Communicator comm(MPI_COMM_WORLD);
  PlantedSpec spec;
  spec.n = 300;
  spec.p = 25;
  spec.q = 9;
  const auto data = make_planted(comm, spec);
  std::vector<std::int64_t> train;
  for (std::int64_t i = 0; i < spec.n; i += 3) train.push_back(i), train.push_back(i + 1);
  const auto train_rows = make_rows(train);
  using skein::solvers::Standardize;
  Block sx(data->x_values, data->first_x, Standardize::scale, train_rows),
      sy(data->y_values, data->first_y, Standardize::scale, train_rows);
  Matrix tx("tx", train.size(), data->x_values.extent(1)), ty("ty", train.size(), data->y_values.extent(1));
  for (std::size_t i = 0; i < train.size(); ++i) {
    for (std::size_t j = 0; j < tx.extent(1); ++j) tx(i, j) = data->x_values(train[i], j);
    for (std::size_t j = 0; j < ty.extent(1); ++j) ty(i, j) = data->y_values(train[i], j);
  }
  Block only_x(tx, data->first_x, Standardize::scale), only_y(ty, data->first_y, Standardize::scale);
  const auto shared = cca::exact_pls(comm, sx, sy, 4, train_rows);
  const auto alone = cca::exact_pls(comm, only_x, only_y, 4);
  for (int c = 0; c < 4; ++c) EXPECT_NEAR(shared.values[c], alone.values[c], 1e-10 * alone.values[0]);
  for (std::size_t r = 0; r < shared.weights_x.extent(0); ++r)
    EXPECT_NEAR(shared.weights_x(r, 0), alone.weights_x(r, 0), 1e-9);
}

// The solvers on A's GenotypeFeatureBlock (packed PLINK codes, no missing calls) give what they give on a
// DenseFeatureBlock of the decoded A2 dosages: exact PLS, a few GEP-EY steps, subspace scores.
TEST(GenotypeInterop, SolversAgreeOnGenotypeAndDenseBlocks) {
  Communicator comm(MPI_COMM_WORLD);
  const std::int64_t n = 203, p = 41, q = 7;  // n not a multiple of 4
  const auto range = skein::comm::BlockPartition(p, comm.size()).range(comm.rank());
  const std::int64_t local = static_cast<std::int64_t>(range.size()), bytes = (n + 3) / 4;
  // Codes 0 (hom A1), 2 (het), 3 (hom A2); dosage of A2 = 0, 1, 2; a shared factor makes them correlate.
  Kokkos::View<std::uint8_t**, Kokkos::LayoutRight> packed("packed", local, bytes);
  Kokkos::View<double**, Kokkos::LayoutRight> dosage("dosage", n, local);
  auto code_of = [&](std::int64_t i, std::int64_t j) {
    const double f =
        skein::engine::standard_normal(3, 1u, i) + 0.7 * skein::engine::standard_normal(3, 2u, i * p + j);
    return f < -0.5 ? 0 : (f < 0.8 ? 2 : 3);
  };
  for (std::int64_t j = 0; j < local; ++j)
    for (std::int64_t i = 0; i < n; ++i) {
      const int code = code_of(i, range.begin + j);
      packed(j, i / 4) |= static_cast<std::uint8_t>(code << (2 * (i % 4)));
      dosage(i, j) = code == 0 ? 0.0 : (code == 2 ? 1.0 : 2.0);
    }
  skein::solvers::GenotypeFeatureBlock<double> genotypes(packed, n, range.begin);
  Block dense_x(dosage, range.begin, skein::solvers::Standardize::center);
  const auto ry = skein::comm::BlockPartition(q, comm.size()).range(comm.rank());
  Matrix yv("y", n, ry.size());
  for (std::int64_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < ry.size(); ++j)
      yv(i, j) = skein::engine::standard_normal(3, 1u, i) +
                 skein::engine::standard_normal(3, 4u, i * q + ry.begin + j);
  Block dense_y(yv, ry.begin, skein::solvers::Standardize::scale);
  const auto eg = cca::exact_pls(comm, genotypes, dense_y, 3);
  const auto ed = cca::exact_pls(comm, dense_x, dense_y, 3);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(eg.values[c], ed.values[c], 1e-10 * ed.values[0]);
  cca::EyOptions options = cca::default_options(0.5, 0.5);
  options.components = 2;
  cca::GepEy<skein::solvers::GenotypeFeatureBlock<double>, Block> on_genotypes(comm, genotypes, dense_y,
                                                                               options);
  cca::GepEy<Block, Block> on_dense(comm, dense_x, dense_y, options);
  on_genotypes.initialize(range_rows(0, 40));
  on_dense.initialize(range_rows(0, 40));
  for (std::int64_t b0 = 0; b0 + 40 <= n; b0 += 40) {
    const auto rows = range_rows(b0, b0 + 40);
    const auto a = on_genotypes.step(rows), b = on_dense.step(rows);
    EXPECT_NEAR(a.objective, b.objective, 1e-9 * (1 + std::abs(b.objective)));
  }
  const auto all = range_rows(0, n);
  const auto sg = cca::subspace_scores(comm, genotypes, dense_y, on_genotypes.weights_x(),
                                       on_genotypes.weights_y(), all, 0.5, 0.5);
  const auto sd =
      cca::subspace_scores(comm, dense_x, dense_y, on_dense.weights_x(), on_dense.weights_y(), all, 0.5, 0.5);
  for (int c = 0; c < 2; ++c) EXPECT_NEAR(sg.correlations[c], sd.correlations[c], 1e-9);
}

}  // namespace
