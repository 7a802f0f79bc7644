// The poisson job's config keys and their parsed, validated values.
#pragma once

#include "engine/config.hpp"
#include "engine/job.hpp"
#include "solvers/multigrid.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace skein::poisson {

enum class ProblemKind { manufactured, smoke, file };
enum class SolverKind { cg, pcg_jacobi, mgpcg, dcdm };
// Where solver=dcdm takes its search directions from: the network of `model` (the method), or for
// ablations one multigrid V-cycle (DCDM as a truncated flexible MG-PCG) or the residual itself (= CG).
enum class DcdmDirection { model, vcycle, identity };
// What to do with the part of an all-Neumann right-hand side that no solution can match.
enum class RhsPolicy { project, error };

// A solid sphere in cell units: cell (i, j, k) is inside when its index point lies within r of the centre.
struct Sphere {
  double x = 0, y = 0, z = 0, r = 0;
};

struct Settings {
  std::array<std::int64_t, 3> grid{};
  ProblemKind problem = ProblemKind::manufactured;
  std::string file;
  std::vector<Sphere> obstacles;  // smoke only
  SolverKind solver = SolverKind::mgpcg;
  std::string solver_name = "mgpcg";
  double tol = 1e-8;
  int max_iters = 10000;
  solvers::MultigridOptions multigrid;
  std::string model;  // solver=dcdm: the model file (dcdm-train's output)
  DcdmDirection dcdm_direction = DcdmDirection::model;
  std::string dcdm_direction_name = "model";
  int dcdm_previous = 2;       // directions each new one is A-orthogonalised against
  int dcdm_stall_iters = 200;  // solvers::StoppingRule::stall_iters
  std::uint64_t seed = 0;
  RhsPolicy rhs_policy = RhsPolicy::project;
  double progress_seconds = 5.0;
};

engine::JobSpec job_spec();
// Throws UsageError naming the key for any bad value. Never communicates.
Settings parse_settings(const engine::Config& config);
// "x,y,z,r;x,y,z,r" in cell units (the `obstacles` key; shared with dcdm-train, whose errors name `job`'s
// key). UsageError naming the sphere and what is wrong.
std::vector<Sphere> parse_obstacles(const std::string& text, const std::array<std::int64_t, 3>& grid,
                                    const std::string& job = "poisson");
// The smoke problem's spheres when `obstacles` is left at "default": the same shapes at every resolution.
std::vector<Sphere> default_obstacles(const std::array<std::int64_t, 3>& grid);

std::string to_string(ProblemKind problem);

}  // namespace skein::poisson
