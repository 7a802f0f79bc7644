#include "jobs/poisson/dcdm_direction.hpp"

#include "engine/error.hpp"
#include "jobs/dcdm_model.hpp"
#include "solvers/cnn3d.hpp"
#include "solvers/multigrid.hpp"

#include <Kokkos_Core.hpp>

namespace skein::poisson {

namespace {

std::string grid_text(const std::array<std::int64_t, 3>& g) {
  return std::to_string(g[0]) + "x" + std::to_string(g[1]) + "x" + std::to_string(g[2]);
}

DcdmDirectionSource network_direction(const comm::CartDecomposition& decomposition,
                                      const Settings& settings) {
  using Network = solvers::cnn::DcdmNetwork<float>;
  const comm::Communicator& comm = decomposition.comm();
  const dcdm::LoadedModel model = dcdm::load_model(comm, settings.model);
  // The constructor is collective and agrees on its own errors (an architecture or a decomposition it
  // cannot run on); the grid is free: the network is fully convolutional.
  const auto network = std::make_shared<Network>(model.architecture, decomposition);
  comm.agree([&] {
    const auto parameters = network->parameters();
    if (parameters.extent(0) != model.parameters.size()) {
      throw engine::DataError(settings.model + ": /model holds " + std::to_string(model.parameters.size()) +
                              " parameters where its architecture needs " +
                              std::to_string(parameters.extent(0)));
    }
    const Kokkos::View<const float*, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> host(
        model.parameters.data(), model.parameters.size());
    Kokkos::deep_copy(parameters, host);
  });
  const auto& a = model.architecture;
  DcdmDirectionSource out;
  out.direction = [network](const solvers::PoissonField& r, const solvers::PoissonField& q) {
    network->infer(r, q);
  };
  out.description = "model " + settings.model + " (" + std::to_string(a.channels) + " channels, pairs " +
                    std::to_string(a.fine_pairs_before) + "/" + std::to_string(a.coarse_pairs) + "/" +
                    std::to_string(a.fine_pairs_after) + ", " + std::to_string(a.parameter_count()) +
                    " parameters, trained on " + grid_text(model.trained_grid) + ")";
  out.resources = network;
  return out;
}

}  // namespace

DcdmDirectionSource make_dcdm_direction(const comm::CartDecomposition& decomposition,
                                        const Settings& settings, const solvers::PoissonOperator& op) {
  DcdmDirectionSource out;
  switch (settings.dcdm_direction) {
    case DcdmDirection::model:
      return network_direction(decomposition, settings);
    case DcdmDirection::vcycle: {
      auto multigrid = std::make_shared<solvers::MultigridPreconditioner>(op, settings.multigrid);
      out.direction = [multigrid](const solvers::PoissonField& r, const solvers::PoissonField& q) {
        multigrid->apply(r, q);
      };
      out.description = "one multigrid V-cycle (" + std::to_string(multigrid->levels()) + " levels)";
      out.resources = multigrid;
      return out;
    }
    case DcdmDirection::identity:
      out.direction = [](const solvers::PoissonField& r, const solvers::PoissonField& q) {
        Kokkos::deep_copy(q, r);
      };
      out.description = "the residual itself (identity: DCDM is CG)";
      return out;
  }
  return out;
}

}  // namespace skein::poisson
