#include "solvers/dense_blas.hpp"

#include <cblas.h>

namespace skein::solvers::blas::detail {
namespace {
CBLAS_TRANSPOSE cblas_op(Op op) {
  return op == Op::transpose ? CblasTrans : CblasNoTrans;
}
}  // namespace

void host_gemm(Op op_a, Op op_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
               int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, cblas_op(op_a), cblas_op(op_b), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void host_gemm(Op op_a, Op op_b, int m, int n, int k, double alpha, const double* a, int lda, const double* b,
               int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, cblas_op(op_a), cblas_op(op_b), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void host_gemv(Op op_a, int rows, int cols, float alpha, const float* a, int lda, const float* x, float beta,
               float* y) {
  cblas_sgemv(CblasRowMajor, cblas_op(op_a), rows, cols, alpha, a, lda, x, 1, beta, y, 1);
}

void host_gemv(Op op_a, int rows, int cols, double alpha, const double* a, int lda, const double* x,
               double beta, double* y) {
  cblas_dgemv(CblasRowMajor, cblas_op(op_a), rows, cols, alpha, a, lda, x, 1, beta, y, 1);
}

}  // namespace skein::solvers::blas::detail
