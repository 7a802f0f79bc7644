// Small dense and tridiagonal solves through LAPACK on host arrays: the projected matrices of Lanczos,
// stochastic Lanczos quadrature, and dense references in tests.
#pragma once

#include <vector>

namespace skein::solvers {

// Eigenvalues in ascending order; when vectors were asked for, `vectors` is n x n column-major with
// column i the unit eigenvector of values[i].
struct EigenDecomposition {
  int n = 0;
  std::vector<double> values;
  std::vector<double> vectors;
  double vector(int row, int column) const {
    return vectors[static_cast<std::size_t>(column) * n + static_cast<std::size_t>(row)];
  }
};

// Symmetric tridiagonal matrix with `diagonal` (n) and `off_diagonal` (n - 1), by LAPACK dstev.
EigenDecomposition tridiagonal_eigen(const std::vector<double>& diagonal,
                                     const std::vector<double>& off_diagonal, bool want_vectors);

// Dense symmetric n x n matrix (column-major; only the lower triangle is read), by LAPACK dsyev.
EigenDecomposition symmetric_eigen(int n, std::vector<double> matrix, bool want_vectors);

// Solves A x = b for a dense SPD n x n matrix (column-major) by Cholesky, LAPACK dposv. Throws
// engine::InternalError when A is not positive definite.
std::vector<double> solve_spd(int n, std::vector<double> matrix, std::vector<double> rhs);

// Generalized symmetric-definite eigenproblem A x = lambda B x (both n x n column-major; only the lower
// triangles are read), by LAPACK dsygvd: eigenvalues ascending; vectors (when asked for) B-orthonormal,
// column-major like symmetric_eigen's. Throws engine::InternalError when B is not positive definite (the
// message says so) or LAPACK fails otherwise.
EigenDecomposition generalized_symmetric_eigen(int n, std::vector<double> a, std::vector<double> b,
                                               bool want_vectors);

}  // namespace skein::solvers
