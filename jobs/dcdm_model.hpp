// The DCDM model file (HDF5 group /model): architecture attributes and per-layer weights, shared by the
// dcdm-train job (writes it) and `poisson solver=dcdm` (reads it).
#pragma once

#include "comm/communicator.hpp"
#include "io/hdf5.hpp"
#include "solvers/cnn3d.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace skein::dcdm {

// Group /model holds the attributes kind = "dcdm-cnn", format_version = 1, channels, fine_pairs_before,
// coarse_pairs, fine_pairs_after, trained_grid (3 ints), parameter_count, and one group per layer, as
// PyTorch would store them (h5py: f["/model/conv00/weight"][...]):
//   /model/convNN/weight  (out, in, 3, 3, 3) float32, NN = 00 .. conv_count - 1 in evaluation order
//                          (DcdmArchitecture's comment: conv00 is 1 -> C, the others C -> C)
//   /model/convNN/bias    (out)
//   /model/output/weight  (1, C)   the 1x1x1 output layer
//   /model/output/bias    (1)
// The flat parameter vector of DcdmNetwork is these datasets concatenated in this order.
inline constexpr int kModelFormatVersion = 1;
inline constexpr const char* kModelKind = "dcdm-cnn";

struct LoadedModel {
  solvers::cnn::DcdmArchitecture architecture;
  std::array<std::int64_t, 3> trained_grid{};
  std::vector<float> parameters;
};

// The dataset names of layer l (l = conv_count() is the output layer): {weight, bias}.
std::array<std::string, 2> layer_datasets(const solvers::cnn::DcdmArchitecture& architecture, int l);

// Collective (every rank gets the model). engine::DataError agreed on every rank naming the file and what
// is wrong: missing file, not HDF5, no /model, wrong kind, unknown format_version, architecture attributes
// that are invalid or do not fit the datasets' shapes, parameter_count off, NaN or infinite weights.
LoadedModel load_model(const comm::Communicator& comm, const std::string& path);
// Writes /model into an open output file (collective; rank 0's values are written).
void write_model(io::H5Writer& out, const LoadedModel& model);

}  // namespace skein::dcdm
