// Reading the hessian job's inputs: the model file (/model: shape, activation, loss, weights in PyTorch's
// layout) and this rank's rows of the data file (/X, /y), validated against each other.
#pragma once

#include "comm/block_partition.hpp"
#include "comm/communicator.hpp"
#include "solvers/nn.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace skein::hessian {

struct ModelFile {
  solvers::nn::MlpShape shape;
  std::vector<double> parameters;  // flat, PyTorch's parameters_to_vector order: W0, b0, W1, b1, ...
};

// Collective; rank 0 reads and validates, every rank gets the result or the same DataError naming the file
// and dataset (a missing group, shapes that do not chain, an unknown activation or loss, NaN weights).
ModelFile read_model(const comm::Communicator& comm, const std::string& path);

// comm.reproducible: the data's rows in fixed groups of row_group_size(n) consecutive rows (a function of n
// alone, never of the rank count), each rank holding whole groups; a sum over samples is then the exact sum
// (comm/exact_sum.hpp) of per-group partial sums, each computed the same way by whichever rank holds the
// group. At most kTargetRowGroups groups, so that the per-group partial products (one parameter vector
// each) stay few; at least 16 rows, so that a group's GEMMs are not all overhead. A power of two: a group
// starts 16 x d x sizeof(Scalar) bytes (a multiple of 64) into a shard, aligned as BLAS saw it at any rank
// count.
constexpr std::int64_t kTargetRowGroups = 64;
inline std::int64_t row_group_size(std::int64_t samples) {
  std::int64_t size = 16;
  while (size * kTargetRowGroups < samples) size *= 2;
  return size;
}

// Rank `rank`'s rows: the even share of n, or (grouped) whole row groups, block-partitioned.
comm::IndexRange shard_rows(std::int64_t samples, int ranks, int rank, bool grouped);

// This rank's rows [first_row, first_row + rows) of the data (shard_rows: grouped under comm.reproducible),
// as float64 or float32 by the caller's choice later; kept here in double so both precisions are made from
// one read.
struct DataShard {
  std::int64_t samples = 0;   // n, all ranks
  std::int64_t features = 0;  // d
  std::int64_t first_row = 0;
  std::int64_t rows = 0;
  std::int64_t group_rows =
      0;  // comm.reproducible: row_group_size(n) (group g: rows [g size, (g+1) size)); else 0
  bool classification = true;
  int outputs = 0;              // classes (cross_entropy) or targets per row (mse)
  std::vector<double> x;        // rows x features, row-major
  std::vector<int> labels;      // classification
  std::vector<double> targets;  // regression: rows x outputs
};

// Collective. Checks /X against the model's input width, /y's rows against /X's, labels in [0, classes),
// integer-valued labels, finite values; each failure is a DataError naming the file, the dataset and,
// for bad values, the first offending row.
DataShard read_data(const comm::Communicator& comm, const std::string& path,
                    const solvers::nn::MlpShape& shape);

}  // namespace skein::hessian
