// History: declared columns, appends, and the checkpoint round trip through StateWriter / StateReader.
#include "engine/error.hpp"
#include "engine/history.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <stdexcept>

using skein::engine::History;

namespace {

// An in-memory checkpoint holding what the interface can hold.
class MemoryState : public skein::engine::StateWriter, public skein::engine::StateReader {
 public:
  void scalar(const std::string& name, std::int64_t value) override { ints[name] = value; }
  void scalar(const std::string& name, double value) override { doubles[name] = value; }
  void replicated(const std::string& name, const std::vector<std::uint64_t>& v) override { u64[name] = v; }
  void replicated(const std::string& name, const std::vector<double>& v) override { f64[name] = v; }
  void distributed(const std::string& name, const std::vector<std::uint64_t>& v) override { u64[name] = v; }
  void distributed(const std::string&, const std::vector<std::int64_t>&) override {}
  void distributed(const std::string& name, const std::vector<double>& v) override { f64[name] = v; }
  std::int64_t int64_scalar(const std::string& name) override { return ints.at(name); }
  double double_scalar(const std::string& name) override { return doubles.at(name); }
  std::vector<std::uint64_t> replicated_uint64(const std::string& name) override { return u64.at(name); }
  std::vector<double> replicated_double(const std::string& name) override { return f64.at(name); }
  std::vector<std::uint64_t> distributed_uint64(const std::string& name) override { return u64.at(name); }
  std::vector<std::int64_t> distributed_int64(const std::string&) override { return {}; }
  std::vector<double> distributed_double(const std::string& name) override { return f64.at(name); }
  // Blocks are not used by History: one rank, whole arrays.
  void block(const std::string& name, const std::vector<std::uint64_t>&, const std::vector<std::uint64_t>&,
             const std::vector<std::uint64_t>& extent, const double* local) override {
    std::size_t count = 1;
    for (const auto e : extent) count *= e;
    f64[name].assign(local, local + count);
  }
  std::vector<double> block_double(const std::string& name, const std::vector<std::uint64_t>&,
                                   const std::vector<std::uint64_t>&) override {
    return f64.at(name);
  }
  void block(const std::string&, const std::vector<std::uint64_t>&, const std::vector<std::uint64_t>&,
             const std::vector<std::uint64_t>&, const float*) override {}
  void block(const std::string&, const std::vector<std::uint64_t>&, const std::vector<std::uint64_t>&,
             const std::vector<std::uint64_t>&, const std::int64_t*) override {}
  std::vector<float> block_float(const std::string&, const std::vector<std::uint64_t>&,
                                 const std::vector<std::uint64_t>&) override {
    return {};
  }
  std::vector<std::int64_t> block_int64(const std::string&, const std::vector<std::uint64_t>&,
                                        const std::vector<std::uint64_t>&) override {
    return {};
  }
  std::vector<std::uint64_t> shape(const std::string& name) override { return {f64.at(name).size()}; }

  std::map<std::string, std::int64_t> ints;
  std::map<std::string, double> doubles;
  std::map<std::string, std::vector<std::uint64_t>> u64;
  std::map<std::string, std::vector<double>> f64;
};

}  // namespace

TEST(History, AppendsPerColumnInDeclarationOrder) {
  History history({"residual", "seconds"});
  history.append("residual", 1.0);
  history.append("residual", 0.25);
  history.append("seconds", 0.5);
  history.add_column("alpha");
  history.add_column("residual");  // already there: kept as is
  ASSERT_EQ(history.columns().size(), 3u);
  EXPECT_EQ(history.columns()[0].first, "residual");
  EXPECT_EQ(history.columns()[2].first, "alpha");
  EXPECT_EQ(history.column("residual"), (std::vector<double>{1.0, 0.25}));
  EXPECT_EQ(history.column("seconds"), (std::vector<double>{0.5}));
  EXPECT_TRUE(history.column("alpha").empty());
  EXPECT_TRUE(history.has_column("seconds"));
  EXPECT_FALSE(history.has_column("beta"));
  EXPECT_THROW(history.append("beta", 1.0), skein::engine::InternalError);
  EXPECT_THROW(history.add_column("a/b"), skein::engine::InternalError);
  history.clear();
  EXPECT_TRUE(history.column("residual").empty());
  EXPECT_EQ(history.columns().size(), 3u);
}

TEST(History, CheckpointRoundTrip) {
  History history({"residual", "seconds"});
  for (int i = 0; i < 50; ++i) {
    history.append("residual", std::pow(0.7, i) / 3.0);  // values that do not print exactly
    history.append("seconds", 1e-3 * i);
  }
  MemoryState state;
  history.save(state);
  history.save(state, "solver2");
  EXPECT_EQ(state.f64.count("history.residual"), 1u);
  EXPECT_EQ(state.f64.count("solver2.seconds"), 1u);

  History restored({"residual", "seconds"});
  restored.append("residual", 42.0);  // replaced by the saved values
  restored.restore(state);
  EXPECT_EQ(restored.column("residual"), history.column("residual"));  // bit for bit
  EXPECT_EQ(restored.column("seconds"), history.column("seconds"));
  restored.append("residual", 1e-9);
  EXPECT_EQ(restored.column("residual").size(), 51u);

  History missing({"residual", "other"});
  EXPECT_THROW(missing.restore(state), std::out_of_range);  // the reader reports what is absent
}
