// dcdm-train end to end: a tiny grid (8^3) trains to a lower loss, the same model at 1 and 2 ranks, an
// epoch checkpoint survives kill -9 and --resume gives the uninterrupted run's model, bad keys are refused
// with messages naming them; a model trained long enough makes poisson solver=dcdm beat CG.
#include "io/h5_reader.hpp"
#include "tests/e2e/cli_runner.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

using namespace skein::test;

namespace {

std::vector<std::string> train_args(const std::string& out) {
  return {"run",
          "dcdm-train",
          "--out",
          out,
          "--dcdm-train.grid=8",
          "--dcdm-train.ritz_vectors=40",
          "--dcdm-train.train_vectors=20",
          "--dcdm-train.batch_size=10",
          "--dcdm-train.epochs=4",
          "--dcdm-train.lr=1e-3",
          "--dcdm-train.channels=8",
          "--dcdm-train.seed=5"};
}

std::vector<std::string> plus(std::vector<std::string> args, const std::string& option) {
  args.push_back(option);
  return args;
}

// Every /model dataset, concatenated in name order.
std::vector<float> model_values(const std::string& h5) {
  std::vector<float> all;
  for (const auto& name : skein::io::list_datasets(h5, "/model")) {
    const auto values = skein::io::read_dataset<float>(h5, name);
    all.insert(all.end(), values.begin(), values.end());
  }
  return all;
}

double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    worst = std::max(worst, std::abs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return worst / std::max(scale, 1e-30);
}

}  // namespace

TEST(DcdmTrainCli, LearnsAndGivesTheSameModelAtOneAndTwoRanks) {
  const std::string one = make_temp_dir("dcdm-train-1"), two = make_temp_dir("dcdm-train-2");
  const RunResult r1 = run_skein(1, train_args(one), 300);
  ASSERT_EQ(r1.exit_code, 0) << r1.output;
  const RunResult r2 = run_skein(2, train_args(two), 300);
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  EXPECT_NE(r1.output.find("s per sample"), std::string::npos) << r1.output;
  const std::string h1 = one + "/dcdm-train.h5", h2 = two + "/dcdm-train.h5";
  const auto loss = skein::io::read_dataset<double>(h1, "/history/loss");
  ASSERT_EQ(loss.size(), 4u);
  EXPECT_LT(loss.back(), 0.9 * loss.front()) << "training should reduce the loss clearly";
  EXPECT_EQ(skein::io::read_string_attribute(h1, "/model", "kind"), "dcdm-cnn");
  EXPECT_EQ(skein::io::read_int64_attribute(h1, "/model", "parameter_count"),
            static_cast<std::int64_t>(model_values(h1).size()));
  EXPECT_EQ(skein::io::dataset_shape(h1, "/model/conv00/weight"),
            (std::vector<std::uint64_t>{8, 1, 3, 3, 3}));
  EXPECT_EQ(skein::io::dataset_shape(h1, "/model/output/weight"), (std::vector<std::uint64_t>{1, 8}));
  EXPECT_LT(relative_difference(model_values(h2), model_values(h1)), 1e-4);
}

TEST(DcdmTrainCli, ResumesAfterKillToTheSameModel) {
  const std::string straight = make_temp_dir("dcdm-train-straight");
  const RunResult s = run_skein(1, train_args(straight), 300);
  ASSERT_EQ(s.exit_code, 0) << s.output;
  const std::string out = make_temp_dir("dcdm-train-kill");
  // Two batches per epoch: the epoch checkpoint after step 4 is there when rank 1 dies in step 6.
  auto killed = start_skein(2, train_args(out), {{"SKEIN_FAULT", "kill:1:6"}});
  const auto ended = killed.wait(300);
  ASSERT_NE(ended.exit_code, 0) << ended.output;
  ASSERT_TRUE(file_exists(out + "/checkpoint.h5")) << ended.output;
  ASSERT_FALSE(file_exists(out + "/dcdm-train.h5"));
  const RunResult resumed = run_skein(1, plus(train_args(out), "--resume"), 300);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("dcdm-train: resumed at epoch"), std::string::npos) << resumed.output;
  EXPECT_LT(
      relative_difference(model_values(out + "/dcdm-train.h5"), model_values(straight + "/dcdm-train.h5")),
      1e-4);
  const auto loss = skein::io::read_dataset<double>(out + "/dcdm-train.h5", "/history/loss");
  EXPECT_EQ(loss.size(), 4u);
}

TEST(DcdmTrainCli, RejectsBadKeysWithClearMessages) {
  struct Case {
    std::string option, expected;
  };
  const std::vector<Case> cases = {
      {"--dcdm-train.bogus=1", "bogus"},
      {"--dcdm-train.low_fraction=2", "low_fraction"},
      {"--dcdm-train.lr=-1", "lr"},
      {"--dcdm-train.obstacles=1,2", "dcdm-train.obstacles"},
      {"--dcdm-train.channels=0", "channels"},
      {"--dcdm-train.problem=file", "problem"},
  };
  for (const auto& c : cases) {
    const std::string out = make_temp_dir("dcdm-train-bad");
    const RunResult r = run_skein(1, plus(train_args(out), c.option), 60);
    EXPECT_EQ(r.exit_code, 2) << c.option << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expected), std::string::npos) << c.option << "\n" << r.output;
  }
}

// Trained long enough, the network beats CG: at 8^3 on the smoke problem a model from 2,000 Adam steps
// (100 vectors x 24 epochs, batch 2, lr 1e-3; about 12 s of one core) makes poisson solver=dcdm converge to
// 1e-4 in well under CG's iterations (measured: 20 against 44; asserted: at most 0.6 x CG's). The untuned
// defaults of a short run (the tests above) do not: the paper trains for about 2 million steps, and too few
// steps is what makes DCDM stall.
TEST(DcdmTrainCli, TrainedModelNeedsFewerIterationsThanCg) {
  const std::string train = make_temp_dir("dcdm-train-beats-cg");
  const RunResult t =
      run_skein(1,
                {"run", "dcdm-train", "--out", train, "--dcdm-train.grid=8", "--dcdm-train.problem=smoke",
                 "--dcdm-train.channels=8", "--dcdm-train.ritz_vectors=100", "--dcdm-train.train_vectors=100",
                 "--dcdm-train.batch_size=2", "--dcdm-train.epochs=24", "--dcdm-train.lr=1e-3"},
                300);
  ASSERT_EQ(t.exit_code, 0) << t.output;
  std::int64_t iterations[2] = {0, 0};
  const char* solvers[2] = {"cg", "dcdm"};
  for (int s = 0; s < 2; ++s) {
    const std::string out = make_temp_dir(std::string("dcdm-vs-cg-") + solvers[s]);
    std::vector<std::string> args = {"run",
                                     "poisson",
                                     "--out",
                                     out,
                                     "--poisson.grid=8",
                                     "--poisson.problem=smoke",
                                     "--poisson.tol=1e-4",
                                     "--poisson.max_iters=200",
                                     std::string("--poisson.solver=") + solvers[s]};
    if (s == 1) args.push_back("--poisson.model=" + train + "/dcdm-train.h5");
    const RunResult r = run_skein(1, args, 120);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const std::string h5 = out + "/poisson.h5";
    EXPECT_EQ(skein::io::read_int64_attribute(h5, "/", "converged"), 1) << solvers[s];
    iterations[s] = skein::io::read_int64_attribute(h5, "/", "iterations");
  }
  EXPECT_GE(iterations[0], 30);  // CG's count on this problem: a problem where fewer means something
  EXPECT_LE(iterations[1] * 5, iterations[0] * 3)
      << "DCDM " << iterations[1] << " iterations, CG " << iterations[0];
}
