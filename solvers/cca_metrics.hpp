// What learned CCA / PLS weights capture on a set of rows: the canonical correlations of their projections
// (TCC, PCC) and the top eigenvalues of the GEP restricted to their span; streamed, one allreduce a chunk.
#pragma once

#include "comm/communicator.hpp"
#include "engine/error.hpp"
#include "solvers/blas_threads.hpp"
#include "solvers/cca_groups.hpp"
#include "solvers/lapack.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

namespace skein::solvers::cca {

// Rows streamed per allreduce by the functions here.
constexpr std::int64_t kRowChunk = 2048;

namespace detail {

// comm.reproducible: one BLAS thread while it lives. OpenBLAS's threaded level-2 kernels under LAPACK's
// dsyev split their sums by thread, so the small eigenproblems here gave values 1 ulp apart at 1 and 2
// threads (ranks bound to one core each, or not, see the same weights differently); single-threaded they
// are the same bits everywhere, and at 2k x 2k no slower.
class SingleBlasThread {
 public:
  explicit SingleBlasThread(bool active) : previous_(active ? blas::threads() : 0) {
    if (active) blas::set_threads(1);
  }
  ~SingleBlasThread() {
    if (previous_ > 0) blas::set_threads(previous_);
  }
  SingleBlasThread(const SingleBlasThread&) = delete;
  SingleBlasThread& operator=(const SingleBlasThread&) = delete;

 private:
  int previous_;
};

// The top `count` eigenvalues (descending) of the symmetric pencil (A, B), n x n row-major (symmetric, so
// row- and column-major agree), B positive semi-definite: B is whitened through its eigendecomposition with
// directions below `relative_tolerance` * max eigenvalue dropped (a rank-deficient subspace, e.g. two equal
// weight columns, then loses those directions instead of failing); missing values are 0.
// With `vectors`, also the matching B-orthonormal eigenvectors (n x count row-major; zero columns where
// values are missing).
inline std::vector<double> top_pencil_values(int n, const std::vector<double>& a,
                                             const std::vector<double>& b, int count,
                                             std::vector<double>* vectors = nullptr,
                                             double relative_tolerance = 1e-12) {
  const EigenDecomposition eb = symmetric_eigen(n, b, true);
  const double top = n > 0 ? std::max(0.0, eb.values.back()) : 0.0;
  std::vector<int> kept;
  for (int i = 0; i < n; ++i)
    if (eb.values[i] > relative_tolerance * top && eb.values[i] > 0) kept.push_back(i);
  const int m = static_cast<int>(kept.size());
  // W = Q_kept D^{-1/2} (n x m); M = W^T A W (m x m).
  std::vector<double> w(static_cast<std::size_t>(n) * m);
  for (int c = 0; c < m; ++c)
    for (int r = 0; r < n; ++r) w[r * m + c] = eb.vector(r, kept[c]) / std::sqrt(eb.values[kept[c]]);
  std::vector<double> aw(static_cast<std::size_t>(n) * m, 0.0), mm(static_cast<std::size_t>(m) * m, 0.0);
  for (int r = 0; r < n; ++r)
    for (int j = 0; j < n; ++j) {
      const double arj = a[r * n + j];
      if (arj == 0) continue;
      for (int c = 0; c < m; ++c) aw[r * m + c] += arj * w[j * m + c];
    }
  for (int i = 0; i < m; ++i)
    for (int c = 0; c < m; ++c) {
      double s = 0;
      for (int r = 0; r < n; ++r) s += w[r * m + i] * aw[r * m + c];
      mm[i * m + c] = s;
    }
  for (int i = 0; i < m; ++i)  // symmetrise the rounding
    for (int c = 0; c < i; ++c) mm[i * m + c] = mm[c * m + i] = 0.5 * (mm[i * m + c] + mm[c * m + i]);
  const EigenDecomposition em = symmetric_eigen(m, mm, vectors != nullptr);
  std::vector<double> out(static_cast<std::size_t>(count), 0.0);
  for (int i = 0; i < count && i < m; ++i) out[i] = em.values[m - 1 - i];
  if (vectors != nullptr) {
    vectors->assign(static_cast<std::size_t>(n) * count, 0.0);
    for (int i = 0; i < count && i < m; ++i)
      for (int r = 0; r < n; ++r) {
        double sum = 0;
        for (int c = 0; c < m; ++c) sum += w[r * m + c] * em.vector(c, m - 1 - i);
        (*vectors)[r * count + i] = sum;
      }
  }
  return out;
}

}  // namespace detail

// Sample covariance (divisor N - 1) of the streamed projections [X U_x, Y U_y] over `rows`, centred over
// those rows: a 2k x 2k row-major matrix, the same on every rank.
template <class BlockX, class BlockY, class MatrixX, class MatrixY>
std::vector<double> projection_covariance(const comm::Communicator& comm, const BlockX& x, const BlockY& y,
                                          const MatrixX& ux, const MatrixY& uy,
                                          Kokkos::View<const std::int64_t*> rows) {
  using Scalar = typename BlockX::scalar_type;
  using Matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight>;
  const std::int64_t k = static_cast<std::int64_t>(ux.extent(1)), k2 = 2 * k;
  const std::int64_t n = static_cast<std::int64_t>(rows.extent(0));
  if (n < 2) throw engine::UsageError("cca: correlations need at least 2 rows");
  std::vector<double> sums(k2, 0.0), products(k2 * k2, 0.0);
  auto host_rows = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), rows);
  // comm.reproducible: each chunk's projections summed exactly over column groups (solvers/cca_groups.hpp).
  const bool exact = comm.exact_sums();
  const std::int64_t group_x = exact ? group_columns(comm.allreduce(x.columns(), comm::Op::sum)) : 0;
  const std::int64_t group_y = exact ? group_columns(comm.allreduce(y.columns(), comm::Op::sum)) : 0;
  for (std::int64_t r0 = 0; r0 < n; r0 += kRowChunk) {
    const std::int64_t c = std::min(kRowChunk, n - r0);
    Kokkos::View<std::int64_t*> chunk("cca::rows", c);
    auto host_chunk = Kokkos::create_mirror_view(chunk);
    for (std::int64_t i = 0; i < c; ++i) host_chunk(i) = host_rows(r0 + i);
    Kokkos::deep_copy(chunk, host_chunk);
    std::vector<double> z(static_cast<std::size_t>(c * k2));
    if (exact) {
      // Row j of a group's terms: its Z_x row j then its Z_y row j, as in z.
      const auto ck = static_cast<std::size_t>(c * k), length = 2 * ck;
      const std::int64_t groups = std::max(local_groups(x, group_x), local_groups(y, group_y));
      std::vector<double> terms(static_cast<std::size_t>(groups) * length, 0.0);
      add_group_products(x, chunk, ux, group_x, terms, length, 0);
      add_group_products(y, chunk, uy, group_y, terms, length, ck);
      const std::vector<double> sum = exact_group_sum(comm, terms, length);
      for (std::int64_t i = 0; i < c; ++i)
        for (std::int64_t j = 0; j < k; ++j) {
          z[i * k2 + j] = sum[i * k + j];
          z[i * k2 + k + j] = sum[ck + i * k + j];
        }
    } else {
      Matrix zx("cca::Z_x", c, k), zy("cca::Z_y", c, k);
      x.multiply(chunk, ux, zx);
      y.multiply(chunk, uy, zy);
      auto hx = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), zx);
      auto hy = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), zy);
      for (std::int64_t i = 0; i < c; ++i)
        for (std::int64_t j = 0; j < k; ++j) {
          z[i * k2 + j] = hx(i, j);
          z[i * k2 + k + j] = hy(i, j);
        }
      comm.allreduce_inplace(z.data(), z.size(), comm::Op::sum);
    }
    for (std::int64_t i = 0; i < c; ++i)
      for (std::int64_t a = 0; a < k2; ++a) {
        const double za = z[i * k2 + a];
        sums[a] += za;
        for (std::int64_t b = 0; b < k2; ++b) products[a * k2 + b] += za * z[i * k2 + b];
      }
  }
  for (std::int64_t a = 0; a < k2; ++a)
    for (std::int64_t b = 0; b < k2; ++b)
      products[a * k2 + b] = (products[a * k2 + b] - sums[a] * sums[b] / n) / static_cast<double>(n - 1);
  return products;
}

// What weights capture on a set of rows (training or validation), rotation invariant (references/cca.md
// §1.6, method 1):
//   correlations: the k canonical correlations of (Z_x, Z_y) = (X U_x, Y U_y) on the rows, descending: a
//     2k x 2k CCA of the projections. TCC = their sum; PCC = TCC / sum of the true top-k correlations.
//   eigenvalues: the top k eigenvalues of the GEP (A, B_alpha) of the method restricted to span(U_x) (+)
//     span(U_y), with the data covariances taken on the rows: canonical correlations for CCA (alpha = 0,
//     equal to `correlations`), the singular values of Q_x^T S_xy Q_y (Q orthonormal bases of the spans)
//     for PLS, their blend for ridge. By interlacing each is at most the exact solver's value, so
//     sum(eigenvalues) / sum(exact values) is a PCC in [0, 1] for every method; use it for PLS and ridge.
struct SubspaceScores {
  std::vector<double> correlations;
  std::vector<double> eigenvalues;
  double total_correlation() const { return std::accumulate(correlations.begin(), correlations.end(), 0.0); }
  double total_eigenvalue() const { return std::accumulate(eigenvalues.begin(), eigenvalues.end(), 0.0); }
};

// Every rank calls it with its blocks and its rows of U_x, U_y (columns() x k each); rows: global sample
// indices. Communication: one allreduce per kRowChunk rows plus one for the Gram matrices.
template <class BlockX, class BlockY, class MatrixX, class MatrixY>
SubspaceScores subspace_scores(const comm::Communicator& comm, const BlockX& x, const BlockY& y,
                               const MatrixX& ux, const MatrixY& uy, Kokkos::View<const std::int64_t*> rows,
                               double alpha_x, double alpha_y) {
  const int k = static_cast<int>(ux.extent(1)), k2 = 2 * k;
  if (static_cast<int>(uy.extent(1)) != k)
    throw engine::InternalError("subspace_scores: U_x, U_y differ in k");
  const std::vector<double> s = projection_covariance(comm, x, y, ux, uy, rows);
  // Gram matrices U_i^T U_i, summed over ranks.
  auto hx = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), ux);
  auto hy = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), uy);
  std::vector<double> gram(static_cast<std::size_t>(2 * k * k), 0.0);
  if (comm.exact_sums()) {
    // comm.reproducible: per column group, summed exactly (solvers/cca_groups.hpp).
    const std::int64_t group_x = group_columns(comm.allreduce(x.columns(), comm::Op::sum));
    const std::int64_t group_y = group_columns(comm.allreduce(y.columns(), comm::Op::sum));
    const auto kk = static_cast<std::size_t>(k * k), length = 2 * kk;
    const std::int64_t groups = std::max(local_groups(x, group_x), local_groups(y, group_y));
    std::vector<double> terms(static_cast<std::size_t>(groups) * length, 0.0);
    add_group_grams(hx, group_x, terms, length, 0);
    add_group_grams(hy, group_y, terms, length, kk);
    gram = exact_group_sum(comm, terms, length);
  } else {
    for (std::size_t r = 0; r < hx.extent(0); ++r)
      for (int i = 0; i < k; ++i)
        for (int j = 0; j < k; ++j) gram[i * k + j] += static_cast<double>(hx(r, i)) * hx(r, j);
    for (std::size_t r = 0; r < hy.extent(0); ++r)
      for (int i = 0; i < k; ++i)
        for (int j = 0; j < k; ++j) gram[k * k + i * k + j] += static_cast<double>(hy(r, i)) * hy(r, j);
    comm.allreduce_inplace(gram.data(), gram.size(), comm::Op::sum);
  }
  SubspaceScores out;
  const detail::SingleBlasThread single(comm.exact_sums());
  // Diverged weights (non-finite projections) score NaN instead of failing inside LAPACK.
  for (double v : s)
    if (!std::isfinite(v)) {
      out.correlations.assign(static_cast<std::size_t>(k), std::nan(""));
      out.eigenvalues = out.correlations;
      return out;
    }
  auto pencil = [&](double ax, double ay) {
    std::vector<double> a(k2 * k2, 0.0), b(k2 * k2, 0.0);
    for (int i = 0; i < k; ++i)
      for (int j = 0; j < k; ++j) {
        a[i * k2 + k + j] = s[i * k2 + k + j];
        a[(k + i) * k2 + j] = s[(k + i) * k2 + j];
        b[i * k2 + j] = ax * gram[i * k + j] + (1 - ax) * s[i * k2 + j];
        b[(k + i) * k2 + k + j] = ay * gram[k * k + i * k + j] + (1 - ay) * s[(k + i) * k2 + k + j];
      }
    return detail::top_pencil_values(k2, a, b, k);
  };
  out.correlations = pencil(0.0, 0.0);
  out.eigenvalues = (alpha_x == 0 && alpha_y == 0) ? out.correlations : pencil(alpha_x, alpha_y);
  return out;
}

// Canonical weights from learned ones: the EY solution is U = W Lambda^{1/2} O (rotated and scaled), so
// its columns are not canonical directions. This solves the 2k x 2k CCA of the projections on `rows` and
// returns rotations R_x, R_y (k x k, row-major, the same on every rank) such that the columns of U_x R_x,
// U_y R_y are the canonical directions inside the learned spans, in order of decreasing correlation, each
// with unit projection variance on the rows (sign: positive cross-covariance). Apply them locally:
// W_i = U_i R_i (this rank's rows; blas::gemm). Directions the span lacks come back as zero columns.
struct CanonicalRotation {
  std::vector<double> correlations;  // k, descending
  std::vector<double> rotation_x;    // k x k row-major
  std::vector<double> rotation_y;
};

template <class BlockX, class BlockY, class MatrixX, class MatrixY>
CanonicalRotation canonical_rotation(const comm::Communicator& comm, const BlockX& x, const BlockY& y,
                                     const MatrixX& ux, const MatrixY& uy,
                                     Kokkos::View<const std::int64_t*> rows) {
  const int k = static_cast<int>(ux.extent(1)), k2 = 2 * k;
  const std::vector<double> s = projection_covariance(comm, x, y, ux, uy, rows);
  std::vector<double> a(k2 * k2, 0.0), b(k2 * k2, 0.0);
  for (int i = 0; i < k2; ++i)
    for (int j = 0; j < k2; ++j) ((i < k) == (j < k) ? b : a)[i * k2 + j] = s[i * k2 + j];
  std::vector<double> vectors;
  CanonicalRotation out;
  const detail::SingleBlasThread single(comm.exact_sums());
  out.correlations = detail::top_pencil_values(k2, a, b, k, &vectors);
  out.rotation_x.assign(static_cast<std::size_t>(k * k), 0.0);
  out.rotation_y.assign(static_cast<std::size_t>(k * k), 0.0);
  for (int c = 0; c < k; ++c) {
    // Each half of a B-orthonormal eigenvector has B_i-norm^2 1/2 when rho > 0: scale by sqrt(2), and
    // normalise each half on its own otherwise.
    double nx = 0, ny = 0, cross = 0;
    for (int i = 0; i < k; ++i)
      for (int j = 0; j < k; ++j) {
        nx += vectors[i * k + c] * s[i * k2 + j] * vectors[j * k + c];
        ny += vectors[(k + i) * k + c] * s[(k + i) * k2 + k + j] * vectors[(k + j) * k + c];
        cross += vectors[i * k + c] * s[i * k2 + k + j] * vectors[(k + j) * k + c];
      }
    const double sx = nx > 0 ? 1 / std::sqrt(nx) : 0.0, sy = ny > 0 ? 1 / std::sqrt(ny) : 0.0;
    const double sign = cross < 0 ? -1.0 : 1.0;
    for (int i = 0; i < k; ++i) {
      out.rotation_x[i * k + c] = sx * vectors[i * k + c];
      out.rotation_y[i * k + c] = sign * sy * vectors[(k + i) * k + c];
    }
  }
  return out;
}

}  // namespace skein::solvers::cca
