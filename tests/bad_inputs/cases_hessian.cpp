// hessian's model and data readers: groups, attributes, dataset types and shapes, values.
#include "tests/bad_inputs/catalogue.hpp"
#include "tests/bad_inputs/good_inputs.hpp"
#include "tests/e2e/cli_runner.hpp"

#include <cmath>

namespace skein::bad_inputs {

namespace {

std::vector<std::string> bad_model(Workspace& ws, H5Change change) {
  return hessian_good(ws, change, {});
}
std::vector<std::string> bad_data(Workspace& ws, H5Change change) {
  return hessian_good(ws, {}, change);
}

std::vector<double> weights(std::size_t n) {
  std::vector<double> w(n);
  for (std::size_t i = 0; i < n; ++i) w[i] = 0.3 * uniform(500 + i);
  return w;
}

}  // namespace

std::vector<Case> hessian_cases() {
  return {
      {"hessian",
       "no_model_group",
       [](Workspace& ws) {
         auto args = hessian_good(ws);
         H5File file(ws.in + "/model.h5");  // rewritten: weights at the root, no /model group
         file.numbers("/W0", {6, 4}, H5T_IEEE_F32LE, weights(24));
         return args;
       },
       65,
       {"{in}/model.h5: no /model group"}},
      {"hessian",
       "missing_attribute",
       [](Workspace& ws) {
         return bad_model(ws, {{"activation"}, nullptr});
       },
       65,
       {"{in}/model.h5: /model has no attribute 'activation'"}},
      {"hessian",
       "attribute_wrong_type",
       [](Workspace& ws) {
         return bad_model(ws, {{"loss"}, [](H5File& f) { f.int_attribute("/model", "loss", {1}); }});
       },
       65,
       {"{in}/model.h5: attribute loss on /model is not a string"}},
      {"hessian",
       "unknown_activation",
       [](Workspace& ws) {
         return bad_model(
             ws, {{"activation"}, [](H5File& f) { f.string_attribute("/model", "activation", "swish"); }});
       },
       65,
       {"{in}/model.h5: /model:", "swish"}},
      {"hessian",
       "weight_1d",
       [](Workspace& ws) {
         return bad_model(
             ws, {{"W1"}, [](H5File& f) { f.numbers("/model/W1", {18}, H5T_IEEE_F32LE, weights(18)); }});
       },
       65,
       {"{in}/model.h5: /model/W1 is 18; a weight matrix is 2-D"}},
      {"hessian",
       "missing_bias",
       [](Workspace& ws) {
         return bad_model(ws, {{"b1"}, nullptr});
       },
       65,
       {"{in}/model.h5: /model/W1 has no bias /model/b1"}},
      {"hessian",
       "shapes_do_not_chain",
       [](Workspace& ws) {
         return bad_model(ws, {{"W1"}, [](H5File& f) {
                                 f.numbers("/model/W1", {3, 5}, H5T_IEEE_F32LE, weights(15));
                               }});
       },
       65,
       {"{in}/model.h5: layer shapes do not chain: /model/W1 is 3x5"}},
      {"hessian",
       "layer_sizes_disagree",
       [](Workspace& ws) {
         return bad_model(ws, {{}, [](H5File& f) { f.int_attribute("/model", "layer_sizes", {4, 7, 3}); }});
       },
       65,
       {"{in}/model.h5: /model@layer_sizes says 4-7-3 but the weights are 4-6-3"}},
      {"hessian",
       "inf_weight",
       [](Workspace& ws) {
         return bad_model(ws, {{"b0"}, [](H5File& f) {
                                 auto b = weights(6);
                                 b[4] = -HUGE_VAL;
                                 f.numbers("/model/b0", {6}, H5T_IEEE_F32LE, b);
                               }});
       },
       65,
       {"{in}/model.h5: /model/b0 holds a non-finite value (-inf) at flat index 4"}},
      {"hessian",
       "x_nan",
       [](Workspace& ws) {
         return bad_data(ws, {{"/X"}, [](H5File& f) {
                                auto x = hessian_x();
                                x[17 * 4 + 2] = std::nan("");
                                f.numbers("/X", {30, 4}, H5T_IEEE_F32LE, x);
                              }});
       },
       65,
       {"{in}/data.h5: /X row 17, column 2 is nan"}},
      {"hessian",
       "x_3d",
       [](Workspace& ws) {
         return bad_data(ws, {{"/X"}, [](H5File& f) {
                                f.numbers("/X", {30, 2, 2}, H5T_IEEE_F32LE, hessian_x());
                              }});
       },
       65,
       {"{in}/data.h5: /X is 30x2x2; it must be 2-D"}},
      {"hessian",
       "x_no_rows",
       [](Workspace& ws) {
         return bad_data(ws, {{"/X", "/y"}, [](H5File& f) {
                                f.numbers("/X", {0, 4}, H5T_IEEE_F32LE, {});
                                f.numbers("/y", {0}, H5T_STD_I64LE, {});
                              }});
       },
       65,
       {"{in}/data.h5: /X has no rows"}},
      {"hessian",
       "label_not_integer",
       [](Workspace& ws) {
         return bad_data(ws, {{"/y"}, [](H5File& f) {
                                auto y = hessian_labels();
                                y[11] = 1.5;
                                f.doubles("/y", {30}, y);
                              }});
       },
       65,
       {"{in}/data.h5: /y row 11 is label 1.5, outside the model's 3 classes"}},
      {"hessian",
       "labels_are_strings",
       [](Workspace& ws) {
         return bad_data(ws, {{"/y"}, [](H5File& f) {
                                std::vector<std::string> y(30, "cat");
                                f.strings("/y", y);
                              }});
       },
       65,
       {"{in}/data.h5: /y does not hold numbers"}},
      {"hessian",
       "missing_data_file",
       [](Workspace& ws) { return with(hessian_good(ws), "--hessian.data=" + ws.in + "/none.h5"); },
       65,
       {"cannot open {in}/none.h5: No such file or directory"}},
      {"hessian",
       "x_nan_since_checkpoint",
       [](Workspace& ws) { return hessian_good(ws); },
       65,
       {"{in}/data.h5: /X row 3, column 0 is nan"},
       "",
       Needs::nothing,
       [](Workspace& ws) {
         H5File file(ws.in + "/data.h5");
         auto x = hessian_x();
         x[3 * 4] = std::nan("");
         file.numbers("/X", {30, 4}, H5T_IEEE_F32LE, x);
         file.numbers("/y", {30}, H5T_STD_I64LE, hessian_labels());
       }},
  };
}

}  // namespace skein::bad_inputs
