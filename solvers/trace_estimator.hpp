// Hutchinson's stochastic trace estimator: tr(A) ~ mean of z^T A z over Rademacher vectors z, with its
// standard error, one operator application per sample, resumable sample by sample.
#pragma once

#include "engine/random.hpp"
#include "solvers/vector_space.hpp"

#include <cmath>
#include <cstdint>

namespace skein::solvers {

// Running mean and variance (Welford), so a checkpoint holds three numbers.
struct TraceEstimate {
  std::int64_t samples = 0;
  double mean = 0.0;
  double m2 = 0.0;  // sum of squared deviations from the running mean

  void add(double value) {
    ++samples;
    const double delta = value - mean;
    mean += delta / static_cast<double>(samples);
    m2 += delta * (value - mean);
  }
  // Standard error of the mean: sqrt(sample variance / samples); 0 with fewer than 2 samples.
  double standard_error() const {
    if (samples < 2) return 0.0;
    return std::sqrt(m2 / static_cast<double>(samples - 1) / static_cast<double>(samples));
  }
};

// Sample `index` of Hutchinson's estimator: z_index Rademacher (keyed by seed, stream, index and the global
// entry, so it does not depend on the rank count), returns z^T A z. `z` and `az` are scratch vectors.
template <class Space, class Operator>
double hutchinson_sample(const Space& space, const Operator& op, std::uint64_t seed, engine::StreamId stream,
                         std::uint64_t index, const typename Space::vector_type& z,
                         const typename Space::vector_type& az) {
  space.fill_rademacher(z, seed, stream, index);
  op.apply(z, az);
  return dot(space, z, az);
}

}  // namespace skein::solvers
