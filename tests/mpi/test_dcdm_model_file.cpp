// The DCDM model file round trip: what dcdm::write_model writes (a trained network's parameters, a
// non-default architecture and grid), dcdm::load_model reads back bit for bit, and a network given the
// loaded parameters infers exactly what the written one does; the datasets hold the flat vector in
// DcdmArchitecture's documented order (read with the plain HDF5 reader, as h5py would).
// skein-test-ranks: 1 2
#include "comm/communicator.hpp"
#include "engine/random.hpp"
#include "io/h5_reader.hpp"
#include "io/hdf5.hpp"
#include "jobs/dcdm_model.hpp"
#include "solvers/cnn3d.hpp"

#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace skein;
using solvers::PoissonField;

TEST(DcdmModelFile, WriteThenLoadIsExactAndInfersTheSame) {
  comm::Communicator world(MPI_COMM_WORLD);
  solvers::cnn::DcdmArchitecture arch;
  arch.channels = 5;
  arch.fine_pairs_before = 2;
  arch.coarse_pairs = 1;
  arch.fine_pairs_after = 1;
  const std::array<std::int64_t, 3> grid{6, 5, 4};
  comm::Communicator self(MPI_COMM_SELF);
  const comm::CartDecomposition whole(self, grid);
  solvers::cnn::DcdmNetwork<float> written(arch, whole);
  written.initialize(11);
  // Not the initial weights: every entry (biases too) perturbed by a keyed normal draw.
  auto params = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), written.parameters());
  for (std::size_t x = 0; x < params.extent(0); ++x)
    params(x) += 0.1f * static_cast<float>(engine::standard_normal(4, 1, x));
  Kokkos::deep_copy(written.parameters(), params);

  dcdm::LoadedModel model;
  model.architecture = arch;
  model.trained_grid = grid;
  model.parameters.assign(params.data(), params.data() + params.extent(0));
  std::string path = "/tmp/skein-test-dcdm-model-" + std::to_string(::getpid()) + ".h5";
  world.bcast(path, 0);  // rank 0's name on every rank
  {
    io::H5Writer out(world, path);
    dcdm::write_model(out, model);
    out.close();
  }
  const dcdm::LoadedModel loaded = dcdm::load_model(world, path);
  EXPECT_EQ(loaded.architecture.channels, 5);
  EXPECT_EQ(loaded.architecture.fine_pairs_before, 2);
  EXPECT_EQ(loaded.architecture.coarse_pairs, 1);
  EXPECT_EQ(loaded.architecture.fine_pairs_after, 1);
  EXPECT_EQ(loaded.trained_grid, grid);
  ASSERT_EQ(loaded.parameters, model.parameters);  // bit for bit

  // The datasets, concatenated in layer order, are the flat vector.
  std::vector<float> concatenated;
  for (int l = 0; l <= arch.conv_count(); ++l)
    for (const auto& name : dcdm::layer_datasets(arch, l)) {
      const auto values = io::read_dataset<float>(path, name);
      concatenated.insert(concatenated.end(), values.begin(), values.end());
    }
  EXPECT_EQ(concatenated, model.parameters);
  EXPECT_EQ(io::dataset_shape(path, dcdm::layer_datasets(arch, 0)[0]),
            (std::vector<std::uint64_t>{5, 1, 3, 3, 3}));

  // Inference with the loaded parameters on the world decomposition equals the written network's.
  const comm::CartDecomposition spread(world, grid);
  solvers::cnn::DcdmNetwork<float> reread(loaded.architecture, spread);
  const Kokkos::View<const float*, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> host(
      loaded.parameters.data(), loaded.parameters.size());
  Kokkos::deep_copy(reread.parameters(), host);
  auto make = [](const comm::CartDecomposition& d, const char* label) {
    return comm::make_field<double>(d, 1, label);
  };
  PoissonField r_whole = make(whole, "r"), q_whole = make(whole, "q");
  PoissonField r_spread = make(spread, "r"), q_spread = make(spread, "q");
  auto rw = Kokkos::create_mirror_view(r_whole);
  for (std::int64_t i = 0; i < grid[0]; ++i)
    for (std::int64_t j = 0; j < grid[1]; ++j)
      for (std::int64_t k = 0; k < grid[2]; ++k)
        rw(i + 1, j + 1, k + 1) =
            engine::standard_normal(4, 2, static_cast<std::uint64_t>((i * grid[1] + j) * grid[2] + k));
  Kokkos::deep_copy(r_whole, rw);
  auto rs = Kokkos::create_mirror_view(r_spread);
  const auto o = spread.owned();
  for (std::int64_t i = 0; i < o.extent[0]; ++i)
    for (std::int64_t j = 0; j < o.extent[1]; ++j)
      for (std::int64_t k = 0; k < o.extent[2]; ++k)
        rs(i + 1, j + 1, k + 1) = rw(o.offset[0] + i + 1, o.offset[1] + j + 1, o.offset[2] + k + 1);
  Kokkos::deep_copy(r_spread, rs);
  written.infer(r_whole, q_whole);
  reread.infer(r_spread, q_spread);
  auto qw = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), q_whole);
  auto qs = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), q_spread);
  double worst = 0, scale = 0;
  for (std::int64_t i = 0; i < o.extent[0]; ++i)
    for (std::int64_t j = 0; j < o.extent[1]; ++j)
      for (std::int64_t k = 0; k < o.extent[2]; ++k) {
        const double a = qs(i + 1, j + 1, k + 1),
                     b = qw(o.offset[0] + i + 1, o.offset[1] + j + 1, o.offset[2] + k + 1);
        worst = std::max(worst, std::abs(a - b));
        scale = std::max(scale, std::abs(b));
      }
  EXPECT_GT(scale, 0.0);
  if (world.size() == 1) {
    EXPECT_EQ(worst, 0.0);
  } else {
    EXPECT_LE(worst, 1e-5 * scale);  // the distributed inference contract
  }
  world.barrier();
  if (world.rank() == 0) std::remove(path.c_str());
}
