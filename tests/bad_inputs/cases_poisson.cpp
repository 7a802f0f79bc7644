// poisson's problem=file reader: the HDF5 file itself (not HDF5, empty, truncated), its datasets' types,
// shapes and values.
#include "tests/bad_inputs/catalogue.hpp"
#include "tests/bad_inputs/good_inputs.hpp"
#include "tests/e2e/cli_runner.hpp"

#include <cmath>
#include <filesystem>

namespace skein::bad_inputs {

namespace {

constexpr hsize_t kN = kPoissonN;

H5Change replace(const std::string& name, std::function<void(H5File&)> add) {
  return H5Change{{name}, std::move(add)};
}

}  // namespace

std::vector<Case> poisson_cases() {
  return {
      {"poisson",
       "not_hdf5",
       [](Workspace& ws) {
         auto args = poisson_good(ws);
         test::write_file(ws.in + "/problem.h5", "cell_type,rhs\n0,1.0\n");
         return args;
       },
       65,
       {"{in}/problem.h5 is not an HDF5 file"}},
      {"poisson",
       "empty_file",
       [](Workspace& ws) {
         auto args = poisson_good(ws);
         test::write_file(ws.in + "/problem.h5", "");
         return args;
       },
       65,
       {"{in}/problem.h5 is not an HDF5 file"}},
      {"poisson",
       "truncated_hdf5",
       [](Workspace& ws) {
         auto args = poisson_good(ws);
         truncate_file(ws.in + "/problem.h5", file_size(ws.in + "/problem.h5") - 600);
         return args;
       },
       65,
       {"{in}/problem.h5"}},
      {"poisson",
       "missing_dataset",
       [](Workspace& ws) {
         return poisson_good(ws, {{"/cell_type"}, nullptr});
       },
       65,
       {"{in}/problem.h5: no dataset /cell_type"}},
      {"poisson",
       "dataset_is_a_group",
       [](Workspace& ws) { return poisson_good(ws, replace("/rhs", [](H5File& f) { f.group("/rhs"); })); },
       65,
       {"{in}/problem.h5: /rhs is not a dataset"}},
      {"poisson",
       "wrong_shape",
       [](Workspace& ws) {
         return poisson_good(ws, replace("/rhs", [](H5File& f) {
                               f.doubles("/rhs", {kN, kN * kN}, poisson_rhs());
                             }));
       },
       65,
       {"{in}/problem.h5: /rhs has shape 6x36 but poisson.grid is 6x6x6"}},
      {"poisson",
       "cell_type_float",
       [](Workspace& ws) {
         return poisson_good(ws, replace("/cell_type", [](H5File& f) {
                               f.doubles("/cell_type", {kN, kN, kN}, poisson_cells());
                             }));
       },
       65,
       {"{in}/problem.h5: /cell_type holds floating-point values"}},
      {"poisson",
       "cell_type_negative",
       // A signed cell type of -1 must not become 0 (fluid) in the conversion to uint8.
       [](Workspace& ws) {
         return poisson_good(ws, replace("/cell_type", [](H5File& f) {
                               auto cells = poisson_cells();
                               cells[(1 * kN + 2) * kN + 3] = -1;
                               f.numbers("/cell_type", {kN, kN, kN}, H5T_STD_I16LE, cells);
                             }));
       },
       65,
       {"{in}/problem.h5: /cell_type holds -1 at [1, 2, 3], outside the range of the uint8 values"}},
      {"poisson",
       "cell_type_too_large",
       [](Workspace& ws) {
         return poisson_good(ws, replace("/cell_type", [](H5File& f) {
                               auto cells = poisson_cells();
                               cells[(1 * kN + 2) * kN + 3] = 258;
                               f.numbers("/cell_type", {kN, kN, kN}, H5T_STD_I32LE, cells);
                             }));
       },
       65,
       {"{in}/problem.h5: /cell_type holds 258 at [1, 2, 3], outside the range of the uint8 values"}},
      {"poisson",
       "rhs_nan",
       [](Workspace& ws) {
         return poisson_good(ws, replace("/rhs", [](H5File& f) {
                               auto rhs = poisson_rhs();
                               rhs[(4 * kN + 1) * kN + 5] = std::nan("");
                               f.doubles("/rhs", {kN, kN, kN}, rhs);
                             }));
       },
       65,
       {"{in}/problem.h5: /rhs is not finite (nan) at (i,j,k) = (4,1,5)"}},
      {"poisson",
       "rhs_strings",
       [](Workspace& ws) {
         return poisson_good(ws, replace("/rhs", [](H5File& f) { f.strings("/rhs", {"1.0", "2.0"}); }));
       },
       65,
       {"{in}/problem.h5: /rhs"}},
      {"poisson",
       "dcdm_model_not_hdf5",
       [](Workspace& ws) {
         test::write_file(ws.in + "/model.h5", "not a model\n");
         return with(with(poisson_good(ws), "--poisson.solver=dcdm"),
                     "--poisson.model=" + ws.in + "/model.h5");
       },
       65,
       {"{in}/model.h5 is not an HDF5 file"}},
      {"poisson",
       "dcdm_model_is_a_hessian_model",
       // A model file of another job: /model is there, its attributes are not.
       [](Workspace& ws) {
         auto args = poisson_good(ws);
         Workspace other = ws;
         other.in = ws.in + "/hessian";
         std::filesystem::create_directories(other.in);
         hessian_good(other);
         return with(with(args, "--poisson.solver=dcdm"), "--poisson.model=" + other.in + "/model.h5");
       },
       65,
       {"model file {in}/hessian/model.h5: /model has no attribute 'kind'"}},
      {"poisson",
       "rhs_inf_since_checkpoint",
       [](Workspace& ws) { return poisson_good(ws); },
       65,
       {"{in}/problem.h5: /rhs is not finite (inf)"},
       "",
       Needs::nothing,
       [](Workspace& ws) {
         H5File file(ws.in + "/problem.h5");
         file.numbers("/cell_type", {kN, kN, kN}, H5T_STD_U8LE, poisson_cells());
         auto rhs = poisson_rhs();
         rhs[7] = HUGE_VAL;
         file.doubles("/rhs", {kN, kN, kN}, rhs);
       }},
  };
}

}  // namespace skein::bad_inputs
