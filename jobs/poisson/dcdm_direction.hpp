// solver=dcdm's search directions: the trained CNN of a model file (dcdm::load_model, run distributed on the
// job's decomposition), or for ablations a multigrid V-cycle or the residual itself.
#pragma once

#include "comm/cartesian.hpp"
#include "jobs/poisson/settings.hpp"
#include "solvers/poisson_operator.hpp"

#include <functional>
#include <memory>
#include <string>

namespace skein::poisson {

struct DcdmDirectionSource {
  // q = f(r) on the job's layout (only owned cells matter); collective.
  std::function<void(const solvers::PoissonField&, const solvers::PoissonField&)> direction;
  std::string description;          // for the set-up log line
  std::shared_ptr<void> resources;  // the network or V-cycle the direction uses
};

// Builds the direction of settings.dcdm_direction. For `model`: reads settings.model (every error agreed
// across ranks and naming the file: missing, not HDF5, not a DCDM model, weights that do not fit its
// architecture) and loads its weights into a network on `decomposition`. Collective.
DcdmDirectionSource make_dcdm_direction(const comm::CartDecomposition& decomposition,
                                        const Settings& settings, const solvers::PoissonOperator& op);

}  // namespace skein::poisson
