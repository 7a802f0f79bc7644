// Kokkos kernels of the 7-point pressure-Poisson operator and its geometric multigrid (functors, so they
// compile for a GPU): shared by poisson_operator.cpp and multigrid.cpp, not a public interface.
#pragma once

#include "solvers/poisson_operator.hpp"

#include <Kokkos_Core.hpp>

#include <cstdint>

namespace skein::solvers::detail {

using Policy3 = Kokkos::MDRangePolicy<Kokkos::Rank<3>, Kokkos::IndexType<int>>;
using ConstField = Kokkos::View<const double***, Kokkos::LayoutRight>;
using ConstCells = Kokkos::View<const std::uint8_t***, Kokkos::LayoutRight>;
using ScaleField = Kokkos::View<float***, Kokkos::LayoutRight>;
using ConstScale = Kokkos::View<const float***, Kokkos::LayoutRight>;

constexpr std::uint8_t k_fluid = static_cast<std::uint8_t>(CellType::fluid);
constexpr std::uint8_t k_solid = static_cast<std::uint8_t>(CellType::solid);
constexpr std::uint8_t k_air = static_cast<std::uint8_t>(CellType::air);

// Owned cells of a width-w field, as field indices.
inline Policy3 owned_policy(const std::array<std::int64_t, 3>& extent, int w) {
  return Policy3({w, w, w}, {static_cast<int>(extent[0]) + w, static_cast<int>(extent[1]) + w,
                             static_cast<int>(extent[2]) + w});
}

// One neighbour's share of a row: the diagonal counts every neighbour that is not solid (a solid face
// carries no flux), the off-diagonal only fluid neighbours (air is p = 0, folded into the diagonal).
KOKKOS_FORCEINLINE_FUNCTION void add_neighbour(std::uint8_t t, double x, double& diag, double& sum) {
  diag += t != k_solid ? 1.0 : 0.0;
  sum += t == k_fluid ? x : 0.0;
}

// Sum of fluid neighbours' x and the diagonal of cell (i, j, k); t and x share ghost width 1.
KOKKOS_FORCEINLINE_FUNCTION void row(const ConstCells& t, const ConstField& x, int i, int j, int k,
                                     double& diag, double& sum) {
  diag = 0.0;
  sum = 0.0;
  add_neighbour(t(i - 1, j, k), x(i - 1, j, k), diag, sum);
  add_neighbour(t(i + 1, j, k), x(i + 1, j, k), diag, sum);
  add_neighbour(t(i, j - 1, k), x(i, j - 1, k), diag, sum);
  add_neighbour(t(i, j + 1, k), x(i, j + 1, k), diag, sum);
  add_neighbour(t(i, j, k - 1), x(i, j, k - 1), diag, sum);
  add_neighbour(t(i, j, k + 1), x(i, j, k + 1), diag, sum);
}

KOKKOS_FORCEINLINE_FUNCTION double diagonal_of(const ConstCells& t, int i, int j, int k) {
  return (t(i - 1, j, k) != k_solid ? 1.0 : 0.0) + (t(i + 1, j, k) != k_solid ? 1.0 : 0.0) +
         (t(i, j - 1, k) != k_solid ? 1.0 : 0.0) + (t(i, j + 1, k) != k_solid ? 1.0 : 0.0) +
         (t(i, j, k - 1) != k_solid ? 1.0 : 0.0) + (t(i, j, k + 1) != k_solid ? 1.0 : 0.0);
}

// --- Drivers: one loop body, two ways to run it --------------------------------------------------------
// A body is `operator()(int i, int j, int k, std::int64_t c)` on field indices (i, j, k) with c the linear
// index in the width-1 layout it was built for, reading and writing through raw View pointers (device
// pointers on a GPU) with the strides s0, s1 (and 1). Host backends run a row of cells per work item, so the
// row offsets are computed once and the k loop is plain pointer arithmetic: half the instructions of Kokkos
// 3.4's 3-D MDRange tiles for the same body (measured with cachegrind). Devices run one cell per thread.
#ifdef SKEIN_POISSON_CELL_KERNELS  // run the device-style driver on the host too (to test it)
constexpr bool k_row_kernels = false;
#else
constexpr bool k_row_kernels =
    Kokkos::SpaceAccessibility<Kokkos::DefaultExecutionSpace, Kokkos::HostSpace>::accessible;
#endif
using Policy2 = Kokkos::MDRangePolicy<Kokkos::Rank<2>, Kokkos::IndexType<int>>;

// Step 2 visits one red-black colour: k starts at k0 + ((parity + i + j) & 1).
template <int Step, class Body>
struct RowDriver {
  Body body;
  std::int64_t s0, s1;
  int k0, k1, parity;
  KOKKOS_INLINE_FUNCTION void operator()(int i, int j) const {
    const std::int64_t row = i * s0 + j * s1;
    const int first = Step == 2 ? k0 + ((parity + i + j) & 1) : k0;
    for (int k = first; k < k1; k += Step) body(i, j, k, row + k);
  }
};

template <int Step, class Body>
struct CellDriver {
  Body body;
  std::int64_t s0, s1;
  int k0, k1, parity;
  KOKKOS_INLINE_FUNCTION void operator()(int i, int j, int kk) const {
    const int k = Step == 2 ? k0 + 2 * kk + ((parity + i + j) & 1) : k0 + kk;
    if (k < k1) body(i, j, k, i * s0 + j * s1 + k);
  }
};

// Runs body over field indices [i0, i1) x [j0, j1) x [k0, k1) (Step 2: the cells of one colour, `parity`
// as for RowDriver) of a layout with strides (s0, s1, 1).
template <int Step = 1, class Body>
void for_cells(const char* name, const Body& body, std::int64_t s0, std::int64_t s1, int i0, int i1, int j0,
               int j1, int k0, int k1, int parity = 0) {
  if (i0 >= i1 || j0 >= j1 || k0 >= k1) return;
  if constexpr (k_row_kernels) {
    Kokkos::parallel_for(name, Policy2({i0, j0}, {i1, j1}),
                         RowDriver<Step, Body>{body, s0, s1, k0, k1, parity});
  } else {
    Kokkos::parallel_for(name,
                         Policy3({i0, j0, 0}, {i1, j1, (k1 - k0 + Step - 1) / Step + (Step == 2 ? 1 : 0)}),
                         CellDriver<Step, Body>{body, s0, s1, k0, k1, parity});
  }
}

// Strides of a LayoutRight rank-3 View.
template <class View>
inline std::int64_t stride0(const View& v) {
  return static_cast<std::int64_t>(v.extent(1) * v.extent(2));
}
template <class View>
inline std::int64_t stride1(const View& v) {
  return static_cast<std::int64_t>(v.extent(2));
}

// y = A x (0 on non-fluid cells), masked by the cell types: x may hold anything on non-fluid cells.
struct ApplyBody {
  const double* x;
  double* y;
  const std::uint8_t* t;
  std::int64_t s0, s1;
  KOKKOS_FORCEINLINE_FUNCTION void neighbour(std::int64_t n, double& diag, double& sum) const {
    const std::uint8_t tn = t[n];
    diag += tn != k_solid ? 1.0 : 0.0;
    sum += tn == k_fluid ? x[n] : 0.0;
  }
  KOKKOS_FORCEINLINE_FUNCTION void operator()(int, int, int, std::int64_t c) const {
    double diag = 0.0, sum = 0.0;
    neighbour(c - s0, diag, sum);
    neighbour(c + s0, diag, sum);
    neighbour(c - s1, diag, sum);
    neighbour(c + s1, diag, sum);
    neighbour(c - 1, diag, sum);
    neighbour(c + 1, diag, sum);
    y[c] = t[c] == k_fluid ? diag * x[c] - sum : 0.0;
  }
};

// r = b - A x (0 on non-fluid cells); x, b, t width 1, r width 1 + shift.
struct ResidualKernel {
  ConstField b, x;
  PoissonField r;
  ConstCells t;
  int shift;
  KOKKOS_INLINE_FUNCTION void operator()(int i, int j, int k) const {
    double diag, sum;
    row(t, x, i, j, k, diag, sum);
    r(i + shift, j + shift, k + shift) = t(i, j, k) == k_fluid ? b(i, j, k) - diag * x(i, j, k) + sum : 0.0;
  }
};

// Diagonal of A (0 on non-fluid cells).
struct DiagonalKernel {
  PoissonField d;
  ConstCells t;
  KOKKOS_INLINE_FUNCTION void operator()(int i, int j, int k) const {
    d(i, j, k) = t(i, j, k) == k_fluid ? diagonal_of(t, i, j, k) : 0.0;
  }
};

// --- Multigrid kernels ------------------------------------------------------------------------------------
// They read the diagonal from a uint8 field `d` (0 on non-fluid cells and on fluid cells walled in by solid,
// whose row is zero) and sum all 6 neighbours unmasked: every multigrid vector is kept 0 on cells with
// d = 0 and on the domain-boundary ghosts, which saves the per-neighbour type tests (a third of a sweep).
using ConstDiag = Kokkos::View<const std::uint8_t***, Kokkos::LayoutRight>;

// d = diag(A) as a count on fluid cells, 0 elsewhere.
struct DiagonalCodeKernel {
  CellField d;
  ConstCells t;
  KOKKOS_INLINE_FUNCTION void operator()(int i, int j, int k) const {
    d(i, j, k) = t(i, j, k) == k_fluid ? static_cast<std::uint8_t>(diagonal_of(t, i, j, k)) : 0;
  }
};

// 1 / d for the diagonal counts 0..6 by table lookup (0 for 0): the smoothers need it for every cell (the
// first sweep seven times per black cell), and a division costs several multiplications. A functor member,
// so it lives wherever the functor does.
struct InverseDiagonal {
  double table[8] = {0.0, 1.0, 1.0 / 2.0, 1.0 / 3.0, 1.0 / 4.0, 1.0 / 5.0, 1.0 / 6.0, 0.0};
  KOKKOS_FORCEINLINE_FUNCTION double operator()(int d) const { return table[d]; }
};

// r = (b - A x) * scale: the residual ready for restriction (see ProlongScaleKernel); r has ghost width 2
// (strides r0, r1), the others width 1.
struct ScaledResidualBody {
  const double *b, *x;
  double* r;
  const std::uint8_t* d;
  const float* scale;
  std::int64_t s0, s1, r0, r1;
  KOKKOS_FORCEINLINE_FUNCTION void operator()(int i, int j, int k, std::int64_t c) const {
    const double s = scale[c];
    const double sum = (x[c - s0] + x[c + s0]) + (x[c - s1] + x[c + s1]) + (x[c - 1] + x[c + 1]);
    r[(i + 1) * r0 + (j + 1) * r1 + k + 1] = s != 0.0 ? s * (b[c] - d[c] * x[c] + sum) : 0.0;
  }
};

// The first red-black sweep from x = 0, both half-sweeps in one pass over the owned cells: red cells get
// weight * b / diag, and black cells, whose neighbours are all red, the update computed from those red
// values on the fly. b's and d's face ghosts must be current. `parity`: of the owned block's global offset.
struct RbgsFirstSweepBody {
  const double* b;
  double* x;
  const std::uint8_t* d;
  std::int64_t s0, s1;
  int parity;
  double weight;
  InverseDiagonal inverse;
  KOKKOS_FORCEINLINE_FUNCTION double red(std::int64_t n) const { return b[n] * inverse(d[n]); }
  KOKKOS_FORCEINLINE_FUNCTION void operator()(int i, int j, int k, std::int64_t c) const {
    const int diag = d[c];
    double value = 0.0;
    if (diag != 0) {
      if (((parity + i + j + k + 1) & 1) == 0) {
        value = weight * b[c] * inverse(diag);
      } else {
        const double sum =
            (red(c - s0) + red(c + s0)) + (red(c - s1) + red(c + s1)) + (red(c - 1) + red(c + 1));
        value = weight * (b[c] + weight * sum) * inverse(diag);
      }
    }
    x[c] = value;
  }
};

// One red-black Gauss-Seidel half-sweep, over-relaxed by `weight`, run with for_cells<2> over one colour.
// Colours follow global indices: the same at any rank count.
struct RbgsBody {
  const double* b;
  double* x;
  const std::uint8_t* d;
  std::int64_t s0, s1;
  double weight;
  InverseDiagonal inverse;
  KOKKOS_FORCEINLINE_FUNCTION void operator()(int, int, int, std::int64_t c) const {
    const int diag = d[c];
    if (diag == 0) return;
    const double sum = (x[c - s0] + x[c + s0]) + (x[c - s1] + x[c + s1]) + (x[c - 1] + x[c + 1]);
    const double xc = x[c];
    x[c] = xc + weight * ((b[c] + sum) * inverse(diag) - xc);
  }
};

// The ghost layer of a field set to 0 (3 launches, one per axis; `axis` picks the pair of planes).
struct ZeroGhostsKernel {
  PoissonField x;
  int axis, n0, n1, n2;  // field extents
  KOKKOS_INLINE_FUNCTION void operator()(int a, int p, int q) const {
    if (axis == 0)
      x(a == 0 ? 0 : n0 - 1, p, q) = 0.0;
    else if (axis == 1)
      x(p, a == 0 ? 0 : n1 - 1, q) = 0.0;
    else
      x(p, q, a == 0 ? 0 : n2 - 1) = 0.0;
  }
};

// x = weight * b / diag: the first damped-Jacobi sweep from x = 0, over the owned cells.
struct JacobiFromZeroBody {
  const double* b;
  double* x;
  const std::uint8_t* d;
  double weight;
  InverseDiagonal inverse;
  KOKKOS_FORCEINLINE_FUNCTION void operator()(int, int, int, std::int64_t c) const {
    x[c] = weight * b[c] * inverse(d[c]);
  }
};

// One damped-Jacobi sweep, out of place: y = x + weight * (b - A x) / diag (0 where there is no unknown).
struct JacobiBody {
  const double *b, *x;
  double* y;
  const std::uint8_t* d;
  std::int64_t s0, s1;
  double weight;
  InverseDiagonal inverse;
  KOKKOS_FORCEINLINE_FUNCTION void operator()(int, int, int, std::int64_t c) const {
    const int diag = d[c];
    const double sum = (x[c - s0] + x[c + s0]) + (x[c - s1] + x[c + s1]) + (x[c - 1] + x[c + 1]);
    y[c] = diag != 0 ? x[c] + weight * (b[c] - diag * x[c] + sum) * inverse(diag) : 0.0;
  }
};

// Prolongation P: cell-centred trilinear interpolation, renormalised at walls. Along one axis fine cell
// 2I+a sits a quarter of a coarse cell from coarse cell I and three quarters from its other neighbour, so
// it takes weight 3/4 from I and 1/4 from I-1 (a = 0) or I+1 (a = 1); in 3-D the products, 27/64 .. 1/64,
// over 8 coarse cells. A coarse neighbour that is solid (or outside a solid boundary) holds no value: its
// weight is dropped and the others rescaled to sum to 1 (constant extrapolation, a Neumann wall), where
// plain interpolation would pull the correction towards 0 at every wall and lose the smooth modes that
// nearly-Neumann problems (smoke) are made of. Air neighbours keep their weight with value 0 (Dirichlet).
// So P(f, I) = w(f, I) scale(f), scale(f) = 1 / sum of w(f, I') over non-solid I', kept per fine cell.
//
// Restriction R = P^T / 2 (the exact transpose keeps the V-cycle symmetric; 1/2 = averaging's 1/8 times the
// (2h/h)^2 = 4 that rescales the unscaled coarse matrix). The residual kernel multiplies by scale(f), so
// restriction applies the fixed weights (1, 3, 3, 1) / 4 per axis on fine cells 2I-1 .. 2I+2.
struct ProlongScaleKernel {
  ScaleField scale;  // fine, width 1
  ConstDiag df;      // fine diagonal: 0 where there is no unknown (or a walled-in one, left alone)
  ConstCells tc;     // coarse cell types, ghosts (corners too) current, boundary type outside
  std::int64_t fine_offset[3], coarse_offset[3];
  KOKKOS_INLINE_FUNCTION static void axis(std::int64_t fine_global, std::int64_t coarse_offset, int& near,
                                          int& far) {
    near = static_cast<int>((fine_global >> 1) - coarse_offset) + 1;
    far = near + ((fine_global & 1) ? 1 : -1);
  }
  KOKKOS_INLINE_FUNCTION void operator()(int i, int j, int k) const {
    if (df(i, j, k) == 0) {
      scale(i, j, k) = 0.0f;
      return;
    }
    int c[3][2];
    axis(fine_offset[0] + i - 1, coarse_offset[0], c[0][0], c[0][1]);
    axis(fine_offset[1] + j - 1, coarse_offset[1], c[1][0], c[1][1]);
    axis(fine_offset[2] + k - 1, coarse_offset[2], c[2][0], c[2][1]);
    const double w[2] = {3.0, 1.0};
    double total = 0.0;
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b)
        for (int e = 0; e < 2; ++e)
          if (tc(c[0][a], c[1][b], c[2][e]) != k_solid) total += w[a] * w[b] * w[e];
    // total >= 27: the nearest coarse cell is the fluid cell's parent, fluid or air.
    scale(i, j, k) = static_cast<float>(64.0 / total);
  }
};

// Run over the coarse owned cells (coarse width-1 layout).
struct RestrictBody {
  const double* r;        // fine scaled residual, width 2 (strides r0, r1), 0 on non-fluid cells and outside
  double* b;              // coarse, width 1
  const std::uint8_t* t;  // coarse cell types
  std::int64_t r0, r1;
  int base[3];  // fine field index of fine cell 2I-1, minus 2I, for coarse field index I
  KOKKOS_FORCEINLINE_FUNCTION void operator()(int I, int J, int K, std::int64_t c) const {
    if (t[c] != k_fluid) {
      b[c] = 0.0;
      return;
    }
    const double* f = r + (base[0] + 2 * I) * r0 + (base[1] + 2 * J) * r1 + (base[2] + 2 * K);
    const double w[4] = {1.0, 3.0, 3.0, 1.0};
    double sum = 0.0;
    for (int a = 0; a < 4; ++a) {
      double plane = 0.0;
      for (int e = 0; e < 4; ++e) {
        const double* line = f + a * r0 + e * r1;
        plane += w[e] * ((line[0] + line[3]) + 3.0 * (line[1] + line[2]));
      }
      sum += w[a] * plane;
    }
    b[c] = sum * (0.5 / 64.0);
  }
};

// x_fine += P x_coarse over the fine owned cells (coarse x is 0 on non-fluid cells and outside; its ghosts,
// corners included, must be current; scale is 0 where the fine cell has no unknown).
struct ProlongBody {
  const double* xc;  // coarse, width 1 (strides c0, c1)
  double* x;         // fine, width 1
  const float* scale;
  std::int64_t c0, c1;
  std::int64_t fine_offset[3], coarse_offset[3];
  KOKKOS_FORCEINLINE_FUNCTION void operator()(int i, int j, int k, std::int64_t c) const {
    const double s = scale[c];
    if (s == 0.0) return;
    int i0, i1, j0, j1, k0, k1;
    ProlongScaleKernel::axis(fine_offset[0] + i - 1, coarse_offset[0], i0, i1);
    ProlongScaleKernel::axis(fine_offset[1] + j - 1, coarse_offset[1], j0, j1);
    ProlongScaleKernel::axis(fine_offset[2] + k - 1, coarse_offset[2], k0, k1);
    const double* p00 = xc + i0 * c0 + j0 * c1;  // coarse rows (near or far i, near or far j)
    const double* p01 = xc + i0 * c0 + j1 * c1;
    const double* p10 = xc + i1 * c0 + j0 * c1;
    const double* p11 = xc + i1 * c0 + j1 * c1;
    const double near_plane = 3.0 * (3.0 * p00[k0] + p00[k1]) + (3.0 * p01[k0] + p01[k1]);
    const double far_plane = 3.0 * (3.0 * p10[k0] + p10[k1]) + (3.0 * p11[k0] + p11[k1]);
    x[c] += s * (3.0 * near_plane + far_plane) * (1.0 / 64.0);
  }
};

// Coarse cell types from their (up to 8) children: air if any child is air, else fluid if any is fluid,
// else solid. Air first keeps every Dirichlet region alive on every level (a coarse level that lost its
// air would be singular and its correction useless); fluid before solid keeps thin channels connected.
struct CoarsenCellsKernel {
  ConstCells fine;                                                // width 1, ghosts current (corners too)
  CellField coarse;                                               // width 1
  std::int64_t fine_offset[3], coarse_offset[3], fine_extent[3];  // global
  KOKKOS_INLINE_FUNCTION void operator()(int I, int J, int K) const {
    bool any_air = false, any_fluid = false;
    const std::int64_t g[3] = {2 * (coarse_offset[0] + I - 1), 2 * (coarse_offset[1] + J - 1),
                               2 * (coarse_offset[2] + K - 1)};
    for (int a = 0; a < 2; ++a) {
      if (g[0] + a >= fine_extent[0]) continue;
      for (int c = 0; c < 2; ++c) {
        if (g[1] + c >= fine_extent[1]) continue;
        for (int e = 0; e < 2; ++e) {
          if (g[2] + e >= fine_extent[2]) continue;
          const auto t = fine(static_cast<int>(g[0] + a - fine_offset[0]) + 1,
                              static_cast<int>(g[1] + c - fine_offset[1]) + 1,
                              static_cast<int>(g[2] + e - fine_offset[2]) + 1);
          any_air = any_air || t == k_air;
          any_fluid = any_fluid || t == k_fluid;
        }
      }
    }
    coarse(I, J, K) = any_air ? k_air : (any_fluid ? k_fluid : k_solid);
  }
};

// Ghost layer of a width-1 cell-type field set to the boundary type (the halo exchange then overwrites
// the ghosts that face another rank).
struct FillBoundaryCellsKernel {
  CellField t;
  std::uint8_t boundary;
  int n0, n1, n2;  // field extents
  KOKKOS_INLINE_FUNCTION void operator()(int i, int j, int k) const {
    if (i == 0 || j == 0 || k == 0 || i == n0 - 1 || j == n1 - 1 || k == n2 - 1) t(i, j, k) = boundary;
  }
};

// Counts fluid cells, or (touching_air) only those with an air neighbour. Two passes rather than one
// reduction of two values: Kokkos 3.4 reduces one value per MDRange reduction.
struct CountCellsKernel {
  ConstCells t;
  bool touching_air;
  KOKKOS_INLINE_FUNCTION void operator()(int i, int j, int k, std::int64_t& count) const {
    if (t(i, j, k) != k_fluid) return;
    if (!touching_air || t(i - 1, j, k) == k_air || t(i + 1, j, k) == k_air || t(i, j - 1, k) == k_air ||
        t(i, j + 1, k) == k_air || t(i, j, k - 1) == k_air || t(i, j, k + 1) == k_air)
      ++count;
  }
};

struct FluidSumKernel {
  ConstField v;
  ConstCells t;
  KOKKOS_INLINE_FUNCTION void operator()(int i, int j, int k, double& sum) const {
    if (t(i, j, k) == k_fluid) sum += v(i, j, k);
  }
};
struct FluidSumTerm {  // the same terms, summed exactly (solvers/exact_reduce.hpp)
  ConstField v;
  ConstCells t;
  KOKKOS_INLINE_FUNCTION double operator()(int i, int j, int k) const {
    return t(i, j, k) == k_fluid ? v(i, j, k) : 0.0;
  }
};

// v -= shift on fluid cells, v = 0 elsewhere.
struct ShiftFluidKernel {
  PoissonField v;
  ConstCells t;
  double shift;
  KOKKOS_INLINE_FUNCTION void operator()(int i, int j, int k) const {
    v(i, j, k) = t(i, j, k) == k_fluid ? v(i, j, k) - shift : 0.0;
  }
};

struct DotKernel {
  ConstField a, b;
  KOKKOS_INLINE_FUNCTION void operator()(int i, int j, int k, double& sum) const {
    sum += a(i, j, k) * b(i, j, k);
  }
};
struct DotTerm {  // the same terms, summed exactly (solvers/exact_reduce.hpp)
  ConstField a, b;
  KOKKOS_INLINE_FUNCTION double operator()(int i, int j, int k) const { return a(i, j, k) * b(i, j, k); }
};

}  // namespace skein::solvers::detail
