#include "solvers/blas_threads.hpp"

#include <cblas.h>

namespace skein::solvers::blas {

void set_threads(int threads) {
  openblas_set_num_threads(threads < 1 ? 1 : threads);
}

int threads() {
  return openblas_get_num_threads();
}

}  // namespace skein::solvers::blas
