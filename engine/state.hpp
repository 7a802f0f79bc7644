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
};

}  // namespace skein::engine
