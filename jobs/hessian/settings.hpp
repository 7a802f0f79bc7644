// The hessian job's config keys and their parsed, validated values.
#pragma once

#include "engine/config.hpp"
#include "engine/job.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace skein::hessian {

enum class OperatorKind { hessian, ggn };
enum class Precision { float64, float32 };
enum class Optimizer { adam, sgd };

struct Settings {
  std::string model;  // HDF5 file with the /model group
  std::string data;   // HDF5 file with /X and /y
  OperatorKind op = OperatorKind::hessian;
  Precision precision = Precision::float64;
  int top_k = 10;
  int bottom_k = 0;
  int lanczos_steps = 0;  // basis vectors per restart cycle; 0: chosen from top_k + bottom_k
  double tol = 1e-6;
  int max_restarts = 300;
  int trace_samples = 100;
  int slq_vectors = 10;
  int slq_steps = 80;
  int density_points = 1000;
  double density_sigma = 0;     // 0: PyHessian's rule, sigma^2 = 1e-5 max(1, spectral width)
  std::int64_t batch_size = 0;  // 0: every sample; else a fixed seeded minibatch
  bool save_eigenvectors = false;
  int train_epochs = 0;
  std::vector<std::int64_t> analyze_at;  // epochs (0 = before training), ascending, unique
  Optimizer optimizer = Optimizer::adam;
  double lr = 1e-3;
  double momentum = 0.9;
  std::int64_t train_batch = 128;
  std::uint64_t seed = 0;
  std::int64_t chunk_rows = 0;  // rows per kernel pass (workspace size); 0: automatic (workspace_rows)
  double progress_seconds = 5.0;
};

engine::JobSpec job_spec();
// Throws UsageError naming the key for any bad value. Never communicates.
Settings parse_settings(const engine::Config& config);

std::string to_string(OperatorKind op);
std::string to_string(Precision precision);

}  // namespace skein::hessian
