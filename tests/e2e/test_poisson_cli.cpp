// The poisson job end to end through the `skein` executable: O(h^2) manufactured error, every solver to
// 1e-8, the same solution at 1, 2 and 3 ranks, flat multigrid iteration counts, file problems and every bad
// input's exit code and message (with every rank ending), and checkpoint / resume on another rank count.
#include "io/h5_summary.hpp"
#include "tests/e2e/cli_runner.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

using namespace skein::test;

namespace {

struct Outcome {
  RunResult run;
  std::string h5;
};

// `skein run poisson` with `args` (each "KEY=VALUE" becomes --poisson.KEY=VALUE) into a fresh folder.
Outcome run_poisson(int ranks, const std::vector<std::string>& keys, const std::string& tag,
                    const std::vector<std::string>& extra = {}) {
  const std::string out = make_temp_dir("poisson-" + tag);
  std::vector<std::string> args = {"run", "poisson", "--out", out};
  for (const auto& key : keys) args.push_back("--poisson." + key);
  for (const auto& arg : extra) args.push_back(arg);
  return {run_skein(ranks, args, 120), out + "/poisson.h5"};
}

std::int64_t int_attribute(const std::string& h5, const std::string& name) {
  return skein::io::read_int64_attribute(h5, "/", name);
}
double double_attribute(const std::string& h5, const std::string& name) {
  return skein::io::read_double_attribute(h5, "/", name);
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

double max_abs(const std::vector<double>& a) {
  double worst = 0;
  for (const double v : a) worst = std::max(worst, std::fabs(v));
  return worst;
}

// A problem=file input, written serially with HDF5's C API: uint8 /cell_type and float64 /rhs [nx][ny][nz].
void write_problem_file(const std::string& path, const std::vector<hsize_t>& shape,
                        const std::vector<std::uint8_t>& cells, const std::vector<double>& rhs,
                        bool with_rhs = true) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  const hid_t space = H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr);
  const hid_t types =
      H5Dcreate2(file, "/cell_type", H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(types, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, cells.data());
  H5Dclose(types);
  if (with_rhs) {
    const hid_t b = H5Dcreate2(file, "/rhs", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(b, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, rhs.data());
    H5Dclose(b);
  }
  H5Sclose(space);
  H5Fclose(file);
}

// Uniform in [-1, 1) from a global cell index (splitmix64), as bench/poisson's random right-hand side.
double uniform(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-52 - 1.0;
}

// An n^3 file whose outer layer is air and the rest fluid: a Dirichlet box with a random right-hand side
// (rougher than the manufactured one: every mode of A, high ones too, at about the same weight).
std::string dirichlet_box_file(std::int64_t n) {
  const std::string path = make_temp_dir("poisson-box") + "/box.h5";
  std::vector<std::uint8_t> cells(static_cast<std::size_t>(n * n * n));
  std::vector<double> rhs(cells.size());
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      for (std::int64_t k = 0; k < n; ++k) {
        const auto at = static_cast<std::size_t>((i * n + j) * n + k);
        const bool edge = i == 0 || j == 0 || k == 0 || i == n - 1 || j == n - 1 || k == n - 1;
        cells[at] = edge ? 2 : 0;
        rhs[at] = uniform(at);
      }
  const auto N = static_cast<hsize_t>(n);
  write_problem_file(path, {N, N, N}, cells, rhs);
  return path;
}

std::string grid_of(std::int64_t n) {
  return "grid=" + std::to_string(n);
}

}  // namespace

TEST(PoissonCli, ListedWithItsKeys) {
  const RunResult jobs = run_skein(0, {"jobs"});
  ASSERT_EQ(jobs.exit_code, 0) << jobs.output;
  EXPECT_NE(jobs.output.find("poisson"), std::string::npos) << jobs.output;
  const RunResult help = run_skein(0, {"run", "poisson", "--help"});
  ASSERT_EQ(help.exit_code, 0) << help.output;
  for (const char* key :
       {"poisson.grid", "poisson.problem", "poisson.file", "poisson.obstacles", "poisson.solver",
        "poisson.tol", "poisson.max_iters", "poisson.mg_levels", "poisson.smoother", "poisson.pre_smooth",
        "poisson.post_smooth", "poisson.seed", "poisson.rhs_policy", "poisson.model",
        "poisson.dcdm_direction", "poisson.dcdm_previous", "poisson.dcdm_stall_iters"}) {
    EXPECT_NE(help.output.find(key), std::string::npos) << key << "\n" << help.output;
  }
}

// The discretisation error falls as h^2 (a factor ~4 per halving of h), and matches bench/poisson's figure.
TEST(PoissonManufactured, ErrorFallsAsHSquared) {
  std::vector<double> errors;
  for (const std::int64_t n : {8, 16, 32}) {
    const auto r = run_poisson(1, {grid_of(n), "problem=manufactured", "solver=mgpcg"}, "mms");
    ASSERT_EQ(r.run.exit_code, 0) << r.run.output;
    EXPECT_EQ(int_attribute(r.h5, "converged"), 1);
    EXPECT_LE(double_attribute(r.h5, "relative_residual"), 1e-8);
    errors.push_back(double_attribute(r.h5, "max_error"));
    EXPECT_EQ(skein::io::dataset_shape(r.h5, "/solution"),
              (std::vector<std::uint64_t>{std::uint64_t(n), std::uint64_t(n), std::uint64_t(n)}));
  }
  // h = 1/(n+1): the ratio for exact O(h^2) is ((2n+1)/(n+1))^2, 3.57 from 8 to 16 and 3.77 from 16 to 32.
  EXPECT_GT(errors[0] / errors[1], 3.3) << errors[0] << " " << errors[1];
  EXPECT_LT(errors[0] / errors[1], 4.2) << errors[0] << " " << errors[1];
  EXPECT_GT(errors[1] / errors[2], 3.5) << errors[1] << " " << errors[2];
  EXPECT_LT(errors[1] / errors[2], 4.2) << errors[1] << " " << errors[2];
  EXPECT_NEAR(errors[2], 2.903e-3, 0.005e-3);  // bench/README.md: hypre's max error 2.903e-3 at n = 32
}

TEST(PoissonSolvers, EveryOneReachesTheTolerance) {
  std::vector<std::vector<double>> solutions;
  for (const char* solver : {"cg", "pcg-jacobi", "mgpcg"}) {
    const auto r =
        run_poisson(1, {"grid=16,14,12", "problem=smoke", std::string("solver=") + solver}, solver);
    ASSERT_EQ(r.run.exit_code, 0) << r.run.output;
    EXPECT_EQ(int_attribute(r.h5, "converged"), 1) << solver;
    EXPECT_LE(double_attribute(r.h5, "relative_residual"), 1.01e-8) << solver;
    EXPECT_EQ(skein::io::read_string_attribute(r.h5, "/", "solver"), solver);
    const auto history = skein::io::read_dataset<double>(r.h5, "/history/residual");
    EXPECT_EQ(static_cast<std::int64_t>(history.size()), int_attribute(r.h5, "iterations") + 1) << solver;
    solutions.push_back(skein::io::read_dataset<double>(r.h5, "/solution"));
  }
  const double scale = max_abs(solutions[0]);
  EXPECT_LE(max_abs_difference(solutions[0], solutions[1]), 1e-5 * scale);
  EXPECT_LE(max_abs_difference(solutions[0], solutions[2]), 1e-5 * scale);
  // The manufactured right-hand side is not an eigenvector of A: CG and Jacobi-PCG need many iterations
  // (41 at 12^3, 1 with the former sin sin sin), and every solver reaches the same discrete solution.
  std::vector<double> errors;
  for (const char* solver : {"cg", "pcg-jacobi", "mgpcg"}) {
    const auto r =
        run_poisson(1, {"grid=12", "problem=manufactured", std::string("solver=") + solver}, solver);
    ASSERT_EQ(r.run.exit_code, 0) << r.run.output;
    EXPECT_EQ(int_attribute(r.h5, "converged"), 1) << solver;
    EXPECT_LE(double_attribute(r.h5, "relative_residual"), 1.01e-8) << solver;
    if (std::string(solver) != "mgpcg") EXPECT_GE(int_attribute(r.h5, "iterations"), 20) << solver;
    errors.push_back(double_attribute(r.h5, "max_error"));
  }
  EXPECT_NEAR(errors[0], errors[2], 1e-4 * errors[2]);
  EXPECT_NEAR(errors[1], errors[2], 1e-4 * errors[2]);
}

// The same problem at 1, 2 and 3 ranks (uneven, non-cubic splits): with comm.reproducible (exact dot
// products) the same solution bit for bit. The level count is pinned: left automatic it depends on the
// blocks' sizes, and so would the iterates.
TEST(PoissonRanks, SolutionsAgreeAcrossRankCounts) {
  for (const char* problem : {"smoke", "manufactured"}) {
    std::vector<double> reference;
    for (const int ranks : {1, 2, 3}) {
      const auto r = run_poisson(ranks, {"grid=25,15,13", std::string("problem=") + problem, "mg_levels=3"},
                                 "ranks", {"--comm.reproducible=true"});
      ASSERT_EQ(r.run.exit_code, 0) << r.run.output;
      EXPECT_EQ(int_attribute(r.h5, "ranks"), ranks);
      const auto solution = skein::io::read_dataset<double>(r.h5, "/solution");
      if (reference.empty()) {
        reference = solution;
      } else {
        EXPECT_EQ(reference, solution) << problem << " at " << ranks << " ranks";
      }
      const auto cells = skein::io::read_dataset<std::uint8_t>(r.h5, "/cell_type");
      ASSERT_EQ(cells.size(), solution.size());
      for (std::size_t i = 0; i < cells.size(); ++i) {
        if (cells[i] != 0) ASSERT_EQ(solution[i], 0.0) << "non-fluid cell " << i;
      }
    }
  }
}

// MG-PCG needs about as many iterations at 32^3 as at 16^3, and several times fewer than CG.
TEST(PoissonMultigrid, IterationsStayFlat) {
  struct Case {
    std::string name;
    std::vector<std::string> small, large;
  };
  const std::string box16 = dirichlet_box_file(18), box32 = dirichlet_box_file(34);
  const std::vector<Case> cases = {
      {"smoke", {grid_of(16), "problem=smoke"}, {grid_of(32), "problem=smoke"}},
      {"box", {grid_of(18), "problem=file", "file=" + box16}, {grid_of(34), "problem=file", "file=" + box32}},
      {"manufactured", {grid_of(16), "problem=manufactured"}, {grid_of(32), "problem=manufactured"}},
  };
  for (const auto& c : cases) {
    auto small = c.small, large = c.large;
    small.push_back("solver=mgpcg");
    large.push_back("solver=mgpcg");
    const auto a = run_poisson(2, small, "flat"), b = run_poisson(2, large, "flat");
    ASSERT_EQ(a.run.exit_code, 0) << a.run.output;
    ASSERT_EQ(b.run.exit_code, 0) << b.run.output;
    const auto it_small = int_attribute(a.h5, "iterations"), it_large = int_attribute(b.h5, "iterations");
    EXPECT_LE(static_cast<double>(it_large), 1.3 * static_cast<double>(it_small)) << c.name;
    EXPECT_LE(it_large, 12) << c.name;
    auto cg = c.large;
    cg.push_back("solver=cg");
    const auto r = run_poisson(2, cg, "flat-cg");
    ASSERT_EQ(r.run.exit_code, 0) << r.run.output;
    EXPECT_GE(int_attribute(r.h5, "iterations"), 4 * it_large) << c.name;
  }
}

TEST(PoissonRun, NotConvergedStillWritesItsOutput) {
  const auto r = run_poisson(2, {grid_of(16), "problem=smoke", "solver=cg", "max_iters=3"}, "maxit");
  ASSERT_EQ(r.run.exit_code, 0) << r.run.output;
  EXPECT_NE(r.run.output.find("did NOT converge"), std::string::npos) << r.run.output;
  EXPECT_EQ(int_attribute(r.h5, "converged"), 0);
  EXPECT_EQ(int_attribute(r.h5, "iterations"), 3);
  EXPECT_EQ(skein::io::read_dataset<double>(r.h5, "/history/residual").size(), 4u);
}

// An all-Neumann problem (no air cell) from a file: a random right-hand side is inconsistent.
TEST(PoissonFile, AllNeumannRightHandSide) {
  const std::int64_t n = 12;
  const std::string path = make_temp_dir("poisson-neumann") + "/neumann.h5";
  std::vector<std::uint8_t> cells(n * n * n, 0);
  std::vector<double> rhs(cells.size());
  for (std::size_t i = 0; i < rhs.size(); ++i) rhs[i] = uniform(i) + 0.25;
  cells[5] = 1;  // a solid cell: a Neumann wall inside too
  write_problem_file(path, {12, 12, 12}, cells, rhs);
  const std::vector<std::string> base = {grid_of(n), "problem=file", "file=" + path};

  auto error = base;
  error.push_back("rhs_policy=error");
  const auto e = run_poisson(2, error, "neumann-error");
  EXPECT_EQ(e.run.exit_code, 65) << e.run.output;
  EXPECT_NE(e.run.output.find("all-Neumann"), std::string::npos) << e.run.output;
  EXPECT_NE(e.run.output.find("sums to"), std::string::npos) << e.run.output;
  EXPECT_NE(e.run.output.find(path), std::string::npos) << e.run.output;
  EXPECT_FALSE(file_exists(e.h5));

  auto project = base;
  project.push_back("rhs_policy=project");
  for (const char* solver : {"mgpcg", "cg"}) {
    auto keys = project;
    keys.push_back(std::string("solver=") + solver);
    const auto p = run_poisson(3, keys, "neumann-project");
    ASSERT_EQ(p.run.exit_code, 0) << p.run.output;
    EXPECT_NE(p.run.output.find("removing its mean"), std::string::npos) << p.run.output;
    EXPECT_EQ(int_attribute(p.h5, "converged"), 1) << solver;
    EXPECT_GT(double_attribute(p.h5, "rhs_null_fraction"), 0.1);
    // The iterates stay mean-free: the solution sums to 0 over the fluid.
    const auto u = skein::io::read_dataset<double>(p.h5, "/solution");
    double sum = 0;
    for (const double v : u) sum += v;
    EXPECT_LE(std::fabs(sum), 1e-8 * max_abs(u) * static_cast<double>(u.size())) << solver;
  }
}

TEST(PoissonInputs, BadFilesAreDataErrors) {
  const std::string dir = make_temp_dir("poisson-bad");
  std::vector<std::uint8_t> fluid(8 * 8 * 8, 0);
  std::vector<double> rhs(fluid.size(), 1.0);
  fluid[0] = 2;
  const std::string good = dir + "/good.h5";
  write_problem_file(good, {8, 8, 8}, fluid, rhs);

  struct Case {
    std::string name, file, grid;
    std::vector<std::string> expect;
  };
  auto unknown = fluid;
  unknown[(1 * 8 + 2) * 8 + 3] = 7;
  write_problem_file(dir + "/unknown.h5", {8, 8, 8}, unknown, rhs);
  write_problem_file(dir + "/solid.h5", {8, 8, 8}, std::vector<std::uint8_t>(fluid.size(), 1), rhs);
  write_problem_file(dir + "/norhs.h5", {8, 8, 8}, fluid, rhs, /*with_rhs=*/false);
  write_problem_file(dir + "/flat.h5", {64, 8}, fluid, rhs);
  const std::vector<Case> cases = {
      {"grid mismatch", good, "8,8,9", {"shape 8x8x8", "8x8x9"}},
      {"2-D datasets", dir + "/flat.h5", "8", {"shape 64x8"}},
      {"unknown cell type", dir + "/unknown.h5", "8", {"holds 7 at (i,j,k) = (1,2,3)", "expected 0 (fluid)"}},
      {"no fluid cell", dir + "/solid.h5", "8", {"no fluid cell"}},
      {"missing dataset", dir + "/norhs.h5", "8", {"/rhs"}},
      {"missing file", dir + "/nothing.h5", "8", {"nothing.h5"}},
  };
  for (const auto& c : cases) {
    const auto r = run_poisson(3, {"grid=" + c.grid, "problem=file", "file=" + c.file}, "bad");
    EXPECT_EQ(r.run.exit_code, 65) << c.name << "\n" << r.run.output;
    EXPECT_LT(r.run.seconds, 60) << c.name;
    EXPECT_NE(r.run.output.find(c.file), std::string::npos) << c.name << "\n" << r.run.output;
    for (const auto& text : c.expect)
      EXPECT_NE(r.run.output.find(text), std::string::npos) << c.name << ": " << text << "\n" << r.run.output;
    EXPECT_FALSE(file_exists(r.h5)) << c.name;
  }
  // The good file solves.
  const auto ok = run_poisson(2, {"grid=8", "problem=file", "file=" + good}, "good");
  EXPECT_EQ(ok.run.exit_code, 0) << ok.run.output;
}

TEST(PoissonInputs, BadSettingsAreUsageErrors) {
  struct Case {
    std::string name;
    std::vector<std::string> keys;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"zero grid", {"grid=0,8,8"}, "poisson.grid"},
      {"negative grid", {"grid=8,-4,8"}, "poisson.grid"},
      {"obstacle outside", {grid_of(16), "problem=smoke", "obstacles=4,4,4,2;30,4,4,3"}, "outside the grid"},
      {"zero radius", {grid_of(16), "problem=smoke", "obstacles=4,4,4,0"}, "radius must be positive"},
      {"negative radius", {grid_of(16), "problem=smoke", "obstacles=4,4,4,-1"}, "radius must be positive"},
      {"malformed obstacle", {grid_of(16), "problem=smoke", "obstacles=4,4,4"}, "x,y,z,r"},
      {"file without problem=file", {grid_of(16), "file=x.h5"}, "poisson.file"},
      {"problem=file without file", {grid_of(16), "problem=file"}, "poisson.file"},
      {"asymmetric smoothing", {grid_of(16), "pre_smooth=2", "post_smooth=1"}, "symmetric"},
      {"unknown solver", {grid_of(16), "solver=gmres"}, "poisson.solver"},
      {"bad tol", {grid_of(16), "tol=0"}, "poisson.tol"},
      {"covered grid", {grid_of(8), "problem=smoke", "obstacles=4,4,4,20"}, "no fluid cell"},
      {"dcdm without a model", {grid_of(8), "solver=dcdm"}, "poisson.model' is required with solver=dcdm"},
      {"model without dcdm", {grid_of(8), "solver=cg", "model=m.h5"}, "only read with solver=dcdm"},
      {"model with an ablation direction",
       {grid_of(8), "solver=dcdm", "dcdm_direction=vcycle", "model=m.h5"},
       "only read with dcdm_direction=model"},
      {"direction without dcdm", {grid_of(8), "dcdm_direction=identity"}, "poisson.dcdm_direction"},
      {"unknown direction", {grid_of(8), "solver=dcdm", "dcdm_direction=jacobi"}, "poisson.dcdm_direction"},
      {"negative stall window",
       {grid_of(8), "solver=dcdm", "dcdm_direction=identity", "dcdm_stall_iters=-1"},
       "poisson.dcdm_stall_iters"},
  };
  for (const auto& c : cases) {
    const auto r = run_poisson(2, c.keys, "usage");
    EXPECT_EQ(r.run.exit_code, 2) << c.name << "\n" << r.run.output;
    EXPECT_NE(r.run.output.find(c.expect), std::string::npos) << c.name << "\n" << r.run.output;
  }
}

namespace {

// Runs the smoke problem with `solver`, stops it on purpose after a checkpoint, resumes it on another rank
// count.
void check_resume(const std::string& solver, const std::vector<std::string>& more = {}) {
  std::vector<std::string> keys = {"grid=24,18,16", "problem=smoke", solver, "mg_levels=2", "tol=1e-10"};
  keys.insert(keys.end(), more.begin(), more.end());
  const auto straight = run_poisson(1, keys, "straight", {"--comm.reproducible=true"});
  ASSERT_EQ(straight.run.exit_code, 0) << straight.run.output;
  const auto iterations = int_attribute(straight.h5, "iterations");
  ASSERT_GT(iterations, 8);

  for (const auto& [first, second] : {std::pair<int, int>{3, 2}, std::pair<int, int>{2, 3}}) {
    const std::string out = make_temp_dir("poisson-ckpt");
    std::vector<std::string> args = {
        "run", "poisson", "--out", out, "--checkpoint-steps", "4", "--comm.reproducible=true"};
    for (const auto& key : keys) args.push_back("--poisson." + key);
    // Fails on purpose at step 6 (after the checkpoint of step 4).
    auto stopped = start_skein(first, args, {{"SKEIN_FAULT", "throw:1:6"}});
    const auto ended = stopped.wait(120);
    ASSERT_EQ(ended.exit_code, 70) << solver << "\n" << ended.output;
    ASSERT_TRUE(file_exists(out + "/checkpoint.h5"));
    ASSERT_FALSE(file_exists(out + "/poisson.h5"));
    args.push_back("--resume");
    const RunResult resumed = run_skein(second, args, 120);
    ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
    EXPECT_NE(resumed.output.find("resumed at iteration 4"), std::string::npos) << resumed.output;
    const std::string h5 = out + "/poisson.h5";
    EXPECT_EQ(int_attribute(h5, "converged"), 1);
    EXPECT_EQ(int_attribute(h5, "iterations"), iterations);
    // Exact sums (comm.reproducible): the uninterrupted 1-rank run's bits.
    EXPECT_EQ(skein::io::read_dataset<double>(straight.h5, "/solution"),
              skein::io::read_dataset<double>(h5, "/solution"))
        << solver << " " << first << " -> " << second << " ranks";
    const auto history = skein::io::read_dataset<double>(h5, "/history/residual");
    EXPECT_EQ(static_cast<std::int64_t>(history.size()), iterations + 1);
    EXPECT_EQ(history, skein::io::read_dataset<double>(straight.h5, "/history/residual"));
  }
}

}  // namespace

// A solve stopped after a checkpoint resumes on another rank count to the uninterrupted run's solution, bit
// for bit with comm.reproducible.
// The multigrid levels are pinned (automatic, they depend on the blocks: see README, poisson).
TEST(PoissonCheckpoint, ResumesOnAnotherRankCount) {
  for (const char* solver : {"cg", "mgpcg"}) {
    check_resume(std::string("solver=") + solver);
  }
  // DCDM keeps x and its last two directions; the V-cycle direction needs no model file.
  check_resume("solver=dcdm", {"dcdm_direction=vcycle"});
}

// solver=dcdm with the directions that need no trained model: the identity is CG (the same iterations
// within one, the same solution), a V-cycle converges in a few iterations; the output records the time in
// the directions.
TEST(PoissonDcdm, AblationDirectionsReachTheTolerance) {
  for (const char* problem : {"smoke", "manufactured"}) {
    const std::vector<std::string> base = {"grid=16,14,12", std::string("problem=") + problem};
    auto keys = [&](std::vector<std::string> more) {
      more.insert(more.begin(), base.begin(), base.end());
      return more;
    };
    const auto cg = run_poisson(1, keys({"solver=cg"}), "dcdm-cg");
    const auto identity = run_poisson(2, keys({"solver=dcdm", "dcdm_direction=identity"}), "dcdm-identity");
    const auto vcycle = run_poisson(3, keys({"solver=dcdm", "dcdm_direction=vcycle"}), "dcdm-vcycle");
    for (const auto* r : {&cg, &identity, &vcycle}) {
      ASSERT_EQ(r->run.exit_code, 0) << r->run.output;
      EXPECT_EQ(int_attribute(r->h5, "converged"), 1) << problem;
      EXPECT_LE(double_attribute(r->h5, "relative_residual"), 1.01e-8) << problem;
    }
    const auto cg_iterations = int_attribute(cg.h5, "iterations");
    EXPECT_NEAR(int_attribute(identity.h5, "iterations"), cg_iterations, 1) << problem;
    EXPECT_LE(4 * int_attribute(vcycle.h5, "iterations"), cg_iterations) << problem;
    EXPECT_EQ(skein::io::read_string_attribute(vcycle.h5, "/", "solver"), "dcdm");
    EXPECT_EQ(skein::io::read_string_attribute(vcycle.h5, "/", "dcdm_direction"), "vcycle");
    EXPECT_GT(double_attribute(vcycle.h5, "direction_seconds"), 0.0);
    EXPECT_LE(double_attribute(vcycle.h5, "direction_seconds"), double_attribute(vcycle.h5, "solve_seconds"));
    const auto history = skein::io::read_dataset<double>(vcycle.h5, "/history/residual");
    EXPECT_EQ(static_cast<std::int64_t>(history.size()), int_attribute(vcycle.h5, "iterations") + 1);
    const auto reference = skein::io::read_dataset<double>(cg.h5, "/solution");
    EXPECT_LE(max_abs_difference(reference, skein::io::read_dataset<double>(identity.h5, "/solution")),
              1e-5 * max_abs(reference));
    EXPECT_LE(max_abs_difference(reference, skein::io::read_dataset<double>(vcycle.h5, "/solution")),
              1e-5 * max_abs(reference));
  }
}

// dcdm_stall_iters = n stops DCDM at the first iteration k whose relative residual is above 0.99 times the
// one n iterations earlier (found here from the written history), not converged and saying why; the
// identity direction (CG, whose residual plateaus) stalls early at small n, at 1 and 2 ranks alike.
TEST(PoissonDcdm, StallStopsWhereTheHistoryStopsFalling) {
  for (const int n : {1, 10}) {
    std::int64_t first_ranks_iterations = -1;
    for (const int ranks : {1, 2}) {
      const auto r = run_poisson(ranks,
                                 {"grid=16", "problem=smoke", "tol=1e-10", "solver=dcdm",
                                  "dcdm_direction=identity", "dcdm_stall_iters=" + std::to_string(n)},
                                 "dcdm-stall");
      ASSERT_EQ(r.run.exit_code, 0) << r.run.output;
      EXPECT_EQ(int_attribute(r.h5, "converged"), 0);
      EXPECT_EQ(int_attribute(r.h5, "stalled"), 1);
      EXPECT_NE(
          r.run.output.find("stalled: less than 1% gained in the last " + std::to_string(n) + " iterations"),
          std::string::npos)
          << r.run.output;
      const auto history = skein::io::read_dataset<double>(r.h5, "/history/residual");
      std::size_t expected = 0;
      for (std::size_t k = static_cast<std::size_t>(n); k < history.size() && expected == 0; ++k) {
        if (history[k] > 0.99 * history[k - static_cast<std::size_t>(n)]) expected = k;
      }
      ASSERT_GT(expected, 0u) << "the history never stalls";
      EXPECT_EQ(int_attribute(r.h5, "iterations"), static_cast<std::int64_t>(expected)) << n;
      EXPECT_EQ(history.size(), expected + 1);
      if (first_ranks_iterations < 0) first_ranks_iterations = int_attribute(r.h5, "iterations");
      EXPECT_EQ(int_attribute(r.h5, "iterations"), first_ranks_iterations) << ranks << " ranks";
    }
  }
}

namespace {

// A DCDM model file as dcdm-train writes it (jobs/dcdm_model.hpp), with untrained Glorot-uniform weights
// (keyed by `seed`), written here with HDF5's C API. `channels_attribute` differing from `channels`, or
// `nan_weight`, make it corrupt.
struct ModelFile {
  int channels = 4, fine_pairs_before = 1, coarse_pairs = 1, fine_pairs_after = 1;
  int channels_attribute = -1;  // -1: channels
  std::string kind = "dcdm-cnn";
  bool nan_weight = false;
  std::uint64_t seed = 3;
};

void set_int(hid_t group, const char* name, std::int64_t value) {
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(group, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_INT64, &value);
  H5Aclose(a);
  H5Sclose(space);
}

void write_dataset(hid_t file, const std::string& name, const std::vector<hsize_t>& shape,
                   const std::vector<float>& values) {
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  const hid_t space = H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr);
  const hid_t d = H5Dcreate2(file, name.c_str(), H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Dclose(d);
  H5Sclose(space);
  H5Pclose(lcpl);
}

void write_model_file(const std::string& path, const ModelFile& m) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  const hid_t group = H5Gcreate2(file, "/model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const hid_t text = H5Tcopy(H5T_C_S1);
  H5Tset_size(text, H5T_VARIABLE);
  const hid_t scalar = H5Screate(H5S_SCALAR);
  const hid_t kind = H5Acreate2(group, "kind", text, scalar, H5P_DEFAULT, H5P_DEFAULT);
  const char* kind_text = m.kind.c_str();
  H5Awrite(kind, text, &kind_text);
  H5Aclose(kind);
  H5Sclose(scalar);
  H5Tclose(text);
  const int c = m.channels;
  const int convs = 3 + 2 * (m.fine_pairs_before + m.coarse_pairs + m.fine_pairs_after);
  set_int(group, "format_version", 1);
  set_int(group, "channels", m.channels_attribute < 0 ? c : m.channels_attribute);
  set_int(group, "fine_pairs_before", m.fine_pairs_before);
  set_int(group, "coarse_pairs", m.coarse_pairs);
  set_int(group, "fine_pairs_after", m.fine_pairs_after);
  {
    const hsize_t three = 3;
    const std::int64_t grid[3] = {8, 8, 8};
    const hid_t space = H5Screate_simple(1, &three, nullptr);
    const hid_t a = H5Acreate2(group, "trained_grid", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, grid);
    H5Aclose(a);
    H5Sclose(space);
  }
  std::int64_t count = 0;
  std::uint64_t draw = m.seed;
  for (int l = 0; l <= convs; ++l) {
    const int in = l == 0 ? 1 : c;
    const bool output = l == convs;
    const std::vector<hsize_t> shape =
        output ? std::vector<hsize_t>{1, hsize_t(c)} : std::vector<hsize_t>{hsize_t(c), hsize_t(in), 3, 3, 3};
    std::size_t size = 1;
    for (const auto s : shape) size *= s;
    const double limit = output ? 1.0 : std::sqrt(6.0 / (27.0 * in + 27.0 * c));
    std::vector<float> weights(size);
    for (auto& w : weights) w = static_cast<float>(limit * uniform(++draw));
    if (m.nan_weight && l == 2) weights[5] = std::nanf("");
    char name[32];
    std::snprintf(name, sizeof name, output ? "/model/output" : "/model/conv%02d", l);
    write_dataset(file, std::string(name) + "/weight", shape, weights);
    write_dataset(file, std::string(name) + "/bias", {output ? 1u : hsize_t(c)},
                  std::vector<float>(output ? 1 : c, 0.0f));
    count += static_cast<std::int64_t>(size) + (output ? 1 : c);
  }
  set_int(group, "parameter_count", count);
  H5Gclose(group);
  H5Fclose(file);
}

}  // namespace

// A model (untrained: these tests are about the plumbing, not the network's quality) trained on 8^3 runs on
// a 16x14x12 grid at 1 and 3 ranks: the same residual history (distributed inference equals single-rank
// inference to float rounding), the model and the inference time recorded.
TEST(PoissonDcdm, ModelRunsOnAnotherGridAtAnyRankCount) {
  const std::string model = make_temp_dir("poisson-model") + "/model.h5";
  write_model_file(model, {});
  std::vector<std::vector<double>> histories;
  for (const int ranks : {1, 3}) {
    const auto r = run_poisson(
        ranks,
        {"grid=16,14,12", "problem=smoke", "solver=dcdm", "model=" + model, "max_iters=6", "tol=1e-12"},
        "dcdm-model");
    ASSERT_EQ(r.run.exit_code, 0) << r.run.output;
    EXPECT_EQ(int_attribute(r.h5, "iterations"), 6);
    EXPECT_EQ(int_attribute(r.h5, "converged"), 0);
    EXPECT_EQ(skein::io::read_string_attribute(r.h5, "/", "model"), model);
    EXPECT_GT(double_attribute(r.h5, "direction_seconds_per_iteration"), 0.0);
    EXPECT_NE(r.run.output.find("trained on 8x8x8"), std::string::npos) << r.run.output;
    histories.push_back(skein::io::read_dataset<double>(r.h5, "/history/residual"));
  }
  ASSERT_EQ(histories[0].size(), 7u);
  ASSERT_EQ(histories[1].size(), 7u);
  for (std::size_t i = 0; i < 7; ++i) EXPECT_NEAR(histories[1][i], histories[0][i], 1e-4 * histories[0][i]);
  EXPECT_LT(histories[0].back(), histories[0].front());
}

TEST(PoissonDcdm, BadModelFilesAreDataErrors) {
  const std::string dir = make_temp_dir("poisson-bad-model");
  struct Case {
    std::string name;
    ModelFile model;
    std::string expect;
  };
  ModelFile wrong_kind, misfit, nan;
  wrong_kind.kind = "keras";
  misfit.channels_attribute = 8;
  nan.nan_weight = true;
  const std::vector<Case> cases = {{"wrong kind", wrong_kind, "kind is 'keras'"},
                                   {"channels that do not fit the weights", misfit, "does not fit"},
                                   {"NaN weight", nan, "non-finite"}};
  for (const auto& c : cases) {
    const std::string path = dir + "/" + std::to_string(&c - cases.data()) + ".h5";
    write_model_file(path, c.model);
    const auto r = run_poisson(2, {"grid=8", "solver=dcdm", "model=" + path}, "bad-model");
    EXPECT_EQ(r.run.exit_code, 65) << c.name << "\n" << r.run.output;
    EXPECT_NE(r.run.output.find(c.expect), std::string::npos) << c.name << "\n" << r.run.output;
    EXPECT_NE(r.run.output.find(path), std::string::npos) << c.name << "\n" << r.run.output;
  }
  const auto missing = run_poisson(2, {"grid=8", "solver=dcdm", "model=" + dir + "/none.h5"}, "no-model");
  EXPECT_EQ(missing.run.exit_code, 65) << missing.run.output;
  EXPECT_NE(missing.run.output.find(dir + "/none.h5"), std::string::npos) << missing.run.output;
  const std::string text = dir + "/text.h5";
  write_problem_file(dir + "/problem.h5", {2, 2, 2}, std::vector<std::uint8_t>(8, 0),
                     std::vector<double>(8, 0.0));
  const auto not_model =
      run_poisson(2, {"grid=8", "solver=dcdm", "model=" + dir + "/problem.h5"}, "not-model");
  EXPECT_EQ(not_model.run.exit_code, 65) << not_model.run.output;
  EXPECT_NE(not_model.run.output.find("no /model"), std::string::npos) << not_model.run.output;
  {
    FILE* f = std::fopen(text.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("not HDF5\n", f);
    std::fclose(f);
  }
  const auto corrupt = run_poisson(2, {"grid=8", "solver=dcdm", "model=" + text}, "corrupt-model");
  EXPECT_EQ(corrupt.run.exit_code, 65) << corrupt.run.output;
  EXPECT_NE(corrupt.run.output.find("not an HDF5 file"), std::string::npos) << corrupt.run.output;
}
