// DCDM's training right-hand sides (Kaneda et al. 2023, reference notes section 1.5): Ritz vectors of the
// Poisson matrix from Lanczos with full reorthogonalisation, and unit-length random combinations of them
// weighted toward the low end of the spectrum.
#pragma once

#include "solvers/poisson_operator.hpp"

#include <cstdint>
#include <vector>

namespace skein::solvers {

// Ritz pairs of A from a Lanczos run.
struct RitzBasis {
  std::vector<double> values;         // ascending, Ritz values below the null-space threshold dropped
  std::vector<PoissonField> vectors;  // unit vectors in op's layout, same order (0 on non-fluid cells)
};

// Ritz values below this times the largest are A's constant null space (all-Neumann problems) and are
// dropped. The paper's code drops those below 1e-8 absolute with the same unscaled matrix (diagonal <= 6).
constexpr double kRitzNullThreshold = 1e-8;

// `steps` Lanczos steps with full reorthogonalisation (CGS2) from A * (keyed normal vector), which lies in
// range(A) so the Krylov space avoids the null space, then the Ritz pairs of the tridiagonal T (LAPACK
// dstev). steps is clamped to the number of fluid cells. If the Krylov space becomes invariant before
// `steps` (degenerate eigenvalues: a single start vector finds each distinct eigenvalue once), Lanczos
// goes on from A * (next keyed normal vector) orthogonalised against the basis, coupled by 0, until the
// steps are done or the whole range of A is spanned: steps = fluid cells gives every nonzero eigenpair.
// Collective on op's decomposition; the same result at any rank count (up to the rounding of the sums).
//
// Memory: the Lanczos basis is `steps` fields of (local extent + 2)^3 doubles per rank, and the Ritz vectors
// as many again while they are formed from it: 2 x steps x field at the peak. A 32^3 grid (35,937 padded
// cells, 287 KB a field) with 2,000 steps needs 1.2 GB; 64^3 with 10,000 steps (the paper's) about 46 GB
// over all ranks, and the reorthogonalisation costs steps^2 x cells multiply-adds (4e13 there).
RitzBasis ritz_basis(const PoissonOperator& op, int steps, std::uint64_t seed);

// Training right-hand side number `index`: b = sum_j c_j v_j normalised to unit length, c_j standard
// normal keyed by (seed, index, j) (engine::standard_normal, stream "DCTV", id index * 2^32 + j), times
// low_weight for the lowest `low_count` Ritz vectors (the paper: 5,500 of 10,000, weight 9, so the low
// part gets low_weight^2 times the energy per vector). `out` (op's layout) is overwritten, ghosts
// included. Collective (one reduction for the norm); the same at any rank count.
void training_vector(const PoissonOperator& op, const RitzBasis& basis, std::int64_t index, int low_count,
                     double low_weight, std::uint64_t seed, const PoissonField& out);

}  // namespace skein::solvers
