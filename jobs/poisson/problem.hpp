// The poisson job's problems on this rank's block: cell types, right-hand side, and the manufactured
// solution's error, computed in kernels from global cell indices so every rank count builds the same problem.
#pragma once

#include "comm/cartesian.hpp"
#include "jobs/poisson/settings.hpp"
#include "solvers/poisson_operator.hpp"

#include <cstdint>
#include <string>

namespace skein::poisson {

// The job's random streams (engine::StreamId); the numbers are part of its results.
enum class PoissonStream : std::uint32_t { rhs = 1 };

// Manufactured problem, exactly bench/poisson's: all cells fluid, air (p = 0) outside the grid;
// h_a = 1 / (n_a + 1), x_i = (i + 1) h_x (likewise y, z); exact solution u = g(x) g(y) g(z) with
// g(t) = e^t sin(pi t), zero on the walls; g''(t) = e^t ((1 - pi^2) sin(pi t) + 2 pi cos(pi t));
//   b_ijk = -[h_x^2 g''(x_i) g(y_j) g(z_k) + h_y^2 g(x_i) g''(y_j) g(z_k) + h_z^2 g(x_i) g(y_j) g''(z_k)].
// The matrix is the unscaled 7-point one (6 / -1) on square cells, so this is h^2 (-laplace u) for
// u(X, Y, Z) = g(X/Lx) g(Y/Ly) g(Z/Lz) on the box [0, (nx+1)h] x ... with one physical spacing h, since
// h/L_a = h_a. On a cube b = -h^2 (g'' g g + g g'' g + g g g''). Unlike sin sin sin (the lowest discrete
// eigenvector of A, on which plain CG converges in one iteration) this b excites every mode, so CG and
// Jacobi-PCG iteration counts mean something on it. The exact solution at cell (i, j, k) is
// g(x_i) g(y_j) g(z_k).
void fill_manufactured(const comm::CartDecomposition& d, const solvers::CellField& cells,
                       const solvers::PoissonField& b);
// max |x - u| over fluid cells (global, collective).
double manufactured_max_error(const comm::CartDecomposition& d, const solvers::PoissonField& x);

// Smoke problem: solid (Neumann) walls outside the grid; an air opening in the middle half of the top face
// (the cells k = nz - 1 with i, j in the middle half of their axes); solid spheres; b = a standard normal
// draw per fluid cell keyed by (seed, PoissonStream::rhs, global index (i ny + j) nz + k), 0 elsewhere.
void fill_smoke(const comm::CartDecomposition& d, const Settings& settings, const solvers::CellField& cells,
                const solvers::PoissonField& b);

// File problem: this rank's blocks of /cell_type and /rhs of settings.file. Collective: checks the datasets'
// shapes against the grid and the cell-type values, every error (DataError naming the file) agreed.
// b is zeroed on non-fluid cells. Outside the grid: solid walls.
void read_file_problem(const comm::CartDecomposition& d, const Settings& settings,
                       const solvers::CellField& cells, const solvers::PoissonField& b);

// The type of the world outside the grid for a problem.
solvers::CellType outside_cells(ProblemKind problem);

// Global fluid cells of a cell field (collective).
std::int64_t count_fluid(const comm::CartDecomposition& d, const solvers::CellField& cells);

}  // namespace skein::poisson
