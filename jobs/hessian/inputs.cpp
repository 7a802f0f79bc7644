#include "jobs/hessian/inputs.hpp"

#include "comm/block_partition.hpp"
#include "engine/error.hpp"
#include "io/h5_parallel_reader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <stdexcept>

namespace skein::hessian {

using engine::DataError;

namespace {

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  if (shape.empty()) return "a scalar";
  std::string text;
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? "x" : "") + std::to_string(shape[i]);
  return text;
}

std::string layer_sizes_text(const std::vector<int>& sizes) {
  std::string text;
  for (std::size_t i = 0; i < sizes.size(); ++i) text += (i ? "-" : "") + std::to_string(sizes[i]);
  return text;
}

// Every rank reads the same metadata through the collective reader, so every check below throws the same
// error on every rank (the reader's own errors are agreed).
void read_model_from(const io::H5ParallelReader& file, std::vector<int>& sizes, std::string& activation,
                     std::string& loss, std::vector<double>& parameters) {
  const std::string& path = file.path();
  const std::string hint =
      " (a skein model file has a /model group with datasets W0, b0, W1, b1, ... and attributes activation "
      "and loss; tools/hessian/export_torch.py and make_model.py write one)";
  if (!file.exists("/model")) throw DataError(path + ": no /model group" + hint);
  for (const char* attribute : {"activation", "loss"}) {
    if (!file.exists("/model", attribute)) {
      throw DataError(path + ": /model has no attribute '" + attribute + "'" + hint);
    }
  }
  activation = file.string_attribute("/model", "activation");
  loss = file.string_attribute("/model", "loss");
  try {
    solvers::nn::parse_activation(activation);
    solvers::nn::parse_loss(loss);
  } catch (const std::invalid_argument& e) {
    throw DataError(path + ": /model: " + e.what());
  }
  int layers = 0;
  while (file.exists("/model/W" + std::to_string(layers))) ++layers;
  if (layers == 0) throw DataError(path + ": /model has no dataset W0" + hint);
  sizes.clear();
  parameters.clear();
  for (int l = 0; l < layers; ++l) {
    const std::string w = "/model/W" + std::to_string(l), b = "/model/b" + std::to_string(l);
    const auto w_shape = file.shape(w);
    if (w_shape.size() != 2 || w_shape[0] == 0 || w_shape[1] == 0) {
      throw DataError(path + ": " + w + " is " + shape_text(w_shape) +
                      "; a weight matrix is 2-D (out x in, as PyTorch's Linear.weight)");
    }
    if (!file.exists(b)) {
      throw DataError(path + ": " + w + " has no bias " + b + " (layers without bias are not supported)");
    }
    const auto b_shape = file.shape(b);
    if (l == 0) sizes.push_back(static_cast<int>(w_shape[1]));
    if (w_shape[1] != static_cast<std::uint64_t>(sizes.back())) {
      throw DataError(path + ": layer shapes do not chain: " + w + " is " + shape_text(w_shape) + " (takes " +
                      std::to_string(w_shape[1]) + " inputs) but /model/W" + std::to_string(l - 1) +
                      " gives " + std::to_string(sizes.back()) + " outputs");
    }
    if (b_shape.size() != 1 || b_shape[0] != w_shape[0]) {
      throw DataError(path + ": " + b + " is " + shape_text(b_shape) + " but " + w + " is " +
                      shape_text(w_shape) + "; the bias needs " + std::to_string(w_shape[0]) + " entries");
    }
    sizes.push_back(static_cast<int>(w_shape[0]));
    for (const std::string& name : {w, b}) {
      const auto values = file.read_replicated<double>(name);
      for (std::size_t i = 0; i < values.size(); ++i) {
        if (!std::isfinite(values[i])) {
          throw DataError(fmt::format("{}: {} holds a non-finite value ({:g}) at flat index {}", path, name,
                                      values[i], i));
        }
      }
      parameters.insert(parameters.end(), values.begin(), values.end());
    }
  }
  if (file.exists("/model", "layer_sizes")) {
    const auto declared = file.int_list_attribute("/model", "layer_sizes");
    if (declared != std::vector<std::int64_t>(sizes.begin(), sizes.end())) {
      std::string text;
      for (std::size_t i = 0; i < declared.size(); ++i) text += (i ? "-" : "") + std::to_string(declared[i]);
      throw DataError(path + ": /model@layer_sizes says " + text + " but the weights are " +
                      layer_sizes_text(sizes));
    }
  }
}

// Runs `read`, whose checks see the same metadata on every rank and so fail on every rank at the same
// point, and agrees on such a failure: printed once, and every rank ends normally instead of through
// MPI_Abort. (Errors of the collective reader are agreed already.)
template <class F>
void agreed_on_every_rank(const comm::Communicator& comm, F&& read) {
  try {
    read();
  } catch (const engine::Error& e) {
    if (e.agreed()) throw;
    const std::exception_ptr error = std::current_exception();
    comm.agree([&] { std::rethrow_exception(error); });
    throw;
  }
}

}  // namespace

ModelFile read_model(const comm::Communicator& comm, const std::string& path) {
  std::vector<int> sizes;
  std::string activation, loss;
  std::vector<double> parameters;
  io::H5ParallelReader file(comm, path);
  agreed_on_every_rank(comm, [&] { read_model_from(file, sizes, activation, loss, parameters); });
  file.close();
  ModelFile model;
  model.shape.layer_sizes = sizes;
  model.shape.activation = solvers::nn::parse_activation(activation);
  model.shape.loss = solvers::nn::parse_loss(loss);
  model.parameters = std::move(parameters);
  return model;
}

comm::IndexRange shard_rows(std::int64_t samples, int ranks, int rank, bool grouped) {
  const auto n = static_cast<std::uint64_t>(samples);
  if (!grouped) return comm::BlockPartition(n, ranks).range(rank);
  const auto size = static_cast<std::uint64_t>(row_group_size(samples));
  const comm::IndexRange groups = comm::BlockPartition((n + size - 1) / size, ranks).range(rank);
  return {std::min(groups.begin * size, n), std::min(groups.end * size, n)};
}

DataShard read_data(const comm::Communicator& comm, const std::string& path,
                    const solvers::nn::MlpShape& shape) {
  DataShard shard;
  const int inputs = shape.layer_sizes.front(), outputs = shape.layer_sizes.back();
  shard.classification = shape.loss == solvers::nn::Loss::cross_entropy;
  shard.outputs = outputs;
  io::H5ParallelReader file(comm, path);
  // Shapes: the same on every rank, so each check throws on every rank (agreed: printed once).
  const auto x_shape = file.shape("/X");
  const auto y_shape = file.shape("/y");
  const std::uint64_t columns = y_shape.size() == 2 ? y_shape[1] : 1;
  comm.agree([&] {
    if (x_shape.size() != 2) {
      throw DataError(path + ": /X is " + shape_text(x_shape) + "; it must be 2-D (samples x features)");
    }
    if (x_shape[0] == 0) throw DataError(path + ": /X has no rows");
    if (x_shape[1] != static_cast<std::uint64_t>(inputs)) {
      throw DataError(path + ": /X has " + std::to_string(x_shape[1]) +
                      " features per row but the model's first " + "layer takes " + std::to_string(inputs));
    }
    if (y_shape.empty() || y_shape[0] != x_shape[0]) {
      throw DataError(path + ": /y has " +
                      (y_shape.empty() ? std::string("no") : std::to_string(y_shape[0])) +
                      " rows but /X has " + std::to_string(x_shape[0]));
    }
    if (y_shape.size() > 2)
      throw DataError(path + ": /y is " + shape_text(y_shape) + "; expected 1-D or 2-D");
    if (shard.classification && columns != 1) {
      throw DataError(path + ": /y is " + shape_text(y_shape) +
                      "; the cross_entropy loss takes one integer label per row");
    }
    if (!shard.classification && columns != static_cast<std::uint64_t>(outputs)) {
      throw DataError(path + ": /y has " + std::to_string(columns) + " targets per row but the model has " +
                      std::to_string(outputs) + " outputs (loss mse)");
    }
  });
  shard.samples = static_cast<std::int64_t>(x_shape[0]);
  shard.features = static_cast<std::int64_t>(x_shape[1]);
  const comm::IndexRange range = shard_rows(shard.samples, comm.size(), comm.rank(), comm.exact_sums());
  if (comm.exact_sums()) shard.group_rows = row_group_size(shard.samples);
  shard.first_row = static_cast<std::int64_t>(range.begin);
  shard.rows = static_cast<std::int64_t>(range.size());
  const std::uint64_t rows = range.size(), first = range.begin;
  shard.x = file.read_block<double>("/X", {first, 0}, {rows, x_shape[1]});
  std::vector<std::uint64_t> offset{first}, extent{rows};
  if (y_shape.size() == 2) {
    offset.push_back(0);
    extent.push_back(columns);
  }
  const std::vector<double> y = file.read_block<double>("/y", offset, extent);
  file.close();
  // Values: each rank checks its rows; the lowest rank with a bad row speaks, so the first bad row is named.
  comm.agree([&] {
    for (std::size_t i = 0; i < shard.x.size(); ++i) {
      if (!std::isfinite(shard.x[i])) {
        throw DataError(fmt::format("{}: /X row {}, column {} is {:g}", path, first + i / x_shape[1],
                                    i % x_shape[1], shard.x[i]));
      }
    }
    for (std::size_t i = 0; i < y.size(); ++i) {
      const std::uint64_t row = first + i / columns;
      if (!std::isfinite(y[i])) throw DataError(fmt::format("{}: /y row {} is {:g}", path, row, y[i]));
      if (!shard.classification) continue;
      if (y[i] != std::floor(y[i]) || y[i] < 0 || y[i] >= outputs) {
        throw DataError(fmt::format("{}: /y row {} is label {:g}, outside the model's {} classes 0..{}", path,
                                    row, y[i], outputs, outputs - 1));
      }
      shard.labels.push_back(static_cast<int>(y[i]));
    }
  });
  if (!shard.classification) shard.targets = y;
  return shard;
}

}  // namespace skein::hessian
