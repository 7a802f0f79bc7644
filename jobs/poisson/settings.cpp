#include "jobs/poisson/settings.hpp"

#include "engine/error.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace skein::poisson {

using engine::UsageError;

namespace {

std::string key_name(const std::string& key) {
  return "config key 'poisson." + key + "'";
}

double parse_number(const std::string& text, const std::string& what) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value)) {
    throw UsageError(what + ": '" + text + "' is not a number");
  }
  return value;
}

std::string trim(const std::string& text) {
  const auto begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  const auto end = text.find_last_not_of(" \t");
  return text.substr(begin, end - begin + 1);
}

}  // namespace

std::vector<Sphere> parse_obstacles(const std::string& text, const std::array<std::int64_t, 3>& grid,
                                    const std::string& job) {
  std::vector<Sphere> spheres;
  std::istringstream list(text);
  std::string item;
  int index = 0;
  while (std::getline(list, item, ';')) {
    item = trim(item);
    if (item.empty()) continue;
    ++index;
    const std::string what =
        "config key '" + job + ".obstacles'" + ", sphere " + std::to_string(index) + " '" + item + "'";
    std::vector<double> values;
    std::istringstream fields(item);
    std::string field;
    while (std::getline(fields, field, ',')) values.push_back(parse_number(trim(field), what));
    if (values.size() != 4) throw UsageError(what + ": expected x,y,z,r (4 numbers in cell units)");
    const Sphere s{values[0], values[1], values[2], values[3]};
    if (!(s.r > 0)) throw UsageError(what + ": the radius must be positive, got " + trim(field));
    const double centre[3] = {s.x, s.y, s.z};
    for (int a = 0; a < 3; ++a) {
      if (centre[a] < 0 || centre[a] > static_cast<double>(grid[a] - 1)) {
        throw UsageError(what + ": its centre lies outside the grid " + std::to_string(grid[0]) + "x" +
                         std::to_string(grid[1]) + "x" + std::to_string(grid[2]) + " (cells 0.." +
                         std::to_string(grid[a] - 1) + " along " + "xyz"[a] + ")");
      }
    }
    spheres.push_back(s);
  }
  return spheres;
}

std::string to_string(ProblemKind problem) {
  switch (problem) {
    case ProblemKind::manufactured:
      return "manufactured";
    case ProblemKind::smoke:
      return "smoke";
    case ProblemKind::file:
      return "file";
  }
  return "?";
}

std::vector<Sphere> default_obstacles(const std::array<std::int64_t, 3>& grid) {
  // Two spheres of the unit cube (centre, radius), as in tests/mpi/test_multigrid.cpp's smoke problem;
  // cell i's centre sits at (i + 0.5) / n, so unit coordinate c is cell coordinate c n - 0.5.
  const double unit[2][4] = {{0.35, 0.4, 0.35, 0.15}, {0.7, 0.6, 0.6, 0.12}};
  const double scale = static_cast<double>(std::min({grid[0], grid[1], grid[2]}));
  std::vector<Sphere> spheres;
  for (const auto& u : unit) {
    spheres.push_back({u[0] * static_cast<double>(grid[0]) - 0.5, u[1] * static_cast<double>(grid[1]) - 0.5,
                       u[2] * static_cast<double>(grid[2]) - 0.5, u[3] * scale});
  }
  return spheres;
}

engine::JobSpec job_spec() {
  return {
      "poisson",
      "3-D Poisson solve on a domain-decomposed cell grid (fluid / solid walls / air): CG, Jacobi-PCG or "
      "multigrid-PCG or DCDM (a trained CNN's search directions)",
      {
          {"grid", "", "cells per axis: nx,ny,nz (or one number for a cube)", true},
          {"problem", "manufactured",
           "manufactured: Dirichlet box with the known solution sin(pi x) sin(pi y) sin(pi z) (reports "
           "max_error); smoke: Neumann box, air opening on top, solid spheres, random divergence; file: "
           "cell types and right-hand side from `file`"},
          {"file", "",
           "problem=file: HDF5 file with uint8 /cell_type (0 fluid, 1 solid, 2 air) and float64 "
           "/rhs, both [nx][ny][nz]"},
          {"obstacles", "default",
           "problem=smoke: solid spheres 'x,y,z,r;x,y,z,r' in cell units, 'none', or 'default' (two "
           "spheres scaled to the grid)"},
          {"solver", "mgpcg",
           "cg | pcg-jacobi | mgpcg (CG preconditioned by one multigrid V-cycle) | dcdm (Kaneda et al. 2023: "
           "directions from the CNN of `model`, A-orthogonalised against the last dcdm_previous)"},
          {"model", "",
           "solver=dcdm: the model file, an HDF5 file with /model (dcdm-train's dcdm-train.h5); a model "
           "trained on one grid runs on any other"},
          {"dcdm_direction", "model",
           "solver=dcdm's directions: model (the network), or for ablations vcycle (one multigrid V-cycle) "
           "or identity (the residual: DCDM is then CG)"},
          {"dcdm_previous", "2", "solver=dcdm: previous directions each new one is A-orthogonalised against"},
          {"dcdm_stall_iters", "200",
           "solver=dcdm: give up when the relative residual has fallen less than 1% over this many "
           "iterations, as with a model that does not suit the problem (0: never; the output is still "
           "written)"},
          {"tol", "1e-8", "stop when ||b - A x|| / ||b|| <= tol"},
          {"max_iters", "10000", "give up after this many iterations (the output is still written)"},
          {"mg_levels", "0",
           "multigrid levels including the finest (0: coarsen while every rank keeps 2 "
           "cells per axis)"},
          {"smoother", "rbgs", "multigrid smoother: rbgs (symmetric red-black SOR) or damped-jacobi"},
          {"pre_smooth", "2", "multigrid smoothing sweeps before the coarse correction"},
          {"post_smooth", "2",
           "multigrid smoothing sweeps after it (must equal pre_smooth: CG needs a "
           "symmetric preconditioner)"},
          {"seed", "0", "random seed of the smoke right-hand side"},
          {"rhs_policy", "project",
           "all-Neumann problems (no air cell): project (remove the inconsistent part of the right-hand side "
           "and warn) or error (exit 65)"},
          {"progress_seconds", "5", "seconds between progress lines", false, false},
      },
      {"poisson.h5"}};
}

Settings parse_settings(const engine::Config& config) {
  Settings s;
  s.grid = config.get_int_triple("grid", 1, std::int64_t{1} << 24);
  const std::string problem = config.get_choice("problem", {"manufactured", "smoke", "file"});
  s.problem = problem == "smoke"  ? ProblemKind::smoke
              : problem == "file" ? ProblemKind::file
                                  : ProblemKind::manufactured;
  s.file = config.get("file");
  if (s.problem == ProblemKind::file && s.file.empty()) {
    throw UsageError(key_name("file") + " is required with problem=file");
  }
  if (s.problem != ProblemKind::file && !s.file.empty()) {
    throw UsageError(key_name("file") + " is only read with problem=file (problem is " + problem + ")");
  }
  const std::string obstacles = trim(config.get("obstacles"));
  if (obstacles != "default" && s.problem != ProblemKind::smoke) {
    throw UsageError(key_name("obstacles") + " is only used with problem=smoke (problem is " + problem + ")");
  }
  if (obstacles == "default") {
    s.obstacles = default_obstacles(s.grid);
  } else if (obstacles != "none") {
    s.obstacles = parse_obstacles(obstacles, s.grid);
  }
  s.solver_name = config.get_choice("solver", {"cg", "pcg-jacobi", "mgpcg", "dcdm"});
  s.solver = s.solver_name == "cg"           ? SolverKind::cg
             : s.solver_name == "pcg-jacobi" ? SolverKind::pcg_jacobi
             : s.solver_name == "dcdm"       ? SolverKind::dcdm
                                             : SolverKind::mgpcg;
  s.model = trim(config.get("model"));
  s.dcdm_direction_name = config.get_choice("dcdm_direction", {"model", "vcycle", "identity"});
  s.dcdm_direction = s.dcdm_direction_name == "vcycle"     ? DcdmDirection::vcycle
                     : s.dcdm_direction_name == "identity" ? DcdmDirection::identity
                                                           : DcdmDirection::model;
  s.dcdm_previous = static_cast<int>(config.get_int("dcdm_previous", 0, 100));
  s.dcdm_stall_iters = static_cast<int>(config.get_int("dcdm_stall_iters", 0, INT_MAX));
  if (s.solver == SolverKind::dcdm) {
    if (s.dcdm_direction == DcdmDirection::model && s.model.empty()) {
      throw UsageError(key_name("model") +
                       " is required with solver=dcdm: give the model file that dcdm-train wrote "
                       "(OUT/dcdm-train.h5)");
    }
    if (s.dcdm_direction != DcdmDirection::model && !s.model.empty()) {
      throw UsageError(key_name("model") + " is only read with dcdm_direction=model (dcdm_direction is " +
                       s.dcdm_direction_name + ")");
    }
  } else {
    if (!s.model.empty()) {
      throw UsageError(key_name("model") + " is only read with solver=dcdm (solver is " + s.solver_name +
                       ")");
    }
    if (s.dcdm_direction != DcdmDirection::model) {
      throw UsageError(key_name("dcdm_direction") + " is only read with solver=dcdm (solver is " +
                       s.solver_name + ")");
    }
  }
  s.tol = config.get_double("tol");
  if (!(s.tol > 0 && s.tol < 1))
    throw UsageError(key_name("tol") + ": " + config.get("tol") + " is not in (0, 1)");
  s.max_iters = static_cast<int>(config.get_int("max_iters", 1, INT_MAX));
  s.multigrid.levels = static_cast<int>(config.get_int("mg_levels", 0, 64));
  s.multigrid.smoother = solvers::parse_multigrid_smoother(config.get("smoother"), "poisson.smoother");
  s.multigrid.pre_smooth = static_cast<int>(config.get_int("pre_smooth", 1, 100));
  s.multigrid.post_smooth = static_cast<int>(config.get_int("post_smooth", 1, 100));
  if (s.multigrid.pre_smooth != s.multigrid.post_smooth) {
    throw UsageError(key_name("post_smooth") + " (" + config.get("post_smooth") +
                     ") must equal poisson.pre_smooth (" + config.get("pre_smooth") +
                     "): only then is the V-cycle symmetric, which CG needs");
  }
  s.seed = static_cast<std::uint64_t>(config.get_int("seed", 0, INT64_MAX));
  s.rhs_policy = config.get_choice("rhs_policy", {"project", "error"}) == "error" ? RhsPolicy::error
                                                                                  : RhsPolicy::project;
  s.progress_seconds = config.get_double("progress_seconds");
  if (!(s.progress_seconds >= 0)) {
    throw UsageError(key_name("progress_seconds") + ": " + config.get("progress_seconds") + " is negative");
  }
  return s;
}

}  // namespace skein::poisson
