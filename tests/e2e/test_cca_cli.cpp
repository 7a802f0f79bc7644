// The cca job end to end through the `skein` executable: exact PLS on PLINK genotypes (from cca-synth) the
// same at 1, 2 and 3 ranks, GEP-EY PLS and ridge CCA reaching PCC 0.95 on planted data, EY weights the same
// at any rank count, kill -9 mid-epoch and --resume on another rank count, and every bad input's message.
#include "io/h5_summary.hpp"
#include "tests/e2e/cli_runner.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

using namespace skein::test;

namespace {

// splitmix64 -> standard normal (Box-Muller): test data independent of skein's generators.
double uniform01(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (static_cast<double>(z >> 11) + 0.5) * 0x1.0p-53;
}
double normal(std::uint64_t id) {
  return std::sqrt(-2.0 * std::log(uniform01(2 * id))) * std::cos(6.283185307179586 * uniform01(2 * id + 1));
}

void write_matrix(hid_t file, const std::string& name, const std::vector<double>& values, hsize_t rows,
                  hsize_t cols) {
  const hsize_t dims[2] = {rows, cols};
  const hid_t space = H5Screate_simple(2, dims, nullptr);
  const hid_t set =
      H5Dcreate2(file, name.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Dclose(set);
  H5Sclose(space);
}

void write_ids(hid_t file, const std::vector<std::string>& ids) {
  const hsize_t n = ids.size();
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, 16);
  std::vector<char> packed(16 * n, '\0');
  for (hsize_t i = 0; i < n; ++i) ids[i].copy(packed.data() + 16 * i, 15);
  const hid_t space = H5Screate_simple(1, &n, nullptr);
  const hid_t set = H5Dcreate2(file, "/sample_id", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, packed.data());
  H5Dclose(set);
  H5Sclose(space);
  H5Tclose(type);
}

struct Planted {
  std::string x, y;  // "file.h5:/X", "file.h5:/Y"
};

// Three latent components shared by both views (weights 1.0, 0.8, 0.6) plus unit noise: n x p and n x q, both
// with /sample_id; Y's rows in reverse order so matching by id matters. `nan_row` puts a NaN into Y.
Planted write_planted(const std::string& tag, int n, int p, int q, int nan_row = -1,
                      bool duplicate_id = false) {
  const std::string dir = make_temp_dir("cca-in-" + tag);
  std::vector<double> x(static_cast<std::size_t>(n) * p), y(static_cast<std::size_t>(n) * q);
  const double strength[3] = {1.0, 0.8, 0.6};
  std::vector<std::string> x_ids, y_ids;
  for (int i = 0; i < n; ++i) {
    double z[3];
    for (int c = 0; c < 3; ++c) z[c] = normal(1000000 + i * 3 + c);
    for (int j = 0; j < p; ++j) {
      double v = normal(5000000 + static_cast<std::uint64_t>(i) * p + j);
      for (int c = 0; c < 3; ++c) v += strength[c] * z[c] * normal(9000000 + c * 1000 + j);
      x[static_cast<std::size_t>(i) * p + j] = v;
    }
    const int row = n - 1 - i;  // Y stored in reverse order
    for (int j = 0; j < q; ++j) {
      double v = normal(20000000 + static_cast<std::uint64_t>(i) * q + j);
      for (int c = 0; c < 3; ++c) v += strength[c] * z[c] * normal(30000000 + c * 1000 + j);
      y[static_cast<std::size_t>(row) * q + j] = v;
    }
    x_ids.push_back("s" + std::to_string(i));
  }
  for (int row = 0; row < n; ++row) y_ids.push_back("s" + std::to_string(n - 1 - row));
  if (duplicate_id) y_ids[5] = y_ids[9];
  if (nan_row >= 0) y[static_cast<std::size_t>(nan_row) * q + 2] = std::numeric_limits<double>::quiet_NaN();
  const std::string xf = dir + "/x.h5", yf = dir + "/y.h5";
  hid_t file = H5Fcreate(xf.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  write_matrix(file, "/X", x, n, p);
  write_ids(file, x_ids);
  H5Fclose(file);
  file = H5Fcreate(yf.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  write_matrix(file, "/Y", y, n, q);
  write_ids(file, y_ids);
  H5Fclose(file);
  return {xf + ":/X", yf + ":/Y"};
}

// A small planted PLINK fileset from `skein run cca-synth` (prefix DIR/synth, Y in DIR/synth_y.h5:/Y).
struct Genotypes {
  std::string prefix, y;
};
Genotypes make_genotypes(const std::string& tag) {
  const std::string dir = make_temp_dir("cca-geno-" + tag);
  const RunResult r = run_skein(
      1, {"run", "cca-synth", "--out", dir, "--cca-synth.samples=600", "--cca-synth.snps=500",
          "--cca-synth.y_features=12", "--cca-synth.components=2", "--cca-synth.correlations=0.5,0.4",
          "--cca-synth.signal_fraction=0.3", "--cca-synth.unmatched=15"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return {dir + "/synth", dir + "/synth_y.h5:/Y"};
}

struct Outcome {
  RunResult run;
  std::string h5;
};

Outcome run_cca(int ranks, const std::string& x, const std::string& y, const std::vector<std::string>& keys,
                const std::string& tag) {
  const std::string out = make_temp_dir("cca-" + tag);
  std::vector<std::string> args = {"run", "cca", "--out", out, "--cca.x=" + x, "--cca.y=" + y};
  for (const auto& key : keys) args.push_back("--cca." + key);
  return {run_skein(ranks, args, 180), out + "/cca.h5"};
}

std::vector<double> dataset(const std::string& h5, const std::string& name) {
  return skein::io::read_dataset<double>(h5, name);
}

double max_difference(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

TEST(CcaExact, PlsOnGenotypesIsTheSameAtOneTwoThreeRanks) {
  const Genotypes g = make_genotypes("exact");
  const std::vector<std::string> keys = {"solver=exact", "components=2"};
  const Outcome one = run_cca(1, g.prefix, g.y, keys, "exact1");
  ASSERT_EQ(one.run.exit_code, 0) << one.run.output;
  EXPECT_NE(one.run.output.find("600 matched by id (15 of x and 15 of y unmatched)"), std::string::npos)
      << one.run.output;
  EXPECT_EQ(skein::io::read_int64_attribute(one.h5, "/", "samples_unmatched_x"), 15);
  const auto weights = dataset(one.h5, "/weights/x");
  ASSERT_EQ(weights.size(), 500u * 2u);
  EXPECT_EQ(skein::io::read_strings(one.h5, "/snp_ids").size(), 500u);
  for (int ranks : {2, 3}) {
    const Outcome other = run_cca(ranks, g.prefix, g.y, keys, "exact" + std::to_string(ranks));
    ASSERT_EQ(other.run.exit_code, 0) << other.run.output;
    EXPECT_LT(max_difference(dataset(other.h5, "/weights/x"), weights), 1e-10) << ranks;
    EXPECT_LT(
        max_difference(dataset(other.h5, "/correlations/train"), dataset(one.h5, "/correlations/train")),
        1e-10);
  }
}

// GEP-EY reaches 95% of the exact solution's captured correlation on planted data in a few epochs.
TEST(CcaEy, PlsAndRidgeReachPcc95) {
  const Planted data = write_planted("pcc", 4000, 60, 30);
  for (const char* method : {"method=pls", "method=ridge"}) {
    const Outcome r =
        run_cca(2, data.x, data.y, {method, "components=3", "epochs=4", "reference=exact"}, "pcc");
    ASSERT_EQ(r.run.exit_code, 0) << r.run.output;
    EXPECT_GE(skein::io::read_double_attribute(r.h5, "/", "train_pcc"), 0.95) << method << "\n"
                                                                              << r.run.output;
    const auto train = dataset(r.h5, "/correlations/train");
    ASSERT_EQ(train.size(), 3u);
    EXPECT_TRUE(std::is_sorted(train.rbegin(), train.rend()));
    EXPECT_GT(train.front(), 0.5);
  }
}

// Feature sharding changes only the order of sums: the same weights at any rank count.
TEST(CcaEy, SameWeightsAtOneTwoThreeRanks) {
  const Planted data = write_planted("ranks", 1200, 40, 25);
  const std::vector<std::string> keys = {"components=3", "epochs=2", "method=ridge"};
  const Outcome one = run_cca(1, data.x, data.y, keys, "ey1");
  ASSERT_EQ(one.run.exit_code, 0) << one.run.output;
  for (int ranks : {2, 3}) {
    const Outcome other = run_cca(ranks, data.x, data.y, keys, "ey" + std::to_string(ranks));
    ASSERT_EQ(other.run.exit_code, 0) << other.run.output;
    EXPECT_LT(max_difference(dataset(other.h5, "/weights/x"), dataset(one.h5, "/weights/x")), 1e-6) << ranks;
    EXPECT_LT(max_difference(dataset(other.h5, "/history/objective"), dataset(one.h5, "/history/objective")),
              1e-6);
  }
}

// kill -9 of one rank mid-epoch; --resume on another rank count continues to the uninterrupted weights.
TEST(CcaCheckpoint, KilledMidEpochResumesOnAnotherRankCount) {
  const Planted data = write_planted("ckpt", 1200, 40, 25);
  const std::vector<std::string> keys = {"--cca.x=" + data.x, "--cca.y=" + data.y, "--cca.components=3",
                                         "--cca.epochs=3"};
  const std::string straight_out = make_temp_dir("cca-straight");
  std::vector<std::string> straight_args = {"run", "cca", "--out", straight_out};
  straight_args.insert(straight_args.end(), keys.begin(), keys.end());
  const RunResult straight = run_skein(1, straight_args, 120);
  ASSERT_EQ(straight.exit_code, 0) << straight.output;
  for (const auto& [first, second] : {std::pair<int, int>{3, 2}, std::pair<int, int>{2, 1}}) {
    const std::string out = make_temp_dir("cca-kill");
    std::vector<std::string> args = {"run", "cca", "--out", out, "--checkpoint-steps", "7"};
    args.insert(args.end(), keys.begin(), keys.end());
    auto killed = start_skein(first, args, {{"SKEIN_FAULT", "kill:1:17"}});
    const auto ended = killed.wait(120);
    ASSERT_NE(ended.exit_code, 0) << ended.output;
    ASSERT_TRUE(file_exists(out + "/checkpoint.h5")) << ended.output;
    args.push_back("--resume");
    const RunResult resumed = run_skein(second, args, 120);
    ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
    EXPECT_NE(resumed.output.find("resumed at epoch 2, step 4 of 10"), std::string::npos) << resumed.output;
    EXPECT_LT(max_difference(dataset(out + "/cca.h5", "/weights/x"),
                             dataset(straight_out + "/cca.h5", "/weights/x")),
              1e-6);
  }
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every bad input ends every rank with exit 65 (data) or 2 (config) and names the file and the problem.
TEST(CcaInputs, BadInputsAreClearErrors) {
  const Genotypes g = make_genotypes("bad");
  const std::string bed = read_bytes(g.prefix + ".bed");
  const std::string dir = make_temp_dir("cca-bad");
  auto copy_set = [&](const std::string& name, const std::string& bed_bytes, const std::string& fam_extra) {
    write_bytes(dir + "/" + name + ".bed", bed_bytes);
    write_bytes(dir + "/" + name + ".bim", read_bytes(g.prefix + ".bim"));
    write_bytes(dir + "/" + name + ".fam", read_bytes(g.prefix + ".fam") + fam_extra);
    return dir + "/" + name;
  };
  const std::string magic = copy_set("magic", std::string("\x6c\x1b\x00", 3) + bed.substr(3), "");
  const std::string truncated = copy_set("truncated", bed.substr(0, bed.size() - 7), "");
  // Four more samples than the .bed's records hold (one more might still fit the last byte's padding).
  const std::string fam =
      copy_set("fam", bed, "e1 e1 0 0 1 -9\ne2 e2 0 0 1 -9\ne3 e3 0 0 1 -9\ne4 e4 0 0 1 -9\n");
  const Planted nan = write_planted("nan", 300, 10, 8, 123);
  const Planted duplicate = write_planted("dup", 300, 10, 8, -1, true);
  const Planted small = write_planted("small", 300, 10, 4);
  struct Case {
    std::string name, x, y;
    std::vector<std::string> keys;
    int exit_code;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"wrong magic", magic, g.y, {}, 65, "magic.bed"},
      {"truncated bed", truncated, g.y, {}, 65, "truncated.bed"},
      {"fam disagrees", fam, g.y, {}, 65, "fam"},
      {"NaN in Y", nan.x, nan.y, {"components=3"}, 65, "/Y row 123, column 2 is nan"},
      {"duplicate ids", duplicate.x, duplicate.y, {"components=3"}, 65, "duplicate sample id"},
      {"k > min(p, q)",
       small.x,
       small.y,
       {"components=5"},
       65,
       "components = 5 is more than min(p, q) = min(10, 4)"},
      {"y as PLINK", small.x, g.prefix, {"components=3"}, 2, "y must be an HDF5 dataset"},
      {"missing x", dir + "/nothing", g.y, {}, 65, "nothing"},
  };
  for (const auto& c : cases) {
    for (int ranks : {1, 3}) {
      std::vector<std::string> keys = c.keys;
      if (c.x.find(".h5") == std::string::npos) keys.push_back("components=2");  // genotypes: p 500, q 12
      const Outcome r = run_cca(ranks, c.x, c.y, keys, "bad");
      EXPECT_EQ(r.run.exit_code, c.exit_code) << c.name << " at " << ranks << " ranks\n" << r.run.output;
      EXPECT_NE(r.run.output.find(c.expect), std::string::npos) << c.name << "\n" << r.run.output;
      EXPECT_FALSE(file_exists(r.h5)) << c.name;
    }
  }
}

}  // namespace
