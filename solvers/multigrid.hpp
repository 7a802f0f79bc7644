// Geometric multigrid V-cycle for the pressure-Poisson operator, symmetric positive definite so it can
// precondition CG (McAdams, Sifakis, Teran 2010): cell-type coarsening, rediscretised coarse operators,
// trilinear prolongation and its transpose, damped-Jacobi or red-black Gauss-Seidel smoothing.
//
// Choices, and why:
// - Coarse cell = air if any child is air, else fluid if any is fluid, else solid (McAdams et al.): air
//   first keeps every Dirichlet region on every level, fluid before solid keeps thin channels open.
// - Coarse operators are rediscretised from the coarse cell types, not Galerkin (R A P): the same
//   matrix-free 7-point kernels run on every level with no stored coefficients, where R A P with trilinear
//   P has 27-point stencils (about 4x the work per sweep) to store per cell.
// - Prolongation is trilinear, renormalised where a coarse neighbour is solid (see ProlongScaleKernel in
//   poisson_kernels.hpp): plain trilinear P pulls corrections to 0 at Neumann walls and the smoke problem's
//   iterations then grew 17 -> 22 -> 29 from 32^3 to 128^3; renormalised, 10 -> 10 -> 10.
// - Restriction is P^T / 2, the exact transpose, so M is symmetric.
// - Measured (1 rank, tol 1e-8, random right-hand side): box 8 / 8 / 9 and smoke 10 / 10 / 10 MG-PCG
//   iterations at 32^3 / 64^3 / 128^3, where CG takes 122 / 233 / 448 and 293 / 578 / 1127.
#pragma once

#include "solvers/poisson_operator.hpp"

#include <array>
#include <memory>
#include <string>
#include <vector>

namespace skein::solvers {

enum class MultigridSmoother {
  rbgs,           // red-black Gauss-Seidel: pre red-then-black, post black-then-red (the reverse)
  damped_jacobi,  // weighted Jacobi, symmetric as it is
};
// "rbgs" or "damped-jacobi"; anything else throws engine::UsageError naming `key`.
MultigridSmoother parse_multigrid_smoother(const std::string& name, const std::string& key = "smoother");
std::string to_string(MultigridSmoother smoother);

struct MultigridOptions {
  // Number of levels including the finest; 0 coarsens while every rank keeps at least 2 cells per axis.
  int levels = 0;
  MultigridSmoother smoother = MultigridSmoother::rbgs;
  // Sweeps before and after the coarse correction. They must be equal (and >= 1): the post-smoother is the
  // adjoint of the pre-smoother only then, and CG needs a symmetric preconditioner.
  int pre_smooth = 2;
  int post_smooth = 2;
  // 6/7 minimises the smoothing factor of weighted Jacobi on the 3-D 7-point Laplacian (Trottenberg,
  // Oosterlee, Schueller, "Multigrid", 2001, section 2.1 generalised to 3-D: 2d / (2d + 1)); 2/3 is the 1-D
  // value.
  double jacobi_weight = 6.0 / 7.0;
  // Over-relaxation of the red-black sweeps. Any weight in (0, 2) keeps the palindromic sweeps symmetric
  // positive definite (Yavneh, SIAM J. Sci. Comput. 17 (1996), finds red-black SOR smoothing optimal above
  // 1). Measured to 1e-8 on the manufactured problem (u = g(x)g(y)g(z), g = e^t sin(pi t)) at 32/64/128/256^3:
  // 1.15 takes -/10/11/12 iterations, 1.35 takes 8/9/10/11 (smoke: 10/9/10/11) for the same time per
  // iteration; 1.45 is no better.
  double rbgs_weight = 1.35;
  // Symmetric red-black Gauss-Seidel sweeps on the coarsest level; 0 picks 2 x its largest global extent.
  // A fixed count keeps the coarse solve a fixed linear (and symmetric) operator, unlike inner CG.
  int coarse_sweeps = 0;
};

// z = M r, one V-cycle from z = 0. M is symmetric positive definite on the fluid cells: restriction is the
// transpose of prolongation (scaled), the smoother sequence is a palindrome around the coarse correction,
// and the coarse solve is a fixed palindromic sweep sequence. All level fields are allocated in the
// constructor; apply() allocates nothing.
class MultigridPreconditioner {
 public:
  // Builds the level hierarchy from `fine` (which must outlive this object). Collective.
  explicit MultigridPreconditioner(const PoissonOperator& fine, const MultigridOptions& options = {});
  ~MultigridPreconditioner();
  MultigridPreconditioner(MultigridPreconditioner&&) noexcept;
  MultigridPreconditioner& operator=(MultigridPreconditioner&&) noexcept;

  // z = M r. r's owned cells are read and its ghosts refreshed (a halo exchange); z is overwritten, ghosts
  // included. r and z must differ. Collective.
  void apply(const PoissonField& r, const PoissonField& z) const;

  int levels() const { return static_cast<int>(levels_.size()); }
  // Global grid of level l (0 = finest).
  std::array<std::int64_t, 3> level_extent(int level) const;
  // Global fluid cells of level l.
  std::int64_t level_fluid_cells(int level) const;
  const MultigridOptions& options() const { return options_; }
  // Bytes of this rank's level fields (vectors, cell types, diagonals, interpolation weights; not the halo
  // buffers), for the per-rank memory report.
  std::size_t memory_bytes() const;
  int coarse_sweeps() const { return coarse_sweeps_; }

 private:
  struct Level;
  void smooth_pre(const Level& level, const PoissonField& b, const PoissonField& x) const;
  void smooth_post(const Level& level, const PoissonField& b, const PoissonField& x) const;
  void coarse_solve(const Level& level, const PoissonField& b, const PoissonField& x) const;
  void rb_half_sweep(const Level& level, const PoissonField& b, const PoissonField& x, int colour) const;
  void rb_first_sweep(const Level& level, const PoissonField& b, const PoissonField& x) const;
  void jacobi_sweeps(const Level& level, const PoissonField& b, const PoissonField& x, int count) const;

  MultigridOptions options_;
  int coarse_sweeps_ = 0;
  std::vector<std::unique_ptr<Level>> levels_;
};

}  // namespace skein::solvers
