// How many threads OpenBLAS uses in this process (the dense products of solvers/nn): a job sets it so that
// ranks sharing a node do not oversubscribe its cores.
#pragma once

namespace skein::solvers::blas {

void set_threads(int threads);
int threads();

}  // namespace skein::solvers::blas
