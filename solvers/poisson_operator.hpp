// The 7-point pressure-Poisson matrix of a fluid / solid / air cell grid, matrix-free on a block-decomposed
// 3-D field: apply (with halo exchange), diagonal, residual, and the constant null space of all-Neumann
// problems.
#pragma once

#include "comm/cartesian.hpp"
#include "comm/halo.hpp"

#include <Kokkos_Core.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

namespace skein::solvers {

// Stored as uint8 in cell-type fields (and in the `/cell_type` dataset of the poisson job).
enum class CellType : std::uint8_t {
  fluid = 0,  // an unknown
  solid = 1,  // Neumann wall: no flux through its faces
  air = 2,    // Dirichlet p = 0
};

// Full-grid fields in comm::make_field's layout with ghost width 1: owned local (i, j, k) at (i+1, j+1, k+1).
using PoissonField = Kokkos::View<double***, Kokkos::LayoutRight>;
using CellField = Kokkos::View<std::uint8_t***, Kokkos::LayoutRight>;

// A = the unscaled pressure-projection matrix on fluid cells: the diagonal counts the 6 neighbours that are
// not solid (fluid or air), the off-diagonal is -1 per fluid neighbour. Vectors are full-grid fields; the
// operator maps every non-fluid cell to 0 and ignores x there, so it is A on the fluid cells and zero on
// the others. Keep vectors 0 on non-fluid cells (mask()) and every Krylov iterate stays there: then dot
// products over the whole field are dot products over the unknowns, and A is SPD (or SPSD, see singular()).
class PoissonOperator {
 public:
  // `cells`: a ghost-width-1 field (comm::make_field<std::uint8_t>(decomposition, 1, ...)) whose owned cells
  // hold this rank's cell types; its ghosts are filled here: from neighbours, and with `boundary` (the type
  // of the world outside the grid) on the domain boundary. Collective.
  PoissonOperator(const comm::CartDecomposition& decomposition, CellField cells, CellType boundary);
  ~PoissonOperator();
  PoissonOperator(PoissonOperator&&) noexcept;
  PoissonOperator& operator=(PoissonOperator&&) noexcept;

  const comm::CartDecomposition& decomposition() const { return decomposition_; }
  CellField cells() const { return cells_; }
  CellType boundary() const { return boundary_; }
  // Global number of fluid cells (unknowns).
  std::int64_t fluid_cells() const { return fluid_cells_; }
  // No fluid cell touches air: A is singular with the constant on the fluid cells in its null space
  // (exactly one constant when the fluid is connected; see remove_mean()).
  bool singular() const { return singular_; }

  // A zero vector in this operator's layout.
  PoissonField make_vector(const std::string& label) const;

  // y = A x. Exchanges x's ghosts (x's values are not changed; x and y must differ). Collective.
  void apply(const PoissonField& x, const PoissonField& y) const;
  // r = b - A x (0 on non-fluid cells). Collective.
  void residual(const PoissonField& b, const PoissonField& x, const PoissonField& r) const;
  // d = diag(A) on fluid cells, 0 elsewhere (Jacobi; a fluid cell walled in by solid has 0).
  void diagonal(const PoissonField& d) const;

  // Sum of v over fluid cells (global). For an all-Neumann problem, b is consistent iff this is 0.
  double fluid_sum(const PoissonField& v) const;
  // |sum of b over fluid| / (sqrt(fluid cells) ||b||): the cosine between b and the constant null vector,
  // about 1e-16 for a consistent right-hand side, O(1) for an inconsistent one, 0 for b = 0.
  double null_space_fraction(const PoissonField& b) const;
  // Removes the mean over fluid cells (projection onto range(A) when singular()) and zeroes non-fluid
  // cells. The Krylov solver applies it to b and to the preconditioned residual of an all-Neumann problem.
  // One constant for the whole fluid: a fluid pocket sealed off by solid from the rest would need its own.
  void remove_mean(const PoissonField& v) const;
  // Zeroes v on non-fluid cells.
  void mask(const PoissonField& v) const;

  // Global dot product over owned cells (non-fluid cells hold 0 by the convention above). Collective.
  double dot(const PoissonField& a, const PoissonField& b) const;

  // The face halo (width 1) of this layout, for kernels that need x's neighbours.
  comm::HaloExchange<double>& halo() const { return *halo_; }

 private:
  comm::CartDecomposition decomposition_;
  CellField cells_;
  CellType boundary_;
  std::unique_ptr<comm::HaloExchange<double>> halo_;
  std::int64_t fluid_cells_ = 0;
  bool singular_ = false;
  bool overlap_ = false;  // more than one rank: overlap the interior with the halo messages
};

}  // namespace skein::solvers
