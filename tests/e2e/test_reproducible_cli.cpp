// comm.reproducible=true end to end: a run killed (SIGKILL, one rank) at 2 ranks and resumed at 3 writes the
// same bits as the uninterrupted 2-rank run, for poisson (exact Krylov dot products), dcdm-train (exact
// data-parallel gradient sums), cca (exact column-group sums) and hessian (exact row-group sums); and
// uninterrupted runs at 1, 2 and 3 ranks agree bit for bit. Poisson runs CG: mgpcg's automatic level count
// depends on the blocks' sizes (pin mg_levels for mgpcg).
#include "io/h5_reader.hpp"
#include "tests/e2e/cli_runner.hpp"
#include "tests/e2e/hessian_test_inputs.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace skein::test;

namespace {

constexpr const char* kReproducible = "--comm.reproducible=true";

std::vector<std::string> poisson_args(const std::string& out) {
  return {"run",
          "poisson",
          "--out",
          out,
          "--poisson.grid=25,15,13",
          "--poisson.problem=smoke",
          "--poisson.solver=cg",
          "--poisson.tol=1e-10",
          kReproducible};
}

std::vector<std::string> dcdm_train_args(const std::string& out) {
  return {"run",
          "dcdm-train",
          "--out",
          out,
          "--dcdm-train.grid=8",
          "--dcdm-train.ritz_vectors=40",
          "--dcdm-train.train_vectors=15",
          "--dcdm-train.batch_size=5",
          "--dcdm-train.epochs=2",
          "--dcdm-train.channels=8",
          "--dcdm-train.seed=5",
          kReproducible};
}

// A small planted PLINK fileset and a dense Y from `skein run cca-synth` (500 SNPs: 32 column groups of 16;
// 40 Y features: 3 groups, so at 3 ranks each rank owns groups of both views). Made once per test binary.
const std::string& cca_data() {
  static const std::string dir = [] {
    const std::string d = make_temp_dir("repro-cca-data");
    const auto r =
        run_skein(1, {"run", "cca-synth", "--out", d, "--cca-synth.samples=600", "--cca-synth.snps=500",
                      "--cca-synth.y_features=40", "--cca-synth.components=2",
                      "--cca-synth.correlations=0.5,0.4", "--cca-synth.signal_fraction=0.3"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return d;
  }();
  return dir;
}

// Ridge CCA (the batch splits in halves) by EY with the exact (dense GEP) reference and its PCC.
std::vector<std::string> cca_args(const std::string& out) {
  return {"run",
          "cca",
          "--out",
          out,
          "--cca.x=" + cca_data() + "/synth",
          "--cca.y=" + cca_data() + "/synth_y.h5:/Y",
          "--cca.method=ridge",
          "--cca.components=2",
          "--cca.epochs=2",
          "--cca.reference=exact",
          kReproducible};
}

// A 12-24-4 tanh MLP (tools/hessian/make_model.py's layout) and 200 labelled rows of 12 features: 13 row
// groups of 16 (the last of 8), so 2 and 3 ranks split them unevenly. Made once per test binary.
const HessianInputFiles& hessian_inputs() {
  static const HessianInputFiles inputs =
      write_tanh_mlp_inputs(make_temp_dir("repro-hessian-in"), {12, 24, 4}, 200);
  return inputs;
}

// The full hessian pipeline on every sample: the eigenpairs, trace and density before training, one epoch
// of Adam in minibatches of 24 (9 steps, each spread over several row groups), and the analysis again.
std::vector<std::string> hessian_args(const std::string& out) {
  return {"run",
          "hessian",
          "--out",
          out,
          "--hessian.model=" + hessian_inputs().model,
          "--hessian.data=" + hessian_inputs().data,
          "--hessian.top_k=3",
          "--hessian.bottom_k=1",
          "--hessian.lanczos_steps=12",
          "--hessian.tol=1e-8",
          "--hessian.trace_samples=4",
          "--hessian.slq_vectors=1",
          "--hessian.slq_steps=8",
          "--hessian.train_epochs=1",
          "--hessian.train_batch=24",
          "--hessian.lr=0.01",
          "--hessian.analyze_at=0,1",
          kReproducible};
}

// A fixed minibatch of 150 of the 200 samples (uneven shares of the row groups), the Gauss-Newton operator
// in float32.
std::vector<std::string> hessian_minibatch_args(const std::string& out) {
  return {"run",
          "hessian",
          "--out",
          out,
          "--hessian.model=" + hessian_inputs().model,
          "--hessian.data=" + hessian_inputs().data,
          "--hessian.batch_size=150",
          "--hessian.operator=ggn",
          "--hessian.precision=float32",
          "--hessian.top_k=3",
          "--hessian.lanczos_steps=10",
          "--hessian.tol=1e-5",
          "--hessian.trace_samples=4",
          "--hessian.slq_vectors=1",
          "--hessian.slq_steps=8",
          kReproducible};
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Every dataset under `group` (recursively listed by list_datasets) of a and b, bit for bit, as T.
template <class T>
void expect_same_datasets(const std::string& a, const std::string& b, const std::string& group,
                          const std::string& what) {
  const auto names = skein::io::list_datasets(a, group);
  ASSERT_FALSE(names.empty()) << a << " " << group;
  EXPECT_EQ(names, skein::io::list_datasets(b, group));
  for (const auto& name : names)
    EXPECT_TRUE(same_bits(skein::io::read_dataset<T>(a, name), skein::io::read_dataset<T>(b, name)))
        << what << ": " << name;
}

// Runs `args(out)` at 2 ranks with checkpoints every `every` steps, SIGKILLs rank `rank` at step `step`,
// resumes at 3 ranks; returns the resumed output folder.
template <class Args>
std::string killed_and_resumed(Args args, const std::string& tag, const std::string& every, int rank,
                               int step) {
  const std::string out = make_temp_dir(tag);
  auto first = args(out);
  first.push_back("--checkpoint-steps");
  first.push_back(every);
  auto killed =
      start_skein(2, first, {{"SKEIN_FAULT", "kill:" + std::to_string(rank) + ":" + std::to_string(step)}});
  const auto ended = killed.wait(120);
  EXPECT_EQ(ended.exit_code, 137) << ended.output;
  EXPECT_TRUE(file_exists(out + "/checkpoint.h5")) << ended.output;
  auto again = args(out);
  again.push_back("--resume");
  const auto resumed = run_skein(3, again, 120);
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  return out;
}

}  // namespace

TEST(Reproducible, PoissonIsTheSameBitsAtAnyRankCountAndAfterAKillResumedOnThree) {
  std::vector<std::string> outs;
  for (const int ranks : {1, 2, 3}) {
    outs.push_back(make_temp_dir("repro-poisson-" + std::to_string(ranks)));
    const auto r = run_skein(ranks, poisson_args(outs.back()), 120);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  const std::string reference = outs[1] + "/poisson.h5";
  for (const std::size_t other : {0u, 2u}) {
    const std::string h5 = outs[other] + "/poisson.h5";
    EXPECT_TRUE(same_bits(skein::io::read_dataset<double>(reference, "/solution"),
                          skein::io::read_dataset<double>(h5, "/solution")))
        << other + 1 << " ranks";
    EXPECT_TRUE(same_bits(skein::io::read_dataset<double>(reference, "/history/residual"),
                          skein::io::read_dataset<double>(h5, "/history/residual")))
        << other + 1 << " ranks";
  }
  const std::string out = killed_and_resumed(poisson_args, "repro-poisson-kill", "10", 1, 25);
  const std::string h5 = out + "/poisson.h5";
  EXPECT_EQ(skein::io::read_int64_attribute(h5, "/", "ranks"), 3);
  EXPECT_EQ(skein::io::read_int64_attribute(h5, "/", "iterations"),
            skein::io::read_int64_attribute(reference, "/", "iterations"));
  EXPECT_TRUE(same_bits(skein::io::read_dataset<double>(reference, "/solution"),
                        skein::io::read_dataset<double>(h5, "/solution")));
  EXPECT_TRUE(same_bits(skein::io::read_dataset<double>(reference, "/history/residual"),
                        skein::io::read_dataset<double>(h5, "/history/residual")));
}

TEST(Reproducible, DcdmTrainModelIsTheSameBitsAfterAKillAtTwoRanksResumedOnThree) {
  const std::string straight = make_temp_dir("repro-dcdm-2");
  const auto r = run_skein(2, dcdm_train_args(straight), 120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string out = killed_and_resumed(dcdm_train_args, "repro-dcdm-kill", "2", 0, 3);
  expect_same_datasets<float>(straight + "/dcdm-train.h5", out + "/dcdm-train.h5", "/model", "model");
  expect_same_datasets<double>(straight + "/dcdm-train.h5", out + "/dcdm-train.h5", "/history", "history");
}

// cca: column groups owned whole by ranks, each group's partial projections and Gram matrices summed
// exactly, BLAS on one thread: weights, objectives, scores and the exact reference are the same bits at 1,
// 2 and 3 ranks and after a kill at 2 ranks resumed at 3 (without comm.reproducible they differ in the last
// bits at 3 ranks).
TEST(Reproducible, CcaIsTheSameBitsAtAnyRankCountAndAfterAKillResumedOnThree) {
  std::vector<std::string> outs;
  for (const int ranks : {1, 2, 3}) {
    outs.push_back(make_temp_dir("repro-cca-" + std::to_string(ranks)));
    const auto r = run_skein(ranks, cca_args(outs.back()), 120);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  const std::vector<std::string> compared = {"/weights/x",
                                             "/weights/y",
                                             "/correlations/train",
                                             "/correlations/validation",
                                             "/eigenvalues/train",
                                             "/exact/eigenvalues_train",
                                             "/history/objective",
                                             "/history/train_tcc",
                                             "/history/validation_tcc",
                                             "/history/train_pcc",
                                             "/history/validation_pcc"};
  const auto expect_same = [&](const std::string& a, const std::string& b, const std::string& what) {
    for (const auto& name : compared)
      EXPECT_TRUE(
          same_bits(skein::io::read_dataset<double>(a, name), skein::io::read_dataset<double>(b, name)))
          << what << ": " << name;
  };
  const std::string reference = outs[0] + "/cca.h5";
  expect_same(reference, outs[1] + "/cca.h5", "2 ranks");
  expect_same(reference, outs[2] + "/cca.h5", "3 ranks");
  // 2 epochs of 5 steps: killed in the second epoch, resumed from the checkpoint at step 8.
  const std::string out = killed_and_resumed(cca_args, "repro-cca-kill", "4", 1, 9);
  expect_same(reference, out + "/cca.h5", "killed at 2 ranks, resumed at 3");
}

// hessian: ranks hold whole row groups, each group's loss, gradient and curvature products summed exactly,
// training minibatches and the analysed minibatch by row group, BLAS on one thread: every dataset and the
// loss, accuracy, gradient norm and trace attributes are the same bits at 1, 2 and 3 ranks, and after a kill
// at 2 ranks resumed at 3 (without comm.reproducible the eigenvalues differ in the last bits at 3 ranks).
TEST(Reproducible, HessianIsTheSameBitsAtAnyRankCountAndAfterAKillResumedOnThree) {
  const auto expect_same = [](const std::string& a, const std::string& b, const std::string& what) {
    expect_same_datasets<double>(a, b, "/", what);
    for (const std::string group : {"/", "/epoch_0", "/epoch_1"}) {
      for (const char* name : {"loss_value", "accuracy", "gradient_norm"}) {
        const double x = skein::io::read_double_attribute(a, group, name),
                     y = skein::io::read_double_attribute(b, group, name);
        EXPECT_EQ(std::memcmp(&x, &y, sizeof x), 0) << what << ": " << group << "@" << name;
      }
      const double x = skein::io::read_double_attribute(a, group == "/" ? "/trace" : group + "/trace",
                                                        "mean"),
                   y = skein::io::read_double_attribute(b, group == "/" ? "/trace" : group + "/trace",
                                                        "mean");
      EXPECT_EQ(std::memcmp(&x, &y, sizeof x), 0) << what << ": " << group << " trace mean";
    }
  };
  std::vector<std::string> outs;
  for (const int ranks : {1, 2, 3}) {
    outs.push_back(make_temp_dir("repro-hessian-" + std::to_string(ranks)));
    const auto r = run_skein(ranks, hessian_args(outs.back()), 120);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  const std::string reference = outs[0] + "/hessian.h5";
  expect_same(reference, outs[1] + "/hessian.h5", "2 ranks");
  expect_same(reference, outs[2] + "/hessian.h5", "3 ranks");
  // About 250 steps before the training epoch (Lanczos steps, trace samples, the density vector), 9 in it:
  // killed at step 251, resumed from the checkpoint at step 250, in the training epoch (its 6th minibatch
  // here; elsewhere, where BLAS rounds differently, wherever the same step falls).
  const std::string out = killed_and_resumed(hessian_args, "repro-hessian-kill", "5", 1, 251);
  expect_same(reference, out + "/hessian.h5", "killed at 2 ranks, resumed at 3");

  std::vector<std::string> minibatch;
  for (const int ranks : {1, 3}) {
    minibatch.push_back(make_temp_dir("repro-hessian-minibatch-" + std::to_string(ranks)));
    const auto r = run_skein(ranks, hessian_minibatch_args(minibatch.back()), 120);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  expect_same_datasets<double>(minibatch[0] + "/hessian.h5", minibatch[1] + "/hessian.h5", "/",
                               "minibatch, 3 ranks");
}
