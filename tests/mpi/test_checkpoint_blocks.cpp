// N-D block state in checkpoints: a 3-D array saved from one domain decomposition is the global array in
// the file, and reads back into any other decomposition, each rank reading exactly its block; its checksum
// does not depend on the decomposition; H5Writer::write_block and io::read_block agree.
// skein-test-ranks: 1 2 3 4
#include "comm/cartesian.hpp"
#include "comm/halo.hpp"
#include "io/atomic_output.hpp"
#include "io/checkpoint.hpp"
#include "io/h5_reader.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

namespace {

namespace fs = std::filesystem;
using skein::comm::Communicator;
namespace io = skein::io;

double value_at(std::uint64_t i, std::uint64_t j, std::uint64_t k) {
  return 1e4 * i + 1e2 * j + k + 0.25;
}

std::vector<std::uint64_t> u64(const std::array<std::int64_t, 3>& a) {
  return {static_cast<std::uint64_t>(a[0]), static_cast<std::uint64_t>(a[1]),
          static_cast<std::uint64_t>(a[2])};
}

std::vector<double> block_values(const skein::comm::Box3& box) {
  std::vector<double> values;
  for (std::int64_t i = 0; i < box.extent[0]; ++i)
    for (std::int64_t j = 0; j < box.extent[1]; ++j)
      for (std::int64_t k = 0; k < box.extent[2]; ++k)
        values.push_back(value_at(box.offset[0] + i, box.offset[1] + j, box.offset[2] + k));
  return values;
}

std::string shared_dir(const Communicator& comm) {
  std::string dir;
  if (comm.rank() == 0)
    dir = (fs::temp_directory_path() / ("skein-blocks-" + std::to_string(::getpid()))).string();
  comm.bcast(dir, 0);
  return dir;
}

io::CheckpointInfo test_info() {
  io::CheckpointInfo info;
  info.job = "test";
  info.config = "[test]\n";
  info.config_hash = "0";
  info.skein_version = "test";
  return info;
}

TEST(CheckpointBlocks, ASavedFieldReadsBackIntoAnyDecomposition) {
  Communicator world(MPI_COMM_WORLD);
  const std::array<std::int64_t, 3> global{7, 5, 6};  // divides evenly by nothing
  const skein::comm::CartDecomposition writer_split(world, global);
  const std::string dir = shared_dir(world);

  const io::CheckpointInfo info = test_info();
  io::write_checkpoint(world, dir, info, [&](skein::engine::StateWriter& state) {
    const auto box = writer_split.owned();
    const auto values = block_values(box);
    state.block("field", u64(global), u64(box.offset), u64(box.extent), values.data());
    std::vector<float> singles(values.begin(), values.end());
    std::vector<std::int64_t> integers;
    for (const double v : values) integers.push_back(static_cast<std::int64_t>(v * 4));
    state.block("single", u64(global), u64(box.offset), u64(box.extent), singles.data());
    state.block("integer", u64(global), u64(box.offset), u64(box.extent), integers.data());
  });
  const std::string path = io::checkpoint_path(dir);

  // The file holds the global array, whatever wrote it.
  const auto whole = io::read_dataset<double>(path, "/state/field");
  ASSERT_EQ(whole.size(), 7u * 5u * 6u);
  EXPECT_EQ(whole[((3 * 5) + 2) * 6 + 4], value_at(3, 2, 4));

  // Verified (checksum by global index) and read back on a different split: slabs along the last axis.
  std::vector<std::string> warnings;
  const auto found = io::find_checkpoint(world, dir, warnings);
  ASSERT_TRUE(found.has_value()) << (warnings.empty() ? "" : warnings.front());
  const skein::comm::CartDecomposition reader_split(world, global, {1, 1, world.size()});
  io::CheckpointReader reader(world, path);
  EXPECT_EQ(reader.shape("field"), u64(global));
  const auto box = reader_split.owned();
  EXPECT_EQ(reader.block_double("field", u64(box.offset), u64(box.extent)), block_values(box));
  const auto expected = block_values(box);
  EXPECT_EQ(reader.block_float("single", u64(box.offset), u64(box.extent)),
            std::vector<float>(expected.begin(), expected.end()));
  std::vector<std::int64_t> integers;
  for (const double v : expected) integers.push_back(static_cast<std::int64_t>(v * 4));
  EXPECT_EQ(reader.block_int64("integer", u64(box.offset), u64(box.extent)), integers);

  // A block that does not fit the saved shape is an error on every rank.
  EXPECT_THROW(reader.block_double("field", {0, 0, 0}, {8, 5, 6}), skein::engine::DataError);
  world.barrier();
  if (world.rank() == 0) fs::remove_all(dir);
}

TEST(CheckpointBlocks, ACorruptBlockIsFoundOnResume) {
  Communicator world(MPI_COMM_WORLD);
  const std::array<std::int64_t, 3> global{4, 6, 3};
  const skein::comm::CartDecomposition split(world, global);
  const std::string dir = shared_dir(world) + "-corrupt";
  const io::CheckpointInfo info = test_info();
  io::write_checkpoint(world, dir, info, [&](skein::engine::StateWriter& state) {
    const auto box = split.owned();
    auto values = block_values(box);
    state.block("field", u64(global), u64(box.offset), u64(box.extent), values.data());
  });
  // Flip one value in place: the checksum no longer matches, and find_checkpoint says so.
  if (world.rank() == 0) {
    const std::string path = io::checkpoint_path(dir);
    auto values = io::read_dataset<double>(path, "/state/field");
    hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(file, "/state/field", H5P_DEFAULT);
    values[17] += 1;
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    H5Dclose(ds);
    H5Fclose(file);
  }
  world.barrier();
  std::vector<std::string> warnings;
  EXPECT_FALSE(io::find_checkpoint(world, dir, warnings).has_value());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("checksum mismatch"), std::string::npos) << warnings[0];
  world.barrier();
  if (world.rank() == 0) fs::remove_all(dir);
}

// The owned part of a ghosted field, as a subview, written with the View overload of write_block.
void fill_owned(const Kokkos::View<float***, Kokkos::LayoutRight>& field, const skein::comm::Box3& box,
                int width) {
  auto host = Kokkos::create_mirror_view(field);
  Kokkos::deep_copy(host, -1.0f);  // ghosts must not reach the file
  for (std::int64_t i = 0; i < box.extent[0]; ++i)
    for (std::int64_t j = 0; j < box.extent[1]; ++j)
      for (std::int64_t k = 0; k < box.extent[2]; ++k)
        host(i + width, j + width, k + width) =
            static_cast<float>(value_at(box.offset[0] + i, box.offset[1] + j, box.offset[2] + k));
  Kokkos::deep_copy(field, host);
}

TEST(WriteBlock, TheOwnedCellsOfAGhostedFieldBecomeTheGlobalArray) {
  Communicator world(MPI_COMM_WORLD);
  const std::array<std::int64_t, 3> global{5, 7, 3};
  const skein::comm::CartDecomposition split(world, global);
  const int width = 1;
  auto field = skein::comm::make_field<float>(split, width, "field");
  const auto box = split.owned();
  fill_owned(field, box, width);
  const std::string dir = shared_dir(world) + "-view";
  io::AtomicOutput out(world, dir + "/field.h5");
  {
    io::H5Writer h5(world, out.tmp_path());
    const auto owned = Kokkos::subview(field, std::make_pair(width, width + static_cast<int>(box.extent[0])),
                                       std::make_pair(width, width + static_cast<int>(box.extent[1])),
                                       std::make_pair(width, width + static_cast<int>(box.extent[2])));
    h5.write_block("/field", u64(global), u64(box.offset), owned);
    h5.close();
  }
  out.commit();
  const auto values = io::read_dataset<float>(dir + "/field.h5", "/field");
  ASSERT_EQ(values.size(), 5u * 7u * 3u);
  EXPECT_EQ(io::dataset_shape(dir + "/field.h5", "/field"), u64(global));
  for (std::uint64_t i = 0; i < 5; ++i)
    for (std::uint64_t j = 0; j < 7; ++j)
      for (std::uint64_t k = 0; k < 3; ++k)
        ASSERT_EQ(values[(i * 7 + j) * 3 + k], static_cast<float>(value_at(i, j, k)))
            << i << "," << j << "," << k;
  world.barrier();
  if (world.rank() == 0) fs::remove_all(dir);
}

}  // namespace
