// Exact solvers for two feature-sharded views: PLS from one pass X^T Y and a q x q eigenproblem, and dense
// (ridge) CCA through the (p + q)-square generalized eigenproblem for data that fits.
#pragma once

#include "comm/communicator.hpp"
#include "comm/exact_sum.hpp"
#include "engine/error.hpp"
#include "solvers/cca_groups.hpp"
#include "solvers/cca_metrics.hpp"
#include "solvers/dense_blas.hpp"
#include "solvers/lapack.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace skein::solvers::cca {

// The top-k solution: values descending (PLS: singular values of S_xy = X^T Y / (n - 1); CCA: canonical
// correlations; ridge: the GEP eigenvalues), and this rank's rows of the weights (columns() x k per view,
// global row first_column() + i).
template <class Scalar>
struct ExactSolution {
  std::vector<double> values;
  Kokkos::View<Scalar**, Kokkos::LayoutRight> weights_x;
  Kokkos::View<Scalar**, Kokkos::LayoutRight> weights_y;
};

// Largest q for exact_pls (the q x q matrix M^T M and its eigenvectors on every rank: 128 MB at 4096).
constexpr std::int64_t kExactPlsMaxQ = 4096;
// Largest p + q for dense_cca (three (p + q)^2 double matrices on every rank: 384 MB at 4000).
constexpr std::int64_t kDenseCcaMaxDimension = 4000;

namespace detail {

// Every rank's copy of the standardised columns of a block on `count` rows starting at row0 (count x
// global columns, row-major): each rank writes its columns, one allreduce.
template <class Block>
std::vector<double> gather_columns(const comm::Communicator& comm, const Block& block, std::int64_t row0,
                                   std::int64_t count, std::int64_t global_columns,
                                   Kokkos::View<const std::int64_t*> all_rows) {
  using Scalar = typename Block::scalar_type;
  using Matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight>;
  const std::int64_t local = block.columns(), first = block.first_column();
  std::vector<double> out(static_cast<std::size_t>(count * global_columns), 0.0);
  if (local > 0) {
    Matrix identity("cca::identity", local, local), z("cca::columns", count, local);
    auto hid = Kokkos::create_mirror_view(identity);
    for (std::int64_t i = 0; i < local; ++i) hid(i, i) = Scalar(1);
    Kokkos::deep_copy(identity, hid);
    auto rows = Kokkos::subview(all_rows, std::make_pair(row0, row0 + count));
    Kokkos::View<std::int64_t*> chunk("cca::rows", count);
    Kokkos::deep_copy(chunk, rows);
    block.multiply(chunk, identity, z);
    auto hz = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), z);
    for (std::int64_t i = 0; i < count; ++i)
      for (std::int64_t j = 0; j < local; ++j) out[i * global_columns + first + j] = hz(i, j);
  }
  comm.allreduce_inplace(out.data(), out.size(), comm::Op::sum);
  return out;
}

// comm.reproducible: scale * M^T M (q x q, row-major) for M sharded by rows in whole groups of `group` rows,
// each group's product M_g^T M_g one BLAS call on its rows alone, the groups' products summed exactly
// (comm/exact_sum.hpp). Two passes over the groups (the max of each entry, then the fixed-point sums), so
// only one q x q product is held at a time.
template <class Matrix>
std::vector<double> exact_group_gram(const comm::Communicator& comm, const Matrix& m, std::int64_t group,
                                     typename Matrix::non_const_value_type scale) {
  using Scalar = typename Matrix::non_const_value_type;
  const std::int64_t rows = static_cast<std::int64_t>(m.extent(0)),
                     q = static_cast<std::int64_t>(m.extent(1));
  const auto qq = static_cast<std::size_t>(q * q);
  Matrix part("cca::group_MtM", q, q);
  const auto for_each_group = [&](auto&& use) {
    for (std::int64_t g0 = 0; g0 < rows; g0 += group) {
      const auto mg = Kokkos::subview(m, std::make_pair(g0, std::min(rows, g0 + group)), Kokkos::ALL());
      blas::gemm(blas::Op::transpose, blas::Op::none, scale, mg, mg, Scalar(0), part);
      use(Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), part));
    }
  };
  std::vector<double> max_magnitude(qq, 0.0);
  for_each_group([&](const auto& h) {
    for (std::size_t i = 0; i < qq; ++i)
      max_magnitude[i] = std::max(max_magnitude[i], comm::exact_magnitude(h.data()[i]));
  });
  std::vector<comm::ExactScale> scales(qq);
  comm::exact_agree_scales(comm, qq, max_magnitude.data(), scales.data());
  std::vector<comm::ExactInt> sums(qq, 0);
  for_each_group([&](const auto& h) {
    for (std::size_t i = 0; i < qq; ++i) sums[i] += comm::to_exact(h.data()[i], scales[i]);
  });
  std::vector<double> out(qq);
  comm::exact_finish(comm, qq, sums.data(), scales.data(), out.data());
  return out;
}

inline Kokkos::View<std::int64_t*> all_rows(std::int64_t n) {
  Kokkos::View<std::int64_t*> rows("cca::all_rows", n);
  auto h = Kokkos::create_mirror_view(rows);
  for (std::int64_t i = 0; i < n; ++i) h(i) = i;
  Kokkos::deep_copy(rows, h);
  return rows;
}

// Flips each column's sign (global column-major vectors, `rows` long, starting at `offset` in a column of
// length `stride`) so that its entry of largest magnitude (first such) is positive; returns the signs.
inline std::vector<double> sign_convention(const EigenDecomposition& e, const std::vector<int>& columns,
                                           int offset, int rows) {
  std::vector<double> signs;
  for (int c : columns) {
    int best = 0;
    for (int r = 1; r < rows; ++r)
      if (std::abs(e.vector(offset + r, c)) > std::abs(e.vector(offset + best, c))) best = r;
    signs.push_back(e.vector(offset + best, c) < 0 ? -1.0 : 1.0);
  }
  return signs;
}

}  // namespace detail

// Exact PLS on the training rows of the blocks: M = Xs^T Ys / (n - 1) (p x q, rows sharded like X) from one
// full_cross pass, then M^T M (q x q, one allreduce) eigendecomposed by LAPACK dsyev: singular values
// sqrt(eigenvalues), W_y the eigenvectors (sign: largest-magnitude entry positive), W_x = M W_y / sigma
// (local rows; unit norm). Ys (n x q) is assembled on every rank first (n q values). Forming M^T M squares
// the condition number: a singular value below ~1e-8 sigma_1 loses its digits (the top k of a PLS are the
// large ones). q above kExactPlsMaxQ is refused (a UsageError): use the EY solver there.
// rows: the training rows (distinct); empty: all n rows. Other rows of Ys are zeroed before the pass, so
// they contribute nothing (the blocks' standardisation should come from the same rows).
template <class BlockX, class BlockY>
ExactSolution<typename BlockX::scalar_type> exact_pls(const comm::Communicator& comm, const BlockX& x,
                                                      const BlockY& y, int k,
                                                      Kokkos::View<const std::int64_t*> training_rows = {}) {
  using Scalar = typename BlockX::scalar_type;
  using Matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight>;
  const std::int64_t n = x.rows();
  const std::int64_t p = comm.allreduce(x.columns(), comm::Op::sum);
  const std::int64_t q = comm.allreduce(y.columns(), comm::Op::sum);
  if (q > kExactPlsMaxQ)
    throw engine::UsageError("cca: the exact PLS solver forms a q x q matrix and handles q up to " +
                             std::to_string(kExactPlsMaxQ) + "; Y has q = " + std::to_string(q) +
                             " columns (use solver = ey)");
  if (k < 1 || k > std::min(p, q))
    throw engine::UsageError("cca: components = " + std::to_string(k) +
                             " must lie in 1..min(p, q) = " + std::to_string(std::min(p, q)));
  const std::int64_t used =
      training_rows.extent(0) > 0 ? static_cast<std::int64_t>(training_rows.extent(0)) : n;
  if (used < 2) throw engine::UsageError("cca: exact PLS needs at least 2 samples");
  // Ys on every rank, in row chunks.
  const auto rows = detail::all_rows(n);
  Matrix ys("cca::Y_all", n, q);
  auto hys = Kokkos::create_mirror_view(ys);
  for (std::int64_t r0 = 0; r0 < n; r0 += kRowChunk) {
    const std::int64_t c = std::min(kRowChunk, n - r0);
    const auto part = detail::gather_columns(comm, y, r0, c, q, rows);
    for (std::int64_t i = 0; i < c; ++i)
      for (std::int64_t j = 0; j < q; ++j) hys(r0 + i, j) = static_cast<Scalar>(part[i * q + j]);
  }
  if (training_rows.extent(0) > 0) {
    auto keep_rows = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), training_rows);
    std::vector<char> keep(static_cast<std::size_t>(n), 0);
    for (std::size_t i = 0; i < keep_rows.extent(0); ++i) keep[keep_rows(i)] = 1;
    for (std::int64_t i = 0; i < n; ++i)
      if (!keep[i])
        for (std::int64_t j = 0; j < q; ++j) hys(i, j) = Scalar(0);
  }
  Kokkos::deep_copy(ys, hys);
  Matrix m("cca::M", x.columns(), q), mtm("cca::MtM", q, q);
  x.full_cross(ys, m);
  const Scalar inv = Scalar(1) / static_cast<Scalar>(used - 1);
  std::vector<double> gram(static_cast<std::size_t>(q * q));
  if (comm.exact_sums()) {
    gram = detail::exact_group_gram(comm, m, group_columns(p), inv * inv);
  } else {
    blas::gemm(blas::Op::transpose, blas::Op::none, inv * inv, m, m, Scalar(0), mtm);
    auto hmtm = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), mtm);
    for (std::int64_t i = 0; i < q; ++i)
      for (std::int64_t j = 0; j < q; ++j) gram[i * q + j] = hmtm(i, j);
    comm.allreduce_inplace(gram.data(), gram.size(), comm::Op::sum);
  }
  const EigenDecomposition e = [&] {
    const detail::SingleBlasThread single(comm.exact_sums());
    return symmetric_eigen(static_cast<int>(q), gram, true);
  }();
  std::vector<int> top;
  for (int c = 0; c < k; ++c) top.push_back(static_cast<int>(q) - 1 - c);
  const auto signs = detail::sign_convention(e, top, 0, static_cast<int>(q));
  ExactSolution<Scalar> out;
  out.weights_x = Matrix("cca::exact_W_x", x.columns(), k);
  out.weights_y = Matrix("cca::exact_W_y", y.columns(), k);
  Matrix wy_all("cca::W_y_all", q, k);
  auto hwy_all = Kokkos::create_mirror_view(wy_all);
  auto hwy = Kokkos::create_mirror_view(out.weights_y);
  for (int c = 0; c < k; ++c) {
    out.values.push_back(std::sqrt(std::max(0.0, e.values[top[c]])));
    for (std::int64_t r = 0; r < q; ++r) hwy_all(r, c) = static_cast<Scalar>(signs[c] * e.vector(r, top[c]));
    for (std::int64_t r = 0; r < y.columns(); ++r) hwy(r, c) = hwy_all(y.first_column() + r, c);
  }
  Kokkos::deep_copy(wy_all, hwy_all);
  Kokkos::deep_copy(out.weights_y, hwy);
  // W_x = M W_y / sigma, M = cross / (n - 1).
  blas::gemm(blas::Op::none, blas::Op::none, inv, m, wy_all, Scalar(0), out.weights_x);
  auto hwx = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), out.weights_x);
  for (std::size_t r = 0; r < hwx.extent(0); ++r)
    for (int c = 0; c < k; ++c)
      hwx(r, c) = out.values[c] > 0 ? static_cast<Scalar>(hwx(r, c) / out.values[c]) : Scalar(0);
  Kokkos::deep_copy(out.weights_x, hwx);
  return out;
}

// Dense CCA / ridge CCA on `rows` (the training rows; statistics centred over them): the (p + q)-square
// covariance of [Xs Ys] is formed on every rank (rows streamed, one allreduce per kRowChunk rows), then
// the GEP A w = lambda B w with A = [[0, S_xy], [S_yx, 0]], B = blockdiag(alpha_i I + (1 - alpha_i) S_ii)
// is solved by LAPACK dsygvd. Values: the top k eigenvalues (canonical correlations for alpha = 0).
// Weights: the eigenvectors scaled so each view's part has unit B_i-norm (unit-variance canonical variates
// for CCA), sign as exact_pls. p + q above kDenseCcaMaxDimension is refused (UsageError); a B that is not
// positive definite (alpha = 0 with p >= n, or a constant column) is a DataError that suggests ridge.
template <class BlockX, class BlockY>
ExactSolution<typename BlockX::scalar_type> dense_cca(const comm::Communicator& comm, const BlockX& x,
                                                      const BlockY& y, int k, double alpha_x, double alpha_y,
                                                      Kokkos::View<const std::int64_t*> rows) {
  using Scalar = typename BlockX::scalar_type;
  using Matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight>;
  const std::int64_t p = comm.allreduce(x.columns(), comm::Op::sum);
  const std::int64_t q = comm.allreduce(y.columns(), comm::Op::sum);
  const std::int64_t d = p + q;
  const std::int64_t n = static_cast<std::int64_t>(rows.extent(0));
  if (d > kDenseCcaMaxDimension)
    throw engine::UsageError("cca: the dense CCA solver handles p + q up to " +
                             std::to_string(kDenseCcaMaxDimension) +
                             "; these views have p + q = " + std::to_string(d) + " (use solver = ey)");
  if (k < 1 || k > std::min(p, q))
    throw engine::UsageError("cca: components = " + std::to_string(k) +
                             " must lie in 1..min(p, q) = " + std::to_string(std::min(p, q)));
  if (n < 2) throw engine::UsageError("cca: dense CCA needs at least 2 samples");
  std::vector<double> sums(d, 0.0), cov(static_cast<std::size_t>(d * d), 0.0);
  for (std::int64_t r0 = 0; r0 < n; r0 += kRowChunk) {
    const std::int64_t c = std::min(kRowChunk, n - r0);
    const auto xs = detail::gather_columns(comm, x, r0, c, p, rows);
    const auto ys = detail::gather_columns(comm, y, r0, c, q, rows);
    std::vector<double> w(static_cast<std::size_t>(c * d));
    for (std::int64_t i = 0; i < c; ++i) {
      std::copy(xs.begin() + i * p, xs.begin() + (i + 1) * p, w.begin() + i * d);
      std::copy(ys.begin() + i * q, ys.begin() + (i + 1) * q, w.begin() + i * d + p);
      for (std::int64_t j = 0; j < d; ++j) sums[j] += w[i * d + j];
    }
    Kokkos::View<double**, Kokkos::LayoutRight, Kokkos::HostSpace, Kokkos::MemoryUnmanaged> wv(w.data(), c,
                                                                                               d),
        cv(cov.data(), d, d);
    blas::gemm(blas::Op::transpose, blas::Op::none, 1.0, wv, wv, 1.0, cv);
  }
  for (std::int64_t i = 0; i < d; ++i)
    for (std::int64_t j = 0; j < d; ++j)
      cov[i * d + j] = (cov[i * d + j] - sums[i] * sums[j] / n) / static_cast<double>(n - 1);
  std::vector<double> a(static_cast<std::size_t>(d * d), 0.0), b(static_cast<std::size_t>(d * d), 0.0);
  for (std::int64_t i = 0; i < d; ++i)
    for (std::int64_t j = 0; j < d; ++j) {
      const bool xi = i < p, xj = j < p;
      if (xi != xj) {
        a[i * d + j] = cov[i * d + j];
      } else {
        const double alpha = xi ? alpha_x : alpha_y;
        b[i * d + j] = (1 - alpha) * cov[i * d + j] + (i == j ? alpha : 0.0);
      }
    }
  EigenDecomposition e;
  try {
    // comm.reproducible: the covariance is the same bits on every rank count (gather_columns adds zeros to
    // one value); LAPACK's threaded BLAS is not, so it runs on one thread there (slower at large p + q).
    const detail::SingleBlasThread single(comm.exact_sums());
    e = generalized_symmetric_eigen(static_cast<int>(d), std::move(a), std::move(b), true);
  } catch (const engine::InternalError& error) {
    throw engine::DataError(std::string("cca: the dense CCA solver needs each view's covariance (blended "
                                        "with alpha I) to be positive definite, and it is not (") +
                            error.what() +
                            "); with alpha = 0 that needs more samples than features and no constant "
                            "columns: use ridge CCA (alpha > 0)");
  }
  std::vector<int> top;
  for (int c = 0; c < k; ++c) top.push_back(static_cast<int>(d) - 1 - c);
  const auto signs = detail::sign_convention(e, top, static_cast<int>(p), static_cast<int>(q));
  ExactSolution<Scalar> out;
  out.weights_x = Matrix("cca::exact_W_x", x.columns(), k);
  out.weights_y = Matrix("cca::exact_W_y", y.columns(), k);
  auto hwx = Kokkos::create_mirror_view(out.weights_x);
  auto hwy = Kokkos::create_mirror_view(out.weights_y);
  const double root2 = std::sqrt(2.0);
  for (int c = 0; c < k; ++c) {
    out.values.push_back(e.values[top[c]]);
    for (std::int64_t r = 0; r < x.columns(); ++r)
      hwx(r, c) =
          static_cast<Scalar>(root2 * signs[c] * e.vector(static_cast<int>(x.first_column() + r), top[c]));
    for (std::int64_t r = 0; r < y.columns(); ++r)
      hwy(r, c) = static_cast<Scalar>(root2 * signs[c] *
                                      e.vector(static_cast<int>(p + y.first_column() + r), top[c]));
  }
  Kokkos::deep_copy(out.weights_x, hwx);
  Kokkos::deep_copy(out.weights_y, hwy);
  return out;
}

}  // namespace skein::solvers::cca
