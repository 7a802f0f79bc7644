// The interface through which a job saves its state into a checkpoint and reads it back, in a form that does
// not depend on the number of ranks (arrays in global index space, scalars).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace skein::engine {

// Collective: every rank makes the same calls in the same order.
class StateWriter {
 public:
  virtual ~StateWriter() = default;
  // Same value on every rank.
  virtual void scalar(const std::string& name, std::int64_t value) = 0;
  virtual void scalar(const std::string& name, double value) = 0;
  // Same contents on every rank (e.g. globally reduced counts).
  virtual void replicated(const std::string& name, const std::vector<std::uint64_t>& values) = 0;
  virtual void replicated(const std::string& name, const std::vector<double>& values) = 0;
  // Each rank's part; the saved array is the concatenation in rank order.
  virtual void distributed(const std::string& name, const std::vector<std::uint64_t>& local) = 0;
  virtual void distributed(const std::string& name, const std::vector<std::int64_t>& local) = 0;
  virtual void distributed(const std::string& name, const std::vector<double>& local) = 0;
  // An N-D array of shape `global_shape` (row-major) of which this rank holds the block at `offset` with
  // `extent` (its `local` values row-major); blocks must tile the array. Saved as the global array, so any
  // decomposition can read it back (a 3-D iterate written on 3 ranks resumes on 2 or 4).
  virtual void block(const std::string& name, const std::vector<std::uint64_t>& global_shape,
                     const std::vector<std::uint64_t>& offset, const std::vector<std::uint64_t>& extent,
                     const double* local) = 0;
  // The same for float32 (e.g. network weights) and integer arrays.
  virtual void block(const std::string& name, const std::vector<std::uint64_t>& global_shape,
                     const std::vector<std::uint64_t>& offset, const std::vector<std::uint64_t>& extent,
                     const float* local) = 0;
  virtual void block(const std::string& name, const std::vector<std::uint64_t>& global_shape,
                     const std::vector<std::uint64_t>& offset, const std::vector<std::uint64_t>& extent,
                     const std::int64_t* local) = 0;
};

// Collective, like StateWriter. A distributed array comes back as an even share per rank of the *current*
// rank count (rank r of P gets elements [r*N/P, (r+1)*N/P)); the job redistributes what it needs to.
class StateReader {
 public:
  virtual ~StateReader() = default;
  virtual std::int64_t int64_scalar(const std::string& name) = 0;
  virtual double double_scalar(const std::string& name) = 0;
  virtual std::vector<std::uint64_t> replicated_uint64(const std::string& name) = 0;
  virtual std::vector<double> replicated_double(const std::string& name) = 0;
  virtual std::vector<std::uint64_t> distributed_uint64(const std::string& name) = 0;
  virtual std::vector<std::int64_t> distributed_int64(const std::string& name) = 0;
  virtual std::vector<double> distributed_double(const std::string& name) = 0;
  // This rank's block [offset, offset + extent) of an array saved with StateWriter::block (any blocks: the
  // decomposition may differ from the writer's). DataError when the saved shape cannot hold the block.
  virtual std::vector<double> block_double(const std::string& name, const std::vector<std::uint64_t>& offset,
                                           const std::vector<std::uint64_t>& extent) = 0;
  virtual std::vector<float> block_float(const std::string& name, const std::vector<std::uint64_t>& offset,
                                         const std::vector<std::uint64_t>& extent) = 0;
  virtual std::vector<std::int64_t> block_int64(const std::string& name,
                                                const std::vector<std::uint64_t>& offset,
                                                const std::vector<std::uint64_t>& extent) = 0;
  // The shape an array was saved with.
  virtual std::vector<std::uint64_t> shape(const std::string& name) = 0;
};

}  // namespace skein::engine
