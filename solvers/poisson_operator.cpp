#include "solvers/poisson_operator.hpp"

#include "engine/error.hpp"
#include "solvers/exact_reduce.hpp"
#include "solvers/poisson_kernels.hpp"

#include <cmath>

namespace skein::solvers {

PoissonOperator::PoissonOperator(const comm::CartDecomposition& decomposition, CellField cells,
                                 CellType boundary)
    : decomposition_(decomposition),
      cells_(cells),
      boundary_(boundary),
      halo_(std::make_unique<comm::HaloExchange<double>>(decomposition_, 1, false)) {
  const auto extent = decomposition_.owned().extent;
  if (cells_.extent(0) != static_cast<std::size_t>(extent[0] + 2) ||
      cells_.extent(1) != static_cast<std::size_t>(extent[1] + 2) ||
      cells_.extent(2) != static_cast<std::size_t>(extent[2] + 2))
    throw engine::InternalError(
        "PoissonOperator: the cell-type field is not this decomposition's width-1 layout");
  const int n0 = static_cast<int>(cells_.extent(0)), n1 = static_cast<int>(cells_.extent(1)),
            n2 = static_cast<int>(cells_.extent(2));
  Kokkos::parallel_for(
      "poisson_fill_boundary_cells", detail::Policy3({0, 0, 0}, {n0, n1, n2}),
      detail::FillBoundaryCellsKernel{cells_, static_cast<std::uint8_t>(boundary_), n0, n1, n2});
  Kokkos::fence();
  // Corners too: coarsening reads a child across an edge or a corner of the owned block.
  comm::HaloExchange<std::uint8_t>(decomposition_, 1, true).exchange(cells_);

  std::int64_t fluid = 0, touching_air = 0;
  const auto policy = detail::owned_policy(extent, 1);
  Kokkos::parallel_reduce("poisson_count_fluid", policy, detail::CountCellsKernel{cells_, false}, fluid);
  Kokkos::parallel_reduce("poisson_count_air", policy, detail::CountCellsKernel{cells_, true}, touching_air);
  const auto& comm = decomposition_.comm();
  fluid_cells_ = comm.allreduce(fluid, comm::Op::sum);
  singular_ = comm.allreduce(touching_air, comm::Op::sum) == 0;
  overlap_ = comm.size() > 1;
}

PoissonOperator::~PoissonOperator() = default;
PoissonOperator::PoissonOperator(PoissonOperator&&) noexcept = default;
PoissonOperator& PoissonOperator::operator=(PoissonOperator&&) noexcept = default;

PoissonField PoissonOperator::make_vector(const std::string& label) const {
  return comm::make_field<double>(decomposition_, 1, label);
}

void PoissonOperator::apply(const PoissonField& x, const PoissonField& y) const {
  const auto e = decomposition_.owned().extent;
  const int n0 = static_cast<int>(e[0]), n1 = static_cast<int>(e[1]), n2 = static_cast<int>(e[2]);
  const std::int64_t s0 = detail::stride0(x), s1 = detail::stride1(x);
  const detail::ApplyBody body{x.data(), y.data(), cells_.data(), s0, s1};
  if (!overlap_ || n0 < 3 || n1 < 3 || n2 < 3) {
    halo_->exchange(x);
    detail::for_cells("poisson_apply", body, s0, s1, 1, n0 + 1, 1, n1 + 1, 1, n2 + 1);
    return;
  }
  // Cells whose neighbours are all owned while the messages travel, then the one-cell shell.
  halo_->start(x);
  detail::for_cells("poisson_apply_interior", body, s0, s1, 2, n0, 2, n1, 2, n2);
  halo_->finish(x);
  for (const int i : {1, n0})
    detail::for_cells("poisson_apply_shell", body, s0, s1, i, i + 1, 1, n1 + 1, 1, n2 + 1);
  for (const int j : {1, n1})
    detail::for_cells("poisson_apply_shell", body, s0, s1, 2, n0, j, j + 1, 1, n2 + 1);
  for (const int k : {1, n2}) detail::for_cells("poisson_apply_shell", body, s0, s1, 2, n0, 2, n1, k, k + 1);
}

void PoissonOperator::residual(const PoissonField& b, const PoissonField& x, const PoissonField& r) const {
  halo_->exchange(x);
  Kokkos::parallel_for(
      "poisson_residual", detail::owned_policy(decomposition_.owned().extent, 1),
      detail::ResidualKernel{b, x, r, cells_, static_cast<int>(r.extent(0) - x.extent(0)) / 2});
}

void PoissonOperator::diagonal(const PoissonField& d) const {
  Kokkos::parallel_for("poisson_diagonal", detail::owned_policy(decomposition_.owned().extent, 1),
                       detail::DiagonalKernel{d, cells_});
}

double PoissonOperator::fluid_sum(const PoissonField& v) const {
  const auto& comm = decomposition_.comm();
  const auto policy = detail::owned_policy(decomposition_.owned().extent, 1);
  if (comm.exact_sums()) return exact_sum(comm, policy, detail::FluidSumTerm{v, cells_});
  double sum = 0.0;
  Kokkos::parallel_reduce("poisson_fluid_sum", policy, detail::FluidSumKernel{v, cells_}, sum);
  return comm.allreduce(sum, comm::Op::sum);
}

double PoissonOperator::null_space_fraction(const PoissonField& b) const {
  const double norm = std::sqrt(dot(b, b));
  if (norm == 0.0 || fluid_cells_ == 0) return 0.0;
  return std::abs(fluid_sum(b)) / (std::sqrt(static_cast<double>(fluid_cells_)) * norm);
}

void PoissonOperator::remove_mean(const PoissonField& v) const {
  const double mean = fluid_cells_ > 0 ? fluid_sum(v) / static_cast<double>(fluid_cells_) : 0.0;
  Kokkos::parallel_for("poisson_remove_mean", detail::owned_policy(decomposition_.owned().extent, 1),
                       detail::ShiftFluidKernel{v, cells_, mean});
}

void PoissonOperator::mask(const PoissonField& v) const {
  Kokkos::parallel_for("poisson_mask", detail::owned_policy(decomposition_.owned().extent, 1),
                       detail::ShiftFluidKernel{v, cells_, 0.0});
}

double PoissonOperator::dot(const PoissonField& a, const PoissonField& b) const {
  const auto& comm = decomposition_.comm();
  const auto policy = detail::owned_policy(decomposition_.owned().extent, 1);
  if (comm.exact_sums()) return exact_sum(comm, policy, detail::DotTerm{a, b});
  double sum = 0.0;
  Kokkos::parallel_reduce("poisson_dot", policy, detail::DotKernel{a, b}, sum);
  return comm.allreduce(sum, comm::Op::sum);
}

}  // namespace skein::solvers
