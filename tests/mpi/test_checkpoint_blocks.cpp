// N-D block state in checkpoints: a 3-D array saved from one domain decomposition is the global array in
// the file, and reads back into any other decomposition, each rank reading exactly its block; its checksum
// does not depend on the decomposition; H5Writer::write_block and io::read_block agree; io::save_block and
// io::load_block carry Views (device, subview, float32, int32) into another decomposition.
// skein-test-ranks: 1 2 3 4
#include "comm/block_partition.hpp"
#include "comm/cartesian.hpp"
#include "comm/halo.hpp"
#include "io/atomic_output.hpp"
#include "io/checkpoint.hpp"
#include "io/h5_parallel_reader.hpp"
#include "io/h5_reader.hpp"
#include "io/hdf5_views.hpp"
#include "io/state_views.hpp"

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

// The owned cells of a ghosted double field hold value_at of their global index; ghosts hold -1.
void fill_owned_double(const Kokkos::View<double***, Kokkos::LayoutRight>& field,
                       const skein::comm::Box3& box) {
  auto host = Kokkos::create_mirror_view(field);
  Kokkos::deep_copy(host, -1.0);
  for (std::int64_t i = 0; i < box.extent[0]; ++i)
    for (std::int64_t j = 0; j < box.extent[1]; ++j)
      for (std::int64_t k = 0; k < box.extent[2]; ++k)
        host(i + 1, j + 1, k + 1) = value_at(box.offset[0] + i, box.offset[1] + j, box.offset[2] + k);
  Kokkos::deep_copy(field, host);
}

float weight_at(std::uint64_t i, std::uint64_t j) {
  return 0.1f * static_cast<float>(i) + static_cast<float>(j);  // not a double in disguise
}
std::int32_t label_at(std::uint64_t i) {
  return -3 * static_cast<std::int32_t>(i) + 1;
}

TEST(StateViews, ViewBlocksComeBackIntoAnotherDecomposition) {
  Communicator world(MPI_COMM_WORLD);
  const std::array<std::int64_t, 3> global{6, 7, 5};
  const std::uint64_t rows = 11, cols = 4, labels = 13;
  const skein::comm::CartDecomposition writer_split(world, global);
  const auto box = writer_split.owned();
  const auto my_rows = skein::comm::BlockPartition(rows, world.size()).range(world.rank());
  const auto my_labels = skein::comm::BlockPartition(labels, world.size()).range(world.rank());

  // A ghosted device field (saved through its interior subview), a float32 matrix and an int32 vector.
  auto field = skein::comm::make_field<double>(writer_split, 1, "field");
  fill_owned_double(field, box);
  const auto interior = Kokkos::subview(field, std::make_pair(1, 1 + static_cast<int>(box.extent[0])),
                                        std::make_pair(1, 1 + static_cast<int>(box.extent[1])),
                                        std::make_pair(1, 1 + static_cast<int>(box.extent[2])));
  Kokkos::View<float**, Kokkos::LayoutRight> weights("weights", my_rows.end - my_rows.begin, cols);
  Kokkos::View<std::int32_t*> label_view("labels", my_labels.end - my_labels.begin);
  {
    auto w = Kokkos::create_mirror_view(weights);
    for (std::uint64_t r = 0; r < w.extent(0); ++r)
      for (std::uint64_t c = 0; c < cols; ++c) w(r, c) = weight_at(my_rows.begin + r, c);
    Kokkos::deep_copy(weights, w);
    auto l = Kokkos::create_mirror_view(label_view);
    for (std::uint64_t r = 0; r < l.extent(0); ++r) l(r) = label_at(my_labels.begin + r);
    Kokkos::deep_copy(label_view, l);
  }
  const std::string dir = shared_dir(world) + "-views";
  io::write_checkpoint(world, dir, test_info(), [&](skein::engine::StateWriter& state) {
    io::save_block(state, "iterate", u64(global), u64(box.offset), interior);
    io::save_block(state, "weights", {rows, cols}, {my_rows.begin, 0}, weights);
    io::save_block(state, "labels", {labels}, {my_labels.begin}, label_view);
  });
  const std::string path = io::checkpoint_path(dir);
  {
    io::H5ParallelReader file(world, path);
    EXPECT_EQ(file.element_type("/state/weights").kind, io::ElementType::Kind::floating);
    EXPECT_EQ(file.element_type("/state/weights").size, 4u);  // float32 stays float32
    EXPECT_EQ(file.element_type("/state/iterate").size, 8u);
    EXPECT_EQ(file.element_type("/state/labels").kind, io::ElementType::Kind::integer);
    file.close();
  }

  // Restored by another split: slabs along the last axis into a LayoutLeft View, and the rows and labels
  // in reverse rank order.
  std::vector<std::string> warnings;
  ASSERT_TRUE(io::find_checkpoint(world, dir, warnings).has_value()) << (warnings.empty() ? "" : warnings[0]);
  io::CheckpointReader reader(world, path);
  const skein::comm::CartDecomposition reader_split(world, global, {1, 1, world.size()});
  const auto rbox = reader_split.owned();
  Kokkos::View<double***, Kokkos::LayoutLeft> restored("restored", rbox.extent[0], rbox.extent[1],
                                                       rbox.extent[2]);
  io::load_block(reader, "iterate", u64(rbox.offset), restored);
  const int mirror_rank = world.size() - 1 - world.rank();
  const auto their_rows = skein::comm::BlockPartition(rows, world.size()).range(mirror_rank);
  const auto their_labels = skein::comm::BlockPartition(labels, world.size()).range(mirror_rank);
  Kokkos::View<float**, Kokkos::LayoutRight> weights_back("weights_back", their_rows.end - their_rows.begin,
                                                          cols);
  Kokkos::View<int*> labels_back("labels_back", their_labels.end - their_labels.begin);
  io::load_block(reader, "weights", {their_rows.begin, 0}, weights_back);
  io::load_block(reader, "labels", {their_labels.begin}, labels_back);

  const auto f = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), restored);
  for (std::int64_t i = 0; i < rbox.extent[0]; ++i)
    for (std::int64_t j = 0; j < rbox.extent[1]; ++j)
      for (std::int64_t k = 0; k < rbox.extent[2]; ++k)
        ASSERT_EQ(f(i, j, k), value_at(rbox.offset[0] + i, rbox.offset[1] + j, rbox.offset[2] + k));
  const auto w = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), weights_back);
  for (std::uint64_t r = 0; r < w.extent(0); ++r)
    for (std::uint64_t c = 0; c < cols; ++c) ASSERT_EQ(w(r, c), weight_at(their_rows.begin + r, c));
  const auto l = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), labels_back);
  for (std::uint64_t r = 0; r < l.extent(0); ++r) ASSERT_EQ(l(r), label_at(their_labels.begin + r));

  // A block the saved array cannot hold is an error on every rank.
  Kokkos::View<float**, Kokkos::LayoutRight> too_many("too_many", rows + 1, cols);
  EXPECT_THROW(io::load_block(reader, "weights", {0, 0}, too_many), skein::engine::DataError);
  world.barrier();
  if (world.rank() == 0) fs::remove_all(dir);
}

}  // namespace
