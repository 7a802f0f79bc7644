// The hessian job end to end through the `skein` executable: the same spectrum at 1, 2 and 3 ranks, a fixed
// minibatch, training with analyses at several epochs, kill -9 mid-Lanczos and --resume on another rank
// count, and every bad input's exit code and message.
#include "io/h5_summary.hpp"
#include "tests/e2e/cli_runner.hpp"
#include "tests/e2e/hessian_test_inputs.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

using namespace skein::test;

namespace {

struct ModelSpec {
  std::vector<int> sizes = {8, 16, 4};
  std::string activation = "tanh";
  std::string loss = "cross_entropy";
  int broken_layer = -1;  // W of this layer gets one input too many (shapes that do not chain)
};

// A model file as tools/hessian/make_model.py writes it: /model/W{l} (out x in), /model/b{l}, float32.
void write_model(const std::string& path, const ModelSpec& spec) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  const hid_t group = H5Gcreate2(file, "/model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  write_string_attribute(group, "activation", spec.activation);
  write_string_attribute(group, "loss", spec.loss);
  std::uint64_t counter = 1000;
  for (std::size_t l = 0; l + 1 < spec.sizes.size(); ++l) {
    const hsize_t out = spec.sizes[l + 1],
                  in = spec.sizes[l] + (static_cast<int>(l) == spec.broken_layer ? 1 : 0);
    const float scale = 1.5f / std::sqrt(static_cast<float>(in));
    std::vector<float> w(out * in), b(out);
    for (auto& v : w) v = scale * static_cast<float>(uniform(counter++));
    for (auto& v : b) v = scale * static_cast<float>(uniform(counter++));
    write_dataset(file, "/model/W" + std::to_string(l), {out, in}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                  w.data());
    write_dataset(file, "/model/b" + std::to_string(l), {out}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, b.data());
  }
  H5Gclose(group);
  H5Fclose(file);
}

struct DataSpec {
  hsize_t rows = 120;
  hsize_t features = 8;
  int classes = 4;
  hsize_t label_rows = 0;  // 0: rows
  std::int64_t bad_label_row = -1;
  std::int64_t nan_row = -1;
};

// /X float32 (rows x features), /y int64 labels: a noisy class-dependent mean, learnable in a few epochs.
void write_data(const std::string& path, const DataSpec& spec) {
  std::vector<float> x(spec.rows * spec.features);
  const hsize_t label_rows = spec.label_rows ? spec.label_rows : spec.rows;
  std::vector<std::int64_t> y(label_rows);
  for (hsize_t i = 0; i < label_rows; ++i) {
    y[i] = static_cast<std::int64_t>((uniform(5000 + i) + 1.0) * 0.5 * spec.classes) % spec.classes;
  }
  for (hsize_t i = 0; i < spec.rows; ++i) {
    for (hsize_t j = 0; j < spec.features; ++j) {
      const double mean = (j % spec.classes) == static_cast<hsize_t>(y[i % label_rows]) ? 1.0 : 0.0;
      x[i * spec.features + j] = static_cast<float>(mean + 0.7 * uniform(9000 + i * 64 + j));
    }
  }
  if (spec.bad_label_row >= 0) y[spec.bad_label_row] = spec.classes;
  if (spec.nan_row >= 0) x[spec.nan_row * spec.features + 1] = std::numeric_limits<float>::quiet_NaN();
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  write_dataset(file, "/X", {spec.rows, spec.features}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, x.data());
  write_dataset(file, "/y", {label_rows}, H5T_STD_I64LE, H5T_NATIVE_INT64, y.data());
  H5Fclose(file);
}

struct Inputs {
  std::string model, data;
};

Inputs make_inputs(const std::string& tag, const ModelSpec& model = {}, const DataSpec& data = {}) {
  const std::string dir = make_temp_dir("hessian-in-" + tag);
  Inputs inputs{dir + "/model.h5", dir + "/data.h5"};
  write_model(inputs.model, model);
  write_data(inputs.data, data);
  return inputs;
}

struct Outcome {
  RunResult run;
  std::string out;
  std::string h5;
};

Outcome run_hessian(int ranks, const Inputs& inputs, const std::vector<std::string>& keys,
                    const std::string& tag, const std::vector<std::string>& extra = {}) {
  const std::string out = make_temp_dir("hessian-" + tag);
  std::vector<std::string> args = {
      "run", "hessian", "--out", out, "--hessian.model=" + inputs.model, "--hessian.data=" + inputs.data};
  for (const auto& key : keys) args.push_back("--hessian." + key);
  for (const auto& arg : extra) args.push_back(arg);
  return {run_skein(ranks, args, 120), out, out + "/hessian.h5"};
}

std::vector<double> dataset(const std::string& h5, const std::string& name) {
  return skein::io::read_dataset<double>(h5, name);
}

double relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    worst = std::max(worst, std::fabs(a[i] - b[i]));
    scale = std::max(scale, std::fabs(b[i]));
  }
  return scale > 0 ? worst / scale : worst;
}

const std::vector<std::string> kSpectrumKeys = {
    "top_k=5",       "bottom_k=3",   "tol=1e-9",           "trace_samples=20",
    "slq_vectors=3", "slq_steps=20", "density_points=1000"};

TEST(HessianCli, ListedWithItsKeys) {
  const RunResult r = run_skein(1, {"run", "hessian", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const char* key :
       {"top_k", "bottom_k", "operator", "precision", "slq_steps", "train_epochs", "analyze_at"}) {
    EXPECT_NE(r.output.find(key), std::string::npos) << key << "\n" << r.output;
  }
}

// The spectrum, trace and density of one run are the same at 1, 2 and 3 ranks (the samples are sharded;
// only the order of the per-rank sums changes).
TEST(HessianRanks, SameSpectrumAtOneTwoThreeRanks) {
  const Inputs inputs = make_inputs("ranks");
  const Outcome one = run_hessian(1, inputs, kSpectrumKeys, "np1");
  ASSERT_EQ(one.run.exit_code, 0) << one.run.output;
  EXPECT_NE(one.run.output.find("eigenpairs converged"), std::string::npos) << one.run.output;
  const auto top = dataset(one.h5, "/eigenvalues/top");
  const auto bottom = dataset(one.h5, "/eigenvalues/bottom");
  ASSERT_EQ(top.size(), 5u);
  ASSERT_EQ(bottom.size(), 3u);
  EXPECT_TRUE(std::is_sorted(top.rbegin(), top.rend()));
  EXPECT_TRUE(std::is_sorted(bottom.begin(), bottom.end()));
  EXPECT_GT(top.front(), bottom.front());
  EXPECT_EQ(skein::io::read_int64_attribute(one.h5, "/", "parameters"), 8 * 16 + 16 + 16 * 4 + 4);
  EXPECT_EQ(skein::io::read_int64_attribute(one.h5, "/trace", "samples"), 20);
  const auto grid = dataset(one.h5, "/density/grid"), values = dataset(one.h5, "/density/values");
  ASSERT_EQ(grid.size(), 1000u);
  double integral = 0;
  for (std::size_t i = 1; i < grid.size(); ++i)
    integral += 0.5 * (values[i] + values[i - 1]) * (grid[i] - grid[i - 1]);
  EXPECT_NEAR(integral, 1.0, 1e-3);
  for (int ranks : {2, 3}) {
    const Outcome other = run_hessian(ranks, inputs, kSpectrumKeys, "np" + std::to_string(ranks));
    ASSERT_EQ(other.run.exit_code, 0) << other.run.output;
    EXPECT_LT(relative_difference(dataset(other.h5, "/eigenvalues/top"), top), 1e-10) << ranks;
    EXPECT_LT(relative_difference(dataset(other.h5, "/eigenvalues/bottom"), bottom), 1e-10) << ranks;
    EXPECT_LT(relative_difference(dataset(other.h5, "/trace/samples"), dataset(one.h5, "/trace/samples")),
              1e-10);
    EXPECT_LT(relative_difference(dataset(other.h5, "/density/values"), values), 1e-8) << ranks;
  }
}

// batch_size analyses a fixed seeded minibatch, the same one at any rank count.
TEST(HessianRanks, FixedMinibatchIsTheSameAtAnyRankCount) {
  const Inputs inputs = make_inputs("batch");
  const std::vector<std::string> keys = {"top_k=3", "trace_samples=0", "slq_vectors=0", "batch_size=37",
                                         "tol=1e-9"};
  const Outcome one = run_hessian(1, inputs, keys, "batch1");
  ASSERT_EQ(one.run.exit_code, 0) << one.run.output;
  EXPECT_EQ(skein::io::read_int64_attribute(one.h5, "/", "analysed_samples"), 37);
  const Outcome three = run_hessian(3, inputs, keys, "batch3");
  ASSERT_EQ(three.run.exit_code, 0) << three.run.output;
  EXPECT_LT(relative_difference(dataset(three.h5, "/eigenvalues/top"), dataset(one.h5, "/eigenvalues/top")),
            1e-10);
  const Outcome all =
      run_hessian(1, inputs, {"top_k=3", "trace_samples=0", "slq_vectors=0", "tol=1e-9"}, "batch-all");
  ASSERT_EQ(all.run.exit_code, 0) << all.run.output;
  EXPECT_GT(relative_difference(dataset(all.h5, "/eigenvalues/top"), dataset(one.h5, "/eigenvalues/top")),
            1e-6)
      << "a minibatch's Hessian differs from the full data's";
}

// Training with analyses at epochs 0 and 3: one group per epoch, the loss falls, the root holds the last.
TEST(HessianTraining, AnalysesAtSeveralEpochs) {
  const Inputs inputs = make_inputs("train");
  const std::vector<std::string> keys = {"top_k=2",        "trace_samples=4", "slq_vectors=0",
                                         "train_epochs=3", "analyze_at=0,3",  "lr=0.01",
                                         "train_batch=16"};
  const Outcome one = run_hessian(1, inputs, keys, "train1");
  ASSERT_EQ(one.run.exit_code, 0) << one.run.output;
  const double before = skein::io::read_double_attribute(one.h5, "/epoch_0", "loss_value");
  const double after = skein::io::read_double_attribute(one.h5, "/epoch_3", "loss_value");
  EXPECT_LT(after, 0.8 * before);
  EXPECT_EQ(skein::io::read_double_attribute(one.h5, "/", "loss_value"), after);
  EXPECT_EQ(dataset(one.h5, "/eigenvalues/top"), dataset(one.h5, "/epoch_3/eigenvalues/top"));
  const Outcome two = run_hessian(2, inputs, keys, "train2");
  ASSERT_EQ(two.run.exit_code, 0) << two.run.output;
  EXPECT_LT(relative_difference(dataset(two.h5, "/epoch_3/eigenvalues/top"),
                                dataset(one.h5, "/epoch_3/eigenvalues/top")),
            1e-8);
}

// kill -9 of one rank in the middle of the Lanczos iteration; --resume on another rank count continues from
// the last checkpoint (basis vectors and projected matrix) to the uninterrupted run's eigenvalues.
TEST(HessianCheckpoint, KilledMidLanczosResumesOnAnotherRankCount) {
  const Inputs inputs = make_inputs("ckpt");
  const std::vector<std::string> keys = {"top_k=4",         "bottom_k=2",    "lanczos_steps=14", "tol=1e-10",
                                         "trace_samples=6", "slq_vectors=2", "slq_steps=10"};
  const Outcome straight = run_hessian(1, inputs, keys, "straight");
  ASSERT_EQ(straight.run.exit_code, 0) << straight.run.output;
  ASSERT_GT(skein::io::read_int64_attribute(straight.h5, "/eigenvalues", "restarts"), 0)
      << "the test must cross a thick restart";
  for (const auto& [first, second] : {std::pair<int, int>{3, 2}, std::pair<int, int>{2, 1}}) {
    const std::string out = make_temp_dir("hessian-kill");
    std::vector<std::string> args = {"run",
                                     "hessian",
                                     "--out",
                                     out,
                                     "--checkpoint-steps",
                                     "5",
                                     "--hessian.model=" + inputs.model,
                                     "--hessian.data=" + inputs.data};
    for (const auto& key : keys) args.push_back("--hessian." + key);
    auto killed = start_skein(first, args, {{"SKEIN_FAULT", "kill:1:23"}});
    const auto ended = killed.wait(120);
    ASSERT_NE(ended.exit_code, 0) << ended.output;
    ASSERT_TRUE(file_exists(out + "/checkpoint.h5")) << ended.output;
    ASSERT_FALSE(file_exists(out + "/hessian.h5"));
    args.push_back("--resume");
    const RunResult resumed = run_skein(second, args, 120);
    ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
    EXPECT_NE(resumed.output.find("resumed at epoch 0, eigenpairs after 18 products"), std::string::npos)
        << resumed.output;
    const std::string h5 = out + "/hessian.h5";
    EXPECT_LT(relative_difference(dataset(h5, "/eigenvalues/top"), dataset(straight.h5, "/eigenvalues/top")),
              1e-9);
    EXPECT_LT(
        relative_difference(dataset(h5, "/eigenvalues/bottom"), dataset(straight.h5, "/eigenvalues/bottom")),
        1e-9);
    EXPECT_LT(relative_difference(dataset(h5, "/trace/samples"), dataset(straight.h5, "/trace/samples")),
              1e-9);
    EXPECT_EQ(skein::io::read_int64_attribute(h5, "/", "hvp_count"),
              skein::io::read_int64_attribute(straight.h5, "/", "hvp_count"));
  }
}

struct BadCase {
  std::string name;
  std::function<Inputs()> inputs;
  std::vector<std::string> keys;
  int exit_code;
  std::string expect;
};

// Every bad input ends every rank with a message naming the file and what is wrong.
TEST(HessianInputs, BadInputsAreClearErrors) {
  const std::vector<BadCase> cases = {
      {"shapes do not chain",
       [] {
         return make_inputs("chain", ModelSpec{{8, 16, 4}, "tanh", "cross_entropy", 1});
       },
       {},
       65,
       "layer shapes do not chain: /model/W1 is 4x17"},
      {"unknown activation",
       [] {
         return make_inputs("act", ModelSpec{{8, 16, 4}, "swish", "cross_entropy"});
       },
       {},
       65,
       "swish"},
      {"unknown loss",
       [] {
         return make_inputs("loss", ModelSpec{{8, 16, 4}, "tanh", "hinge"});
       },
       {},
       65,
       "hinge"},
      {"label out of range",
       [] {
         return make_inputs("label", {}, DataSpec{120, 8, 4, 0, 77});
       },
       {},
       65,
       "/y row 77 is label 4, outside the model's 4 classes"},
      {"NaN in X",
       [] {
         return make_inputs("nan", {}, DataSpec{120, 8, 4, 0, -1, 101});
       },
       {},
       65,
       "/X row 101, column 1 is nan"},
      {"rows differ",
       [] {
         return make_inputs("rows", {}, DataSpec{120, 8, 4, 100});
       },
       {},
       65,
       "/y has 100 rows but /X has 120"},
      {"features differ",
       [] {
         return make_inputs("features", {}, DataSpec{120, 9, 4});
       },
       {},
       65,
       "/X has 9 features per row but the model's first layer takes 8"},
      {"top_k too large",
       [] { return make_inputs("topk"); },
       {"top_k=300"},
       2,
       "top_k + bottom_k = 300 eigenpairs asked of a 212-parameter model"},
      {"nothing to do",
       [] { return make_inputs("nothing"); },
       {"top_k=0", "trace_samples=0", "slq_vectors=0"},
       2,
       "nothing to compute"},
      {"missing model",
       [] {
         return Inputs{"/nonexistent/model.h5", make_inputs("missing").data};
       },
       {},
       65,
       "/nonexistent/model.h5"},
  };
  for (const auto& c : cases) {
    for (int ranks : {1, 3}) {
      const Outcome r = run_hessian(ranks, c.inputs(), c.keys, "bad");
      EXPECT_EQ(r.run.exit_code, c.exit_code) << c.name << " at " << ranks << " ranks\n" << r.run.output;
      EXPECT_NE(r.run.output.find(c.expect), std::string::npos) << c.name << "\n" << r.run.output;
      EXPECT_FALSE(file_exists(r.h5)) << c.name;
    }
  }
}

}  // namespace
