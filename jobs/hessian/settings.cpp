#include "jobs/hessian/settings.hpp"

#include "engine/error.hpp"

#include <algorithm>
#include <climits>

namespace skein::hessian {

using engine::UsageError;

namespace {

std::string key_name(const std::string& key) {
  return "config key 'hessian." + key + "'";
}

}  // namespace

std::string to_string(OperatorKind op) {
  return op == OperatorKind::ggn ? "ggn" : "hessian";
}

std::string to_string(Precision precision) {
  return precision == Precision::float32 ? "float32" : "float64";
}

engine::JobSpec job_spec() {
  return {
      "hessian",
      "Hessian spectrum of a neural network's loss: extremal eigenpairs (Lanczos), trace (Hutchinson) and "
      "spectral density (stochastic Lanczos quadrature), samples sharded over ranks",
      {
          {"model", "", "HDF5 model file: /model group with W0, b0, W1, b1, ... (tools/hessian/)", true},
          {"data", "", "HDF5 data file: /X (n x d float) and /y (n integer labels, or n x t float targets)",
           true},
          {"operator", "hessian",
           "hessian (exact, Pearlmutter's R-operator) | ggn (Gauss-Newton J^T H_out J)"},
          {"precision", "float64", "float64 | float32 (the arithmetic of every product)"},
          {"top_k", "10", "largest eigenvalues to compute (0: none)"},
          {"bottom_k", "0", "smallest (most negative) eigenvalues to compute"},
          {"lanczos_steps", "0",
           "Lanczos basis vectors per restart cycle (0: max(2 (top_k + bottom_k) + 10, 30))"},
          {"tol", "1e-6", "eigenpairs converge when ||H u - theta u|| <= tol * max |theta|"},
          {"max_restarts", "300", "give up on the eigenpairs after this many thick restarts"},
          {"trace_samples", "100", "Hutchinson trace: Rademacher vectors (0: skip the trace)"},
          {"slq_vectors", "10", "spectral density: random start vectors (0: skip the density)"},
          {"slq_steps", "80", "spectral density: Lanczos steps per vector (quadrature nodes)"},
          {"density_points", "1000", "spectral density: grid points"},
          {"density_sigma", "0",
           "spectral density: Gaussian width (0: sigma^2 = 1e-5 max(1, lambda_max - lambda_min), as "
           "PyHessian)"},
          {"batch_size", "0",
           "samples whose loss Hessian is analysed: 0 = all; else a fixed seeded minibatch of that many"},
          {"save_eigenvectors", "false", "write /eigenvectors/top and /eigenvectors/bottom (k x parameters)"},
          {"train_epochs", "0", "epochs of minibatch training before (and between) the analyses"},
          {"analyze_at", "",
           "epochs at which to analyse, e.g. 0,1,5 (0 = the model as loaded; default: the last epoch)"},
          {"optimizer", "adam", "training: adam | sgd (with momentum)"},
          {"lr", "1e-3", "training: learning rate"},
          {"momentum", "0.9", "training: SGD momentum"},
          {"train_batch", "128", "training: minibatch size (over all ranks)"},
          {"seed", "0", "random vectors, minibatches and the training order"},
          {"chunk_rows", "0",
           "samples per kernel pass (the workspace size); 0: this rank's whole shard while its workspace "
           "fits in "
           "2 GiB, which lets repeated products reuse the forward pass",
           false, false},
          {"progress_seconds", "5", "seconds between progress lines", false, false},
      },
      {"hessian.h5"}};
}

Settings parse_settings(const engine::Config& config) {
  Settings s;
  s.model = config.get("model");
  s.data = config.get("data");
  s.op =
      config.get_choice("operator", {"hessian", "ggn"}) == "ggn" ? OperatorKind::ggn : OperatorKind::hessian;
  s.precision = config.get_choice("precision", {"float64", "float32"}) == "float32" ? Precision::float32
                                                                                    : Precision::float64;
  s.top_k = static_cast<int>(config.get_int("top_k", 0, 100000));
  s.bottom_k = static_cast<int>(config.get_int("bottom_k", 0, 100000));
  s.lanczos_steps = static_cast<int>(config.get_int("lanczos_steps", 0, 100000));
  if (s.lanczos_steps == 0) s.lanczos_steps = std::max(2 * (s.top_k + s.bottom_k) + 10, 30);
  if (s.top_k + s.bottom_k > 0 && s.lanczos_steps < s.top_k + s.bottom_k + 2) {
    throw UsageError(key_name("lanczos_steps") + ": " + config.get("lanczos_steps") +
                     " basis vectors cannot hold top_k + bottom_k = " + std::to_string(s.top_k + s.bottom_k) +
                     " eigenpairs and a restart direction; give at least " +
                     std::to_string(s.top_k + s.bottom_k + 2) + " (or 0 for the default)");
  }
  s.tol = config.get_double("tol");
  if (!(s.tol > 0 && s.tol < 1))
    throw UsageError(key_name("tol") + ": " + config.get("tol") + " is not in (0, 1)");
  s.max_restarts = static_cast<int>(config.get_int("max_restarts", 0, INT_MAX));
  s.trace_samples = static_cast<int>(config.get_int("trace_samples", 0, 100000000));
  if (s.trace_samples == 1) {
    throw UsageError(key_name("trace_samples") + ": 1 sample has no standard error; give 0 or at least 2");
  }
  s.slq_vectors = static_cast<int>(config.get_int("slq_vectors", 0, 100000));
  s.slq_steps = static_cast<int>(config.get_int("slq_steps", 1, 100000));
  s.density_points = static_cast<int>(config.get_int("density_points", 2, 10000000));
  s.density_sigma = config.get_double("density_sigma");
  if (!(s.density_sigma >= 0)) {
    throw UsageError(key_name("density_sigma") + ": " + config.get("density_sigma") + " is negative");
  }
  if (s.top_k + s.bottom_k == 0 && s.trace_samples == 0 && s.slq_vectors == 0) {
    throw UsageError("hessian: nothing to compute: top_k, bottom_k, trace_samples and slq_vectors are all 0");
  }
  s.batch_size = config.get_int("batch_size", 0, INT64_MAX);
  s.save_eigenvectors = config.get_bool("save_eigenvectors");
  s.train_epochs = static_cast<int>(config.get_int("train_epochs", 0, 1000000));
  s.analyze_at = config.get_int_list("analyze_at", 0, s.train_epochs);
  if (s.analyze_at.empty()) s.analyze_at.push_back(s.train_epochs);
  std::sort(s.analyze_at.begin(), s.analyze_at.end());
  s.analyze_at.erase(std::unique(s.analyze_at.begin(), s.analyze_at.end()), s.analyze_at.end());
  s.optimizer = config.get_choice("optimizer", {"adam", "sgd"}) == "sgd" ? Optimizer::sgd : Optimizer::adam;
  s.lr = config.get_double("lr");
  if (!(s.lr > 0)) throw UsageError(key_name("lr") + ": " + config.get("lr") + " is not positive");
  s.momentum = config.get_double("momentum");
  if (!(s.momentum >= 0 && s.momentum < 1)) {
    throw UsageError(key_name("momentum") + ": " + config.get("momentum") + " is not in [0, 1)");
  }
  s.train_batch = config.get_int("train_batch", 1, INT64_MAX);
  s.seed = static_cast<std::uint64_t>(config.get_int("seed", 0, INT64_MAX));
  s.chunk_rows = config.get_int("chunk_rows", 0, 1 << 24);
  s.progress_seconds = config.get_double("progress_seconds");
  if (!(s.progress_seconds >= 0)) {
    throw UsageError(key_name("progress_seconds") + ": " + config.get("progress_seconds") + " is negative");
  }
  return s;
}

}  // namespace skein::hessian
