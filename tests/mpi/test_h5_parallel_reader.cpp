// The collective HDF5 reader: each rank's rows and N-D blocks (any View layout, a ghosted subview too),
// type conversion, empty blocks, replicated reads, list and string attributes, and every error agreed on
// every rank with the file and dataset named. The file is written by rank 0 with the serial HDF5 C API.
// skein-test-ranks: 1 2 3
#include "comm/block_partition.hpp"
#include "engine/error.hpp"
#include "io/h5_parallel_reader.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

namespace {

namespace fs = std::filesystem;
using skein::comm::Communicator;
namespace io = skein::io;

constexpr std::uint64_t kRows = 10, kCols = 3;   // /X
constexpr std::uint64_t kI = 4, kJ = 5, kK = 6;  // /cube
constexpr std::uint64_t kSmallRows = 2;          // /small: fewer rows than ranks at 3 ranks

float x_at(std::uint64_t i, std::uint64_t j) {
  return static_cast<float>(i) * 10.0f + static_cast<float>(j) + 0.5f;
}
double cube_at(std::uint64_t i, std::uint64_t j, std::uint64_t k) {
  return 1e4 * static_cast<double>(i) + 1e2 * static_cast<double>(j) + static_cast<double>(k) + 0.25;
}

void write_dataset(hid_t file, const char* name, hid_t type, const std::vector<hsize_t>& dims,
                   const void* data, hid_t dcpl = H5P_DEFAULT) {
  const hid_t space = dims.empty() ? H5Screate(H5S_SCALAR)
                                   : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  ASSERT_GE(ds, 0) << name;
  ASSERT_GE(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0) << name;
  H5Dclose(ds);
  H5Sclose(space);
}

void write_attribute(hid_t object, const char* name, hid_t type, const std::vector<hsize_t>& dims,
                     const void* data) {
  const hid_t space = dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims.data(), nullptr);
  const hid_t attr = H5Acreate2(object, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(attr, 0) << name;
  ASSERT_GE(H5Awrite(attr, type, data), 0) << name;
  H5Aclose(attr);
  H5Sclose(space);
}

// The file an MLP job might read: data, labels, a model's attributes as h5py writes them.
void write_test_file(const std::string& path) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  std::vector<float> x;
  std::vector<std::int64_t> y;
  for (std::uint64_t i = 0; i < kRows; ++i) {
    y.push_back(static_cast<std::int64_t>(i % 3) - 1);
    for (std::uint64_t j = 0; j < kCols; ++j) x.push_back(x_at(i, j));
  }
  write_dataset(file, "/X", H5T_IEEE_F32LE, {kRows, kCols}, x.data());
  write_dataset(file, "/y", H5T_STD_I64LE, {kRows}, y.data());
  std::vector<double> cube;
  for (std::uint64_t i = 0; i < kI; ++i)
    for (std::uint64_t j = 0; j < kJ; ++j)
      for (std::uint64_t k = 0; k < kK; ++k) cube.push_back(cube_at(i, j, k));
  H5Gclose(H5Gcreate2(file, "/fields", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  write_dataset(file, "/fields/cube", H5T_IEEE_F64LE, {kI, kJ, kK}, cube.data());
  // Chunked and compressed, as h5py writes with compression="gzip": still read collectively.
  const std::int32_t small[kSmallRows][2] = {{7, -8}, {9, 100000}};
  const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  const hsize_t chunk[2] = {1, 2};
  H5Pset_chunk(dcpl, 2, chunk);
  H5Pset_deflate(dcpl, 4);
  write_dataset(file, "/small", H5T_STD_I32LE, {kSmallRows, 2}, small, dcpl);
  H5Pclose(dcpl);
  const double learning_rate = 0.125;
  write_dataset(file, "/learning_rate", H5T_IEEE_F64LE, {}, &learning_rate);
  const char text[] = "not numbers";
  const hid_t fixed = H5Tcopy(H5T_C_S1);
  H5Tset_size(fixed, sizeof text);
  write_dataset(file, "/text", fixed, {}, text);

  const std::int64_t layers[3] = {784, 128, 10};
  write_attribute(file, "layers", H5T_STD_I64LE, {3}, layers);
  const std::int32_t depth = 3;
  write_attribute(file, "depth", H5T_STD_I32LE, {}, &depth);
  const std::uint8_t flags[2] = {1, 0};
  write_attribute(file, "flags", H5T_STD_U8LE, {2}, flags);
  const float scales[2] = {0.5f, 2.0f};
  write_attribute(file, "scales", H5T_IEEE_F32LE, {2}, scales);
  const hid_t variable = H5Tcopy(H5T_C_S1);
  H5Tset_size(variable, H5T_VARIABLE);
  H5Tset_cset(variable, H5T_CSET_UTF8);
  const char* activation = "tanh";
  write_attribute(file, "activation", variable, {}, &activation);
  const char* losses[2] = {"mse", "cross_entropy"};
  write_attribute(file, "losses", variable, {2}, losses);
  const hid_t fixed8 = H5Tcopy(H5T_C_S1);
  H5Tset_size(fixed8, 8);
  const char names[2][8] = {"weights", "bias"};
  const hid_t cube_ds = H5Dopen2(file, "/fields/cube", H5P_DEFAULT);
  write_attribute(cube_ds, "parts", fixed8, {2}, names);
  write_attribute(cube_ds, "kind", fixed8, {}, names[1]);
  H5Dclose(cube_ds);
  H5Tclose(fixed8);
  H5Tclose(variable);
  H5Tclose(fixed);
  H5Fclose(file);
}

// One file per test binary run, shared by every rank; removed at the end of the test that made it.
class H5ParallelReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (world.rank() == 0) {
      dir = (fs::temp_directory_path() / ("skein-h5read-" + std::to_string(::getpid()))).string();
      fs::create_directories(dir);
      write_test_file(dir + "/data.h5");
    }
    world.bcast(dir, 0);
    path = dir + "/data.h5";
    world.barrier();
  }
  void TearDown() override {
    world.barrier();
    if (world.rank() == 0) fs::remove_all(dir);
  }
  Communicator world{MPI_COMM_WORLD};
  std::string dir, path;
};

skein::comm::IndexRange my_rows(const Communicator& comm, std::uint64_t rows) {
  return skein::comm::BlockPartition(rows, comm.size()).range(comm.rank());
}

TEST_F(H5ParallelReaderTest, EachRankReadsItsRowsConverted) {
  io::H5ParallelReader reader(world, path);
  EXPECT_EQ(reader.shape("/X"), (std::vector<std::uint64_t>{kRows, kCols}));
  EXPECT_EQ(reader.shape("y"), (std::vector<std::uint64_t>{kRows}));
  const auto x_type = reader.element_type("/X");
  EXPECT_EQ(x_type.kind, io::ElementType::Kind::floating);
  EXPECT_EQ(x_type.size, 4u);
  const auto y_type = reader.element_type("/y");
  EXPECT_EQ(y_type.kind, io::ElementType::Kind::integer);
  EXPECT_EQ(y_type.size, 8u);
  EXPECT_TRUE(y_type.is_signed);
  EXPECT_EQ(reader.element_type("/text").kind, io::ElementType::Kind::string);

  const auto rows = my_rows(world, kRows);
  const std::uint64_t n = rows.end - rows.begin;
  Kokkos::View<float**, Kokkos::LayoutRight> x_float;  // default memory space
  Kokkos::View<double**, Kokkos::LayoutRight> x_double;
  Kokkos::View<int*> y_int;
  Kokkos::View<double*> y_double;
  reader.read_rows("/X", rows.begin, n, x_float);
  reader.read_rows("/X", rows.begin, n, x_double);
  reader.read_rows("/y", rows.begin, n, y_int);
  reader.read_rows("/y", rows.begin, n, y_double);
  ASSERT_EQ(x_float.extent(0), n);
  ASSERT_EQ(x_float.extent(1), kCols);
  ASSERT_EQ(y_int.extent(0), n);
  const auto xf = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), x_float);
  const auto xd = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), x_double);
  const auto yi = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), y_int);
  const auto yd = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), y_double);
  for (std::uint64_t r = 0; r < n; ++r) {
    const std::uint64_t i = rows.begin + r;
    for (std::uint64_t j = 0; j < kCols; ++j) {
      EXPECT_EQ(xf(r, j), x_at(i, j));
      EXPECT_EQ(xd(r, j), static_cast<double>(x_at(i, j)));
    }
    EXPECT_EQ(yi(r), static_cast<int>(i % 3) - 1);
    EXPECT_EQ(yd(r), static_cast<double>(static_cast<int>(i % 3) - 1));
  }
  // The vector form of the same block.
  EXPECT_EQ(reader.read_block<double>("/y", {rows.begin}, {n}),
            std::vector<double>(yd.data(), yd.data() + n));
  reader.close();
}

TEST_F(H5ParallelReaderTest, BlocksGoIntoAnyLayoutAndIntoAGhostedSubview) {
  io::H5ParallelReader reader(world, path);
  // Slabs along the middle axis, into a LayoutLeft View and into the interior of a ghosted LayoutRight field.
  const auto js = my_rows(world, kJ);
  const std::uint64_t nj = js.end - js.begin;
  Kokkos::View<double***, Kokkos::LayoutLeft> left("left", kI, nj, kK);
  reader.read_block("/fields/cube", {0, js.begin, 0}, left);
  Kokkos::View<float***, Kokkos::LayoutRight> ghosted("ghosted", kI + 2, nj + 2, kK + 2);
  Kokkos::deep_copy(ghosted, -1.0f);
  const auto interior = Kokkos::subview(ghosted, std::make_pair(1, 1 + static_cast<int>(kI)),
                                        std::make_pair(1, 1 + static_cast<int>(nj)),
                                        std::make_pair(1, 1 + static_cast<int>(kK)));
  reader.read_block("fields/cube", {0, js.begin, 0}, interior);
  const auto l = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), left);
  const auto g = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), ghosted);
  for (std::uint64_t i = 0; i < kI + 2; ++i)
    for (std::uint64_t j = 0; j < nj + 2; ++j)
      for (std::uint64_t k = 0; k < kK + 2; ++k) {
        const bool inside = i >= 1 && i <= kI && j >= 1 && j <= nj && k >= 1 && k <= kK;
        const float expected = inside ? static_cast<float>(cube_at(i - 1, js.begin + j - 1, k - 1)) : -1.0f;
        ASSERT_EQ(g(i, j, k), expected) << i << "," << j << "," << k;
        if (inside) ASSERT_EQ(l(i - 1, j - 1, k - 1), cube_at(i - 1, js.begin + j - 1, k - 1));
      }
  reader.close();
}

TEST_F(H5ParallelReaderTest, EmptyBlocksTakePartWhenRanksOutnumberRows) {
  io::H5ParallelReader reader(world, path);
  // /small is chunked and compressed; with 3 ranks one rank reads no rows but joins every collective read.
  const auto rows = my_rows(world, kSmallRows);
  const std::uint64_t n = rows.end - rows.begin;
  if (world.size() == 3) EXPECT_EQ(n, world.rank() == 0 ? 0u : 1u);
  Kokkos::View<double**, Kokkos::LayoutRight, Kokkos::HostSpace> small;
  reader.read_rows("/small", rows.begin, n, small);
  ASSERT_EQ(small.extent(0), n);
  ASSERT_EQ(small.extent(1), 2u);
  const double expected[kSmallRows][2] = {{7, -8}, {9, 100000}};
  for (std::uint64_t r = 0; r < n; ++r)
    for (std::uint64_t c = 0; c < 2; ++c) EXPECT_EQ(small(r, c), expected[rows.begin + r][c]);
  // Every rank but one asks for nothing, the last one for everything.
  const bool last = world.rank() == world.size() - 1;
  const auto all = reader.read_block<std::int64_t>("/small", {0, 0}, {last ? kSmallRows : 0, 2});
  if (last)
    EXPECT_EQ(all, (std::vector<std::int64_t>{7, -8, 9, 100000}));
  else
    EXPECT_TRUE(all.empty());
  reader.close();
}

TEST_F(H5ParallelReaderTest, ReplicatedReadsGiveEveryRankTheWholeDataset) {
  io::H5ParallelReader reader(world, path);
  const auto x = reader.read_replicated<double>("/X");
  ASSERT_EQ(x.size(), kRows * kCols);
  for (std::uint64_t i = 0; i < kRows; ++i)
    for (std::uint64_t j = 0; j < kCols; ++j) ASSERT_EQ(x[i * kCols + j], static_cast<double>(x_at(i, j)));
  Kokkos::View<double***, Kokkos::LayoutLeft> cube;
  reader.read_replicated("/fields/cube", cube);
  ASSERT_EQ(cube.extent(0), kI);
  ASSERT_EQ(cube.extent(1), kJ);
  ASSERT_EQ(cube.extent(2), kK);
  const auto c = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), cube);
  for (std::uint64_t i = 0; i < kI; ++i)
    for (std::uint64_t j = 0; j < kJ; ++j)
      for (std::uint64_t k = 0; k < kK; ++k) ASSERT_EQ(c(i, j, k), cube_at(i, j, k));
  // int32 values that uint8 cannot hold (-8, 100000) are refused with the first one named, on every rank,
  // not clamped by HDF5's conversion; the reader goes on working.
  Kokkos::View<std::uint8_t**> narrow;
  try {
    reader.read_replicated("/small", narrow);
    ADD_FAILURE() << "int32 -8 was read as uint8";
  } catch (const skein::engine::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("/small holds -8 at [0, 1], outside the range of the uint8"),
              std::string::npos)
        << e.what();
  }
  Kokkos::View<std::int16_t**> small;
  try {
    reader.read_replicated("/small", small);
    ADD_FAILURE() << "int32 100000 was read as int16";
  } catch (const skein::engine::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("/small holds 100000 at [1, 1]"), std::string::npos) << e.what();
  }
  Kokkos::View<std::int64_t**> wide;
  reader.read_replicated("/small", wide);
  const auto s = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), wide);
  EXPECT_EQ(s(0, 0), 7);
  EXPECT_EQ(s(0, 1), -8);
  EXPECT_EQ(s(1, 1), 100000);
  EXPECT_EQ(reader.read_replicated<double>("/learning_rate"), std::vector<double>{0.125});
  EXPECT_EQ(reader.read_replicated<std::int32_t>("/y").size(), kRows);
  reader.close();
}

TEST_F(H5ParallelReaderTest, LargeBlocksAreReadInRoundsOfRows) {
  // With room for one converted row (or two) per H5Dread, a block takes several collective rounds, and
  // ranks with fewer rows join the rounds they have no rows for.
  const std::uint64_t saved = io::detail::max_bytes_per_read();
  io::H5ParallelReader reader(world, path);
  for (const std::uint64_t bytes : {kCols * sizeof(double), 2 * kCols * sizeof(double) + 1}) {
    io::detail::max_bytes_per_read() = bytes;
    // Uneven rows: rank r reads rows [r, kRows - r) or nothing, as a 2-D block and as a 3-D View of /cube.
    const std::uint64_t first = std::min<std::uint64_t>(world.rank(), kRows);
    const std::uint64_t n = kRows - 2 * first > kRows ? 0 : kRows - 2 * first;
    Kokkos::View<double**, Kokkos::LayoutRight, Kokkos::HostSpace> x;
    reader.read_rows("/X", first, n, x);
    for (std::uint64_t r = 0; r < n; ++r)
      for (std::uint64_t j = 0; j < kCols; ++j) ASSERT_EQ(x(r, j), static_cast<double>(x_at(first + r, j)));
    const auto cube = reader.read_replicated<double>("/fields/cube");
    for (std::uint64_t i = 0; i < kI; ++i)
      for (std::uint64_t j = 0; j < kJ; ++j)
        for (std::uint64_t k = 0; k < kK; ++k) ASSERT_EQ(cube[(i * kJ + j) * kK + k], cube_at(i, j, k));
  }
  io::detail::max_bytes_per_read() = saved;
  reader.close();
}

TEST_F(H5ParallelReaderTest, ListAndStringAttributes) {
  io::H5ParallelReader reader(world, path);
  EXPECT_EQ(reader.int_list_attribute("/", "layers"), (std::vector<std::int64_t>{784, 128, 10}));
  EXPECT_EQ(reader.int_list_attribute("/", "depth"),
            std::vector<std::int64_t>{3});  // a scalar: a list of one
  EXPECT_EQ(reader.int_attribute("/", "depth"), 3);
  EXPECT_EQ(reader.int_list_attribute("/", "flags"), (std::vector<std::int64_t>{1, 0}));
  EXPECT_EQ(reader.double_list_attribute("/", "scales"), (std::vector<double>{0.5, 2.0}));
  EXPECT_EQ(reader.double_list_attribute("/", "layers"), (std::vector<double>{784, 128, 10}));
  EXPECT_EQ(reader.double_attribute("", "depth"), 3.0);
  EXPECT_EQ(reader.string_attribute("/", "activation"), "tanh");
  EXPECT_EQ(reader.string_list_attribute("/", "losses"), (std::vector<std::string>{"mse", "cross_entropy"}));
  EXPECT_EQ(reader.string_list_attribute("/fields/cube", "parts"),
            (std::vector<std::string>{"weights", "bias"}));
  EXPECT_EQ(reader.string_attribute("/fields/cube", "kind"), "bias");
  EXPECT_TRUE(reader.exists("/fields/cube"));
  EXPECT_TRUE(reader.exists("/fields/cube", "parts"));
  EXPECT_FALSE(reader.exists("/fields/cube", "nope"));
  EXPECT_FALSE(reader.exists("/nothing/here"));
  EXPECT_TRUE(reader.exists("/", "layers"));
  reader.close();
}

// Runs `read` on every rank and expects the same agreed DataError everywhere, its message holding `parts`.
void expect_agreed_data_error(const Communicator& world, const std::function<void()>& read,
                              const std::vector<std::string>& parts) {
  std::string message;
  bool agreed = false;
  try {
    read();
    ADD_FAILURE() << "no error; expected one mentioning " << parts.front();
  } catch (const skein::engine::DataError& e) {
    message = e.what();
    agreed = e.agreed();
  }
  EXPECT_TRUE(agreed) << message;
  for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
  // Every rank holds the same message.
  std::string root_message = message;
  world.bcast(root_message, 0);
  EXPECT_EQ(message, root_message);
}

TEST_F(H5ParallelReaderTest, EveryErrorReachesEveryRankNamingTheFileAndDataset) {
  expect_agreed_data_error(world, [&] { io::H5ParallelReader missing(world, dir + "/missing.h5"); },
                           {dir + "/missing.h5", "No such"});
  if (world.rank() == 0) std::ofstream(dir + "/plain.txt") << "just text\n";
  world.barrier();
  expect_agreed_data_error(world, [&] { io::H5ParallelReader plain(world, dir + "/plain.txt"); },
                           {dir + "/plain.txt", "not an HDF5"});

  io::H5ParallelReader reader(world, path);
  Kokkos::View<double*> vector;
  Kokkos::View<double**> matrix;
  Kokkos::View<int**> integers;
  expect_agreed_data_error(world, [&] { reader.shape("/nope"); }, {path, "no dataset /nope"});
  expect_agreed_data_error(world, [&] { reader.read_rows("/nope", 0, 1, vector); }, {path, "/nope"});
  expect_agreed_data_error(world, [&] { reader.read_rows("/fields", 0, 1, vector); },
                           {path, "/fields", "not a dataset"});
  // A 2-D dataset into a 1-D View, and a 1-D block asked of a 3-D dataset.
  expect_agreed_data_error(world, [&] { reader.read_rows("/X", 0, 1, vector); },
                           {path, "/X has 2 dimensions, expected 1"});
  expect_agreed_data_error(world, [&] { reader.read_block<double>("/fields/cube", {0}, {1}); },
                           {path, "/fields/cube has 3 dimensions, expected 1"});
  expect_agreed_data_error(world, [&] { reader.read_replicated("/y", matrix); },
                           {path, "/y has 1 dimensions, expected 2"});
  // Only the last rank asks for rows past the end; every rank hears of it, by rank.
  const int last = world.size() - 1;
  expect_agreed_data_error(world,
                           [&] {
                             const auto rows = my_rows(world, kRows);
                             reader.read_rows("/X", world.rank() == last ? kRows - 1 : rows.begin,
                                              world.rank() == last ? 2 : rows.end - rows.begin, matrix);
                           },
                           {path, "/X", "lies outside", "[10, 3]",
                            world.size() > 1 ? "rank " + std::to_string(last) + ": " : path});
  expect_agreed_data_error(world, [&] { reader.read_rows("/X", 0, 1, integers); },
                           {path, "/X", "floating-point"});
  expect_agreed_data_error(world, [&] { reader.read_replicated<double>("/text"); },
                           {path, "/text", "does not hold numbers"});
  expect_agreed_data_error(world, [&] { reader.int_attribute("/", "layers"); },
                           {path, "layers", "holds 3 values, expected one"});
  expect_agreed_data_error(world, [&] { reader.int_list_attribute("/", "scales"); },
                           {path, "scales", "not an integer"});
  expect_agreed_data_error(world, [&] { reader.string_attribute("/", "depth"); },
                           {path, "depth", "not a string"});
  expect_agreed_data_error(world, [&] { reader.int_list_attribute("/", "nope"); },
                           {path, "no attribute nope on /"});
  expect_agreed_data_error(world, [&] { reader.int_list_attribute("/ghost", "layers"); },
                           {path, "no object /ghost"});

  // After all that, the reader still works on every rank.
  const auto rows = my_rows(world, kRows);
  reader.read_rows("/X", rows.begin, rows.end - rows.begin, matrix);
  const auto m = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), matrix);
  if (rows.end > rows.begin) EXPECT_EQ(m(0, 1), static_cast<double>(x_at(rows.begin, 1)));
  reader.close();
}

TEST_F(H5ParallelReaderTest, AReaderDroppedByAnErrorIsClosedLater) {
  try {
    io::H5ParallelReader reader(world, path);
    throw std::runtime_error("unwinding");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(io::close_abandoned_files(), 1);
}

}  // namespace
