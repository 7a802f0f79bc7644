#include "solvers/lapack.hpp"

#include "engine/error.hpp"

#include <algorithm>
#include <string>

// The Fortran LAPACK symbols, declared here because Debian's LAPACK::LAPACK target does not bring
// LAPACKE; every argument is passed by pointer and matrices are column-major.
extern "C" {
void dstev_(const char* jobz, const int* n, double* d, double* e, double* z, const int* ldz, double* work,
            int* info);
void dsyev_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
            double* work, const int* lwork, int* info);
void dposv_(const char* uplo, const int* n, const int* nrhs, double* a, const int* lda, double* b,
            const int* ldb, int* info);
void dsygvd_(const int* itype, const char* jobz, const char* uplo, const int* n, double* a, const int* lda,
             double* b, const int* ldb, double* w, double* work, const int* lwork, int* iwork,
             const int* liwork, int* info);
}

namespace skein::solvers {
namespace {
void check(const char* routine, int info) {
  if (info != 0)
    throw engine::InternalError(std::string("LAPACK ") + routine + " failed with info " +
                                std::to_string(info));
}
}  // namespace

EigenDecomposition tridiagonal_eigen(const std::vector<double>& diagonal,
                                     const std::vector<double>& off_diagonal, bool want_vectors) {
  EigenDecomposition out;
  out.n = static_cast<int>(diagonal.size());
  if (out.n == 0) return out;
  if (off_diagonal.size() + 1 < diagonal.size())
    throw engine::InternalError("tridiagonal_eigen: off-diagonal too short");
  out.values = diagonal;
  std::vector<double> e(off_diagonal.begin(), off_diagonal.begin() + (out.n - 1));
  e.push_back(0.0);  // dstev uses e as workspace of length n - 1; keep a valid pointer when n == 1
  const char jobz = want_vectors ? 'V' : 'N';
  const int ldz = std::max(1, out.n);
  if (want_vectors) out.vectors.assign(static_cast<std::size_t>(out.n) * out.n, 0.0);
  std::vector<double> work(static_cast<std::size_t>(std::max(1, 2 * out.n - 2)));
  double dummy = 0.0;
  int info = 0;
  dstev_(&jobz, &out.n, out.values.data(), e.data(), want_vectors ? out.vectors.data() : &dummy, &ldz,
         work.data(), &info);
  check("dstev", info);
  return out;
}

EigenDecomposition symmetric_eigen(int n, std::vector<double> matrix, bool want_vectors) {
  EigenDecomposition out;
  out.n = n;
  if (n == 0) return out;
  if (matrix.size() != static_cast<std::size_t>(n) * n)
    throw engine::InternalError("symmetric_eigen: matrix is not n x n");
  out.values.assign(static_cast<std::size_t>(n), 0.0);
  const char jobz = want_vectors ? 'V' : 'N', uplo = 'L';
  int info = 0, lwork = -1;
  double query = 0.0;
  dsyev_(&jobz, &uplo, &n, matrix.data(), &n, out.values.data(), &query, &lwork, &info);
  check("dsyev (workspace query)", info);
  lwork = std::max(1, static_cast<int>(query));
  std::vector<double> work(static_cast<std::size_t>(lwork));
  dsyev_(&jobz, &uplo, &n, matrix.data(), &n, out.values.data(), work.data(), &lwork, &info);
  check("dsyev", info);
  if (want_vectors) out.vectors = std::move(matrix);
  return out;
}

std::vector<double> solve_spd(int n, std::vector<double> matrix, std::vector<double> rhs) {
  if (n == 0) return rhs;
  const char uplo = 'L';
  const int nrhs = 1;
  int info = 0;
  dposv_(&uplo, &n, &nrhs, matrix.data(), &n, rhs.data(), &n, &info);
  if (info > 0)
    throw engine::InternalError("solve_spd: the matrix is not positive definite (dposv info " +
                                std::to_string(info) + ")");
  check("dposv", info);
  return rhs;
}

EigenDecomposition generalized_symmetric_eigen(int n, std::vector<double> a, std::vector<double> b,
                                               bool want_vectors) {
  EigenDecomposition out;
  out.n = n;
  if (n == 0) return out;
  const std::size_t size = static_cast<std::size_t>(n) * n;
  if (a.size() != size || b.size() != size)
    throw engine::InternalError("generalized_symmetric_eigen: a matrix is not n x n");
  out.values.assign(static_cast<std::size_t>(n), 0.0);
  const int itype = 1;
  const char jobz = want_vectors ? 'V' : 'N', uplo = 'L';
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0.0;
  dsygvd_(&itype, &jobz, &uplo, &n, a.data(), &n, b.data(), &n, out.values.data(), &work_query, &lwork,
          &iwork_query, &liwork, &info);
  check("dsygvd (workspace query)", info);
  lwork = std::max(1, static_cast<int>(work_query));
  liwork = std::max(1, iwork_query);
  std::vector<double> work(static_cast<std::size_t>(lwork));
  std::vector<int> iwork(static_cast<std::size_t>(liwork));
  dsygvd_(&itype, &jobz, &uplo, &n, a.data(), &n, b.data(), &n, out.values.data(), work.data(), &lwork,
          iwork.data(), &liwork, &info);
  if (info > n)
    throw engine::InternalError("generalized_symmetric_eigen: B is not positive definite (leading minor " +
                                std::to_string(info - n) + " of " + std::to_string(n) + ")");
  check("dsygvd", info);
  if (want_vectors) out.vectors = std::move(a);
  return out;
}

}  // namespace skein::solvers
