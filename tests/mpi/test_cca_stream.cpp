// Streamed HDF5 views (storage = stream) against the same views held in memory: DenseFeatureBlock over an
// Hdf5ColumnSource must give bit-identical statistics, products and GEP-EY weights to DenseFeatureBlock over
// read_view_columns, with rows matched in a shuffled order (some file rows unmatched), products over more
// than one row chunk and column slab, in float64 and float32; and a NaN met while streaming is an agreed
// DataError naming the file row and column.
// skein-test-ranks: 1 2 3
#include "comm/block_partition.hpp"
#include "comm/communicator.hpp"
#include "engine/error.hpp"
#include "engine/random.hpp"
#include "jobs/cca/inputs.hpp"
#include "solvers/cca_ey.hpp"
#include "solvers/feature_block.hpp"

#include <hdf5.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using skein::comm::Communicator;
using skein::comm::IndexRange;
using namespace skein::solvers;

namespace {

constexpr std::int64_t kFileRows = 1300, kP = 2300, kQ = 7;

double x_value(std::int64_t i, std::int64_t j) {
  const double latent = skein::engine::standard_normal(5, 1u, static_cast<std::uint64_t>(i));
  return 1.0 + 0.01 * j +
         (1.0 + (j % 3)) * (0.3 * latent + skein::engine::standard_normal(5, 2u, i * kP + j));
}
double y_value(std::int64_t i, std::int64_t j) {
  const double latent = skein::engine::standard_normal(5, 1u, static_cast<std::uint64_t>(i));
  return -2.0 + j + (0.5 * latent + skein::engine::standard_normal(5, 3u, i * kQ + j));
}

// X chunked by rows (like bench/cca's file), Y contiguous; `nan_at` (row, column) of X made NaN if >= 0.
void write_file(const std::string& path, std::int64_t nan_row, std::int64_t nan_column) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<double> x(static_cast<std::size_t>(kFileRows * kP)),
      y(static_cast<std::size_t>(kFileRows * kQ));
  for (std::int64_t i = 0; i < kFileRows; ++i) {
    for (std::int64_t j = 0; j < kP; ++j) x[i * kP + j] = x_value(i, j);
    for (std::int64_t j = 0; j < kQ; ++j) y[i * kQ + j] = y_value(i, j);
  }
  if (nan_row >= 0) x[nan_row * kP + nan_column] = std::nan("");
  const hsize_t x_dims[2] = {kFileRows, kP}, y_dims[2] = {kFileRows, kQ}, chunk[2] = {40, kP};
  const hid_t x_space = H5Screate_simple(2, x_dims, nullptr), y_space = H5Screate_simple(2, y_dims, nullptr);
  const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, 2, chunk);
  const hid_t xd = H5Dcreate2(file, "/X", H5T_IEEE_F64LE, x_space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  const hid_t yd = H5Dcreate2(file, "/Y", H5T_IEEE_F64LE, y_space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(xd, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, x.data());
  H5Dwrite(yd, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, y.data());
  H5Dclose(xd);
  H5Dclose(yd);
  H5Pclose(dcpl);
  H5Sclose(x_space);
  H5Sclose(y_space);
  H5Fclose(file);
}

class CcaStream : public ::testing::Test {
 public:
  void SetUp() override {
    if (world.rank() == 0) {
      dir = (fs::temp_directory_path() / ("skein-cca-stream-" + std::to_string(::getpid()))).string();
      fs::create_directories(dir);
      write_file(dir + "/data.h5", -1, -1);
      write_file(dir + "/nan.h5", 17, 1999);
    }
    world.bcast(dir, 0);
    world.barrier();
    // Matched rows: every file row but those = 5 mod 13, in a seeded shuffled order (ids matched in another
    // order); training rows: block rows not divisible by 4.
    for (std::int64_t i = 0; i < kFileRows; ++i)
      if (i % 13 != 5) rows.push_back(i);
    std::vector<std::uint64_t> keys(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) keys[i] = skein::engine::random_bits(9, 4u, i);
    std::vector<std::size_t> order(rows.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return keys[a] < keys[b]; });
    std::vector<std::int64_t> shuffled;
    for (const auto o : order) shuffled.push_back(rows[o]);
    rows = shuffled;
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(rows.size()); ++i)
      if (i % 4 != 0) training.push_back(i);
    x_columns = skein::comm::BlockPartition(kP, world.size()).range(world.rank());
    y_columns = skein::comm::BlockPartition(kQ, world.size()).range(world.rank());
  }
  void TearDown() override {
    world.barrier();
    if (world.rank() == 0) fs::remove_all(dir);
  }
  skein::cca::ViewSource source(const std::string& file, const std::string& dataset) const {
    return skein::cca::ViewSource{file + ":" + dataset, false, dir + "/" + file, dataset};
  }
  Kokkos::View<std::int64_t*> view_of(const std::vector<std::int64_t>& values) const {
    Kokkos::View<std::int64_t*> v("rows", values.size());
    for (std::size_t i = 0; i < values.size(); ++i) v(i) = values[i];
    return v;
  }
  Communicator world{MPI_COMM_WORLD};
  std::string dir;
  std::vector<std::int64_t> rows, training;
  IndexRange x_columns, y_columns;
};

template <class Matrix>
void expect_identical(const Matrix& a, const Matrix& b, const char* what) {
  ASSERT_EQ(a.extent(0), b.extent(0)) << what;
  ASSERT_EQ(a.extent(1), b.extent(1)) << what;
  std::size_t differing = 0;
  for (std::size_t i = 0; i < a.extent(0); ++i)
    for (std::size_t j = 0; j < a.extent(1); ++j) differing += a(i, j) != b(i, j);
  EXPECT_EQ(differing, 0u) << what << ": " << differing << " of " << a.size() << " entries differ";
}

template <class Scalar>
void check_identical(CcaStream& t) {
  using Matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight>;
  using Block = DenseFeatureBlock<Scalar>;
  using Rows = Kokkos::View<const std::int64_t*>;
  const auto x_source = t.source("data.h5", "/X"), y_source = t.source("data.h5", "/Y");
  // In memory first (collective reads), then the streams (serial opens of the same file).
  const Matrix x_values = skein::cca::read_view_columns<Scalar>(t.world, x_source, t.rows, t.x_columns);
  const Matrix y_values = skein::cca::read_view_columns<Scalar>(t.world, y_source, t.rows, t.y_columns);
  const auto training = t.view_of(t.training);
  const auto first_x = static_cast<std::int64_t>(t.x_columns.begin);
  const auto first_y = static_cast<std::int64_t>(t.y_columns.begin);
  Block x_memory(x_values, first_x, Standardize::scale, Rows(training));
  Block y_memory(y_values, first_y, Standardize::scale, Rows(training));
  auto x_stream = std::make_shared<const skein::cca::Hdf5ColumnSource<Scalar>>(x_source, t.rows, t.x_columns);
  auto y_stream = std::make_shared<const skein::cca::Hdf5ColumnSource<Scalar>>(y_source, t.rows, t.y_columns);
  Block x_streamed(x_stream, first_x, Standardize::scale, Rows(training));
  Block y_streamed(y_stream, first_y, Standardize::scale, Rows(training));
  ASSERT_TRUE(x_streamed.streamed());
  ASSERT_EQ(x_streamed.rows(), x_memory.rows());
  ASSERT_EQ(x_streamed.columns(), x_memory.columns());
  for (std::int64_t j = 0; j < x_memory.columns(); ++j) {
    EXPECT_EQ(x_memory.means()(j), x_streamed.means()(j)) << j;
    EXPECT_EQ(x_memory.inverse_scales()(j), x_streamed.inverse_scales()(j)) << j;
  }
  // The in-memory values are the file's (independent of either block).
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(t.rows.size()); i += 97)
    for (std::int64_t j = 0; j < x_memory.columns(); j += 31)
      EXPECT_EQ(x_values(i, j), static_cast<Scalar>(x_value(t.rows[i], first_x + j)));

  // Products over 1100 rows (two row chunks) with repeats, in scrambled order.
  std::vector<std::int64_t> pick;
  for (std::int64_t i = 0; i < 1100; ++i)
    pick.push_back((i * 37 + 11) % static_cast<std::int64_t>(t.rows.size()));
  pick[5] = pick[900];
  const auto batch = t.view_of(pick);
  const std::int64_t k = 3, b = static_cast<std::int64_t>(pick.size());
  Matrix U("U", x_memory.columns(), k), G("G", b, k);
  for (std::size_t i = 0; i < U.extent(0); ++i)
    for (std::int64_t c = 0; c < k; ++c)
      U(i, c) = static_cast<Scalar>(skein::engine::standard_normal(2, 7u, (first_x + i) * k + c));
  for (std::int64_t i = 0; i < b; ++i)
    for (std::int64_t c = 0; c < k; ++c)
      G(i, c) = static_cast<Scalar>(skein::engine::standard_normal(2, 8u, i * k + c));
  Matrix z_memory("z", b, k), z_streamed("z", b, k), o_memory("o", U.extent(0), k),
      o_streamed("o", U.extent(0), k);
  x_memory.multiply(Rows(batch), U, z_memory);
  x_streamed.multiply(Rows(batch), U, z_streamed);
  expect_identical(z_memory, z_streamed, "multiply");
  x_memory.transpose_multiply(Rows(batch), G, o_memory);
  x_streamed.transpose_multiply(Rows(batch), G, o_streamed);
  expect_identical(o_memory, o_streamed, "transpose_multiply");
  const std::int64_t n = x_memory.rows();
  Matrix y_all("y_all", n, kQ), c_memory("c", U.extent(0), kQ), c_streamed("c", U.extent(0), kQ);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < kQ; ++j) y_all(i, j) = static_cast<Scalar>(y_value(t.rows[i], j));
  x_memory.full_cross(y_all, c_memory);
  x_streamed.full_cross(y_all, c_streamed);
  expect_identical(c_memory, c_streamed, "full_cross");

  // GEP-EY (ridge, so both V halves and the power iterations of nothing but data are exercised) from the
  // same start over the same minibatches: the same weights, bit for bit.
  auto options = cca::default_options(0.5, 0.5, cca::Optimizer::adam, 40);
  options.components = 3;
  options.seed = 4;
  options.stream = 77u;
  cca::GepEy<Block, Block> ey_memory(t.world, x_memory, y_memory, options);
  cca::GepEy<Block, Block> ey_streamed(t.world, x_streamed, y_streamed, options);
  const auto order = skein::engine::seeded_order(3, 5u, 0, t.training);
  const auto all = t.view_of(order);
  const std::int64_t batch_size = 100;
  const auto slice = [&](std::int64_t s) {
    return Rows(Kokkos::subview(all, std::make_pair(s * batch_size, (s + 1) * batch_size)));
  };
  ey_memory.initialize(slice(0));
  ey_streamed.initialize(slice(0));
  for (std::int64_t s = 0; s < 9; ++s) {
    const auto a = ey_memory.step(slice(s));
    const auto c = ey_streamed.step(slice(s));
    EXPECT_EQ(a.objective, c.objective) << "step " << s;
  }
  expect_identical(ey_memory.weights_x(), ey_streamed.weights_x(), "weights_x");
  expect_identical(ey_memory.weights_y(), ey_streamed.weights_y(), "weights_y");
  EXPECT_NO_THROW(skein::cca::check_sources<Scalar>(t.world, {x_stream, y_stream}));
}

TEST_F(CcaStream, StreamedEqualsInMemoryDouble) {
  check_identical<double>(*this);
}

TEST_F(CcaStream, StreamedEqualsInMemoryFloat) {
  check_identical<float>(*this);
}

// File row 17, column 1999 is NaN: the streamed block's statistics pass meets it on the rank owning the
// column, leaves zeros, and the agreement point turns it into the same DataError on every rank.
TEST_F(CcaStream, NanWhileStreamingIsAnAgreedDataError) {
  const auto x_source = source("nan.h5", "/X");
  auto stream = std::make_shared<const skein::cca::Hdf5ColumnSource<double>>(x_source, rows, x_columns);
  DenseFeatureBlock<double> block(stream, static_cast<std::int64_t>(x_columns.begin), Standardize::scale);
  for (std::int64_t j = 0; j < block.columns(); ++j) ASSERT_TRUE(std::isfinite(block.means()(j)));
  try {
    skein::cca::check_sources<double>(world, {stream});
    FAIL() << "no error";
  } catch (const skein::engine::DataError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("nan.h5: /X row 17, column 1999 is nan"), std::string::npos) << message;
  }
}

}  // namespace
