// comm.reproducible=true end to end: a run killed (SIGKILL, one rank) at 2 ranks and resumed at 3 writes the
// same bits as the uninterrupted 2-rank run, for poisson (exact Krylov dot products) and dcdm-train (exact
// data-parallel gradient sums); and uninterrupted runs at 1, 2 and 3 ranks agree bit for bit. Poisson runs
// CG: mgpcg's automatic level count depends on the blocks' sizes (pin mg_levels for mgpcg).
#include "io/h5_reader.hpp"
#include "tests/e2e/cli_runner.hpp"

#include <gtest/gtest.h>

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
