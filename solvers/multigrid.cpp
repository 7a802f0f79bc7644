#include "solvers/multigrid.hpp"

#include "engine/error.hpp"
#include "solvers/poisson_kernels.hpp"

#include <algorithm>

namespace skein::solvers {

MultigridSmoother parse_multigrid_smoother(const std::string& name, const std::string& key) {
  if (name == "rbgs") return MultigridSmoother::rbgs;
  if (name == "damped-jacobi") return MultigridSmoother::damped_jacobi;
  throw engine::UsageError(key + "=" + name + ": unknown smoother (expected rbgs or damped-jacobi)");
}

std::string to_string(MultigridSmoother smoother) {
  return smoother == MultigridSmoother::rbgs ? "rbgs" : "damped-jacobi";
}

// One level of the hierarchy. Level 0 borrows the caller's operator and vectors (b = r, x = z).
struct MultigridPreconditioner::Level {
  const PoissonOperator* op = nullptr;
  std::unique_ptr<PoissonOperator> owned_op;  // levels >= 1
  // x with edges and corners, before prolongation from this level (trilinear P reads diagonal neighbours).
  std::unique_ptr<comm::HaloExchange<double>> corners1;
  // The width-2 residual with edges and corners, before restriction to the next level.
  std::unique_ptr<comm::HaloExchange<double>> corners2;
  PoissonField x, b;                 // levels >= 1
  PoissonField tmp;                  // damped-Jacobi sweeps run out of place
  CellField diag;                    // diagonal counts, 0 where there is no unknown (see the kernels)
  PoissonField r;                    // ghost width 2: restriction reads two cells out
  detail::ScaleField prolong_scale;  // see ProlongScaleKernel (levels with a coarser one)
  std::array<std::int64_t, 3> offset{}, extent{};
  int parity = 0;  // parity of the sum of the owned block's global offsets (red-black colours)
};

MultigridPreconditioner::MultigridPreconditioner(const PoissonOperator& fine, const MultigridOptions& options)
    : options_(options) {
  if (options_.pre_smooth != options_.post_smooth || options_.pre_smooth < 1)
    throw engine::UsageError(
        "multigrid: pre_smooth (" + std::to_string(options_.pre_smooth) + ") and post_smooth (" +
        std::to_string(options_.post_smooth) +
        ") must be equal and at least 1, or the V-cycle is not symmetric positive definite");
  if (options_.levels < 0) throw engine::UsageError("multigrid: levels must be >= 0 (0 = automatic)");
  if (options_.smoother == MultigridSmoother::damped_jacobi &&
      !(options_.jacobi_weight > 0.0 && options_.jacobi_weight < 1.0))
    throw engine::UsageError("multigrid: the damped-Jacobi weight must lie in (0, 1)");
  if (options_.coarse_sweeps < 0)
    throw engine::UsageError("multigrid: coarse_sweeps must be >= 0 (0 = automatic)");

  auto add_level = [this](const PoissonOperator* op, std::unique_ptr<PoissonOperator> owned_op) {
    auto level = std::make_unique<Level>();
    level->owned_op = std::move(owned_op);
    level->op = op;
    const auto owned = op->decomposition().owned();
    level->offset = owned.offset;
    level->extent = owned.extent;
    level->parity = static_cast<int>((owned.offset[0] + owned.offset[1] + owned.offset[2]) & 1);
    levels_.push_back(std::move(level));
  };
  add_level(&fine, nullptr);

  // Coarsen while every rank keeps 2 cells per axis (the width-2 residual halo needs them, and below that
  // the coarse grid is a few cells a rank: smoothing it is the coarse solve).
  while (options_.levels == 0 || static_cast<int>(levels_.size()) < options_.levels) {
    const Level& finer = *levels_.back();
    const auto& fine_d = finer.op->decomposition();
    comm::CartDecomposition coarse_d = fine_d.coarsened();
    if (coarse_d.min_owned_extent() < 2) {
      if (options_.levels == 0) break;
      throw engine::UsageError("multigrid: " + std::to_string(options_.levels) +
                               " levels leave a rank fewer than 2 cells per axis; at most " +
                               std::to_string(levels_.size()) + " fit this grid on " +
                               std::to_string(fine_d.comm().size()) + " ranks");
    }
    auto cells = comm::make_field<std::uint8_t>(coarse_d, 1, "mg_cells");
    const auto coarse_owned = coarse_d.owned();
    const auto fine_global = fine_d.global_extent();
    detail::CoarsenCellsKernel coarsen{finer.op->cells(), cells, {}, {}, {}};
    for (int a = 0; a < 3; ++a) {
      coarsen.fine_offset[a] = finer.offset[a];
      coarsen.coarse_offset[a] = coarse_owned.offset[a];
      coarsen.fine_extent[a] = fine_global[a];
    }
    Kokkos::parallel_for("mg_coarsen_cells", detail::owned_policy(coarse_owned.extent, 1), coarsen);
    Kokkos::fence();
    auto op = std::make_unique<PoissonOperator>(coarse_d, cells, fine.boundary());
    const PoissonOperator* op_ptr = op.get();
    add_level(op_ptr, std::move(op));
  }

  for (std::size_t l = 0; l < levels_.size(); ++l) {
    Level& level = *levels_[l];
    const auto& d = level.op->decomposition();
    if (l > 0) {
      level.x = level.op->make_vector("mg_x");
      level.b = level.op->make_vector("mg_b");
      level.corners1 = std::make_unique<comm::HaloExchange<double>>(d, 1, true);
    }
    level.diag = comm::make_field<std::uint8_t>(d, 1, "mg_diag");
    Kokkos::parallel_for("mg_diag", detail::owned_policy(level.extent, 1),
                         detail::DiagonalCodeKernel{level.diag, level.op->cells()});
    Kokkos::fence();
    // The fused first sweep reads the neighbours' diagonals.
    comm::HaloExchange<std::uint8_t>(d, 1, false).exchange(level.diag);
    if (l + 1 < levels_.size()) {
      level.r = comm::make_field<double>(d, 2, "mg_r");
      level.corners2 = std::make_unique<comm::HaloExchange<double>>(d, 2, true);
      if (options_.smoother == MultigridSmoother::damped_jacobi) level.tmp = level.op->make_vector("mg_tmp");
      const Level& coarse = *levels_[l + 1];
      level.prolong_scale = detail::ScaleField("mg_prolong_scale", level.extent[0] + 2, level.extent[1] + 2,
                                               level.extent[2] + 2);
      detail::ProlongScaleKernel kernel{level.prolong_scale, level.diag, coarse.op->cells(), {}, {}};
      for (int a = 0; a < 3; ++a) {
        kernel.fine_offset[a] = level.offset[a];
        kernel.coarse_offset[a] = coarse.offset[a];
      }
      Kokkos::parallel_for("mg_prolong_scale", detail::owned_policy(level.extent, 1), kernel);
    }
  }

  coarse_sweeps_ = options_.coarse_sweeps;
  if (coarse_sweeps_ == 0) {
    const auto e = levels_.back()->op->decomposition().global_extent();
    coarse_sweeps_ = static_cast<int>(2 * std::max({e[0], e[1], e[2]}));
  }
}

MultigridPreconditioner::~MultigridPreconditioner() = default;
MultigridPreconditioner::MultigridPreconditioner(MultigridPreconditioner&&) noexcept = default;
MultigridPreconditioner& MultigridPreconditioner::operator=(MultigridPreconditioner&&) noexcept = default;

std::array<std::int64_t, 3> MultigridPreconditioner::level_extent(int level) const {
  return levels_.at(static_cast<std::size_t>(level))->op->decomposition().global_extent();
}

std::size_t MultigridPreconditioner::memory_bytes() const {
  std::size_t bytes = 0;
  for (std::size_t l = 0; l < levels_.size(); ++l) {
    const Level& level = *levels_[l];
    bytes += (level.x.span() + level.b.span() + level.tmp.span() + level.r.span()) * sizeof(double) +
             level.diag.span() + level.prolong_scale.span() * sizeof(float);
    if (l > 0) bytes += level.op->cells().span();  // level 0's belong to the caller
  }
  return bytes;
}

std::int64_t MultigridPreconditioner::level_fluid_cells(int level) const {
  return levels_.at(static_cast<std::size_t>(level))->op->fluid_cells();
}

void MultigridPreconditioner::rb_first_sweep(const Level& level, const PoissonField& b,
                                             const PoissonField& x) const {
  level.op->halo().exchange(b);
  const int n0 = static_cast<int>(level.extent[0]), n1 = static_cast<int>(level.extent[1]),
            n2 = static_cast<int>(level.extent[2]);
  const std::int64_t s0 = detail::stride0(x), s1 = detail::stride1(x);
  detail::for_cells(
      "mg_rbgs_first_sweep",
      detail::RbgsFirstSweepBody{
          b.data(), x.data(), level.diag.data(), s0, s1, level.parity, options_.rbgs_weight, {}},
      s0, s1, 1, n0 + 1, 1, n1 + 1, 1, n2 + 1);
}

void MultigridPreconditioner::rb_half_sweep(const Level& level, const PoissonField& b, const PoissonField& x,
                                            int colour) const {
  level.op->halo().exchange(x);
  const int n0 = static_cast<int>(level.extent[0]), n1 = static_cast<int>(level.extent[1]),
            n2 = static_cast<int>(level.extent[2]);
  const std::int64_t s0 = detail::stride0(x), s1 = detail::stride1(x);
  detail::for_cells<2>(
      "mg_rbgs", detail::RbgsBody{b.data(), x.data(), level.diag.data(), s0, s1, options_.rbgs_weight, {}},
      s0, s1, 1, n0 + 1, 1, n1 + 1, 1, n2 + 1, (colour + level.parity) & 1);
}

// `count` damped-Jacobi sweeps on x, ping-ponging with the level's spare vector.
void MultigridPreconditioner::jacobi_sweeps(const Level& level, const PoissonField& b, const PoissonField& x,
                                            int count) const {
  for (int s = 0; s < count; ++s) {
    const PoissonField& from = s % 2 == 0 ? x : level.tmp;
    const PoissonField& to = s % 2 == 0 ? level.tmp : x;
    level.op->halo().exchange(from);
    const std::int64_t s0 = detail::stride0(x), s1 = detail::stride1(x);
    detail::for_cells(
        "mg_jacobi",
        detail::JacobiBody{
            b.data(), from.data(), to.data(), level.diag.data(), s0, s1, options_.jacobi_weight, {}},
        s0, s1, 1, static_cast<int>(level.extent[0]) + 1, 1, static_cast<int>(level.extent[1]) + 1, 1,
        static_cast<int>(level.extent[2]) + 1);
  }
  if (count % 2 == 1) Kokkos::deep_copy(x, level.tmp);
}

// Pre-smoothing from x = 0: (red, black) per sweep. Post-smoothing is the same half-sweeps in reverse
// order, so the whole V-cycle reads the same forwards and backwards and M is symmetric.
void MultigridPreconditioner::smooth_pre(const Level& level, const PoissonField& b,
                                         const PoissonField& x) const {
  if (options_.smoother == MultigridSmoother::rbgs) {
    rb_first_sweep(level, b, x);
    for (int s = 1; s < options_.pre_smooth; ++s) {
      rb_half_sweep(level, b, x, 0);
      rb_half_sweep(level, b, x, 1);
    }
    return;
  }
  const std::int64_t s0 = detail::stride0(x), s1 = detail::stride1(x);
  detail::for_cells(
      "mg_jacobi_from_zero",
      detail::JacobiFromZeroBody{b.data(), x.data(), level.diag.data(), options_.jacobi_weight, {}}, s0, s1,
      1, static_cast<int>(level.extent[0]) + 1, 1, static_cast<int>(level.extent[1]) + 1, 1,
      static_cast<int>(level.extent[2]) + 1);
  jacobi_sweeps(level, b, x, options_.pre_smooth - 1);
}

void MultigridPreconditioner::smooth_post(const Level& level, const PoissonField& b,
                                          const PoissonField& x) const {
  if (options_.smoother == MultigridSmoother::rbgs) {
    for (int s = 0; s < options_.post_smooth; ++s) {
      rb_half_sweep(level, b, x, 1);
      rb_half_sweep(level, b, x, 0);
    }
    return;
  }
  jacobi_sweeps(level, b, x, options_.post_smooth);
}

// red (black red)^n from zero: a palindrome, so a symmetric fixed linear operator whatever the smoother.
void MultigridPreconditioner::coarse_solve(const Level& level, const PoissonField& b,
                                           const PoissonField& x) const {
  rb_first_sweep(level, b, x);
  rb_half_sweep(level, b, x, 0);
  for (int s = 1; s < coarse_sweeps_; ++s) {
    rb_half_sweep(level, b, x, 1);
    rb_half_sweep(level, b, x, 0);
  }
}

void MultigridPreconditioner::apply(const PoissonField& r, const PoissonField& z) const {
  const int last = levels() - 1;
  // The kernels sum neighbours unmasked, so z's domain-boundary ghosts must hold 0 (the levels' own
  // vectors always do); the other ghosts are refreshed by exchanges before they are read.
  const int n[3] = {static_cast<int>(z.extent(0)), static_cast<int>(z.extent(1)),
                    static_cast<int>(z.extent(2))};
  for (int axis = 0; axis < 3; ++axis) {
    const int p = axis == 0 ? n[1] : n[0], q = axis == 2 ? n[1] : n[2];
    Kokkos::parallel_for("mg_zero_ghosts", detail::Policy3({0, 0, 0}, {2, p, q}),
                         detail::ZeroGhostsKernel{z, axis, n[0], n[1], n[2]});
  }
  // Down: smooth, restrict the residual.
  for (int l = 0; l < last; ++l) {
    const Level& level = *levels_[static_cast<std::size_t>(l)];
    const Level& coarse = *levels_[static_cast<std::size_t>(l + 1)];
    const PoissonField& b = l == 0 ? r : level.b;
    const PoissonField& x = l == 0 ? z : level.x;
    smooth_pre(level, b, x);
    level.op->halo().exchange(x);
    const std::int64_t s0 = detail::stride0(x), s1 = detail::stride1(x);
    const std::int64_t r0 = detail::stride0(level.r), r1 = detail::stride1(level.r);
    detail::for_cells("mg_residual",
                      detail::ScaledResidualBody{b.data(), x.data(), level.r.data(), level.diag.data(),
                                                 level.prolong_scale.data(), s0, s1, r0, r1},
                      s0, s1, 1, static_cast<int>(level.extent[0]) + 1, 1,
                      static_cast<int>(level.extent[1]) + 1, 1, static_cast<int>(level.extent[2]) + 1);
    level.corners2->exchange(level.r);
    const std::int64_t c0 = detail::stride0(coarse.b), c1 = detail::stride1(coarse.b);
    detail::RestrictBody restrict_body{
        level.r.data(), coarse.b.data(), coarse.op->cells().data(), r0, r1, {}};
    for (int a = 0; a < 3; ++a)
      restrict_body.base[a] = static_cast<int>(2 * coarse.offset[a] - level.offset[a] - 1);
    detail::for_cells("mg_restrict", restrict_body, c0, c1, 1, static_cast<int>(coarse.extent[0]) + 1, 1,
                      static_cast<int>(coarse.extent[1]) + 1, 1, static_cast<int>(coarse.extent[2]) + 1);
  }
  {
    const Level& level = *levels_[static_cast<std::size_t>(last)];
    coarse_solve(level, last == 0 ? r : level.b, last == 0 ? z : level.x);
  }
  // Up: prolongate the correction, smooth.
  for (int l = last - 1; l >= 0; --l) {
    const Level& level = *levels_[static_cast<std::size_t>(l)];
    const Level& coarse = *levels_[static_cast<std::size_t>(l + 1)];
    const PoissonField& b = l == 0 ? r : level.b;
    const PoissonField& x = l == 0 ? z : level.x;
    coarse.corners1->exchange(coarse.x);
    detail::ProlongBody prolong{coarse.x.data(),
                                x.data(),
                                level.prolong_scale.data(),
                                detail::stride0(coarse.x),
                                detail::stride1(coarse.x),
                                {},
                                {}};
    for (int a = 0; a < 3; ++a) {
      prolong.fine_offset[a] = level.offset[a];
      prolong.coarse_offset[a] = coarse.offset[a];
    }
    detail::for_cells("mg_prolong", prolong, detail::stride0(x), detail::stride1(x), 1,
                      static_cast<int>(level.extent[0]) + 1, 1, static_cast<int>(level.extent[1]) + 1, 1,
                      static_cast<int>(level.extent[2]) + 1);
    smooth_post(level, b, x);
  }
}

}  // namespace skein::solvers
