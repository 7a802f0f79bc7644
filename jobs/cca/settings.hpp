// The cca job's config keys and their parsed, validated values.
#pragma once

#include "engine/config.hpp"
#include "engine/job.hpp"

#include <cstdint>
#include <string>

namespace skein::cca {

enum class Method { pls, ridge, cca };
enum class SolverKind { ey, exact };
enum class OptimizerKind { sgd, adam };
// Where an HDF5 view's values live: in memory (read once), or streamed from the file each time they are
// used (the page cache holds them; a rank holds O(1024 x 2048) values); auto streams a view whose block
// on a rank would exceed memory_budget_mb.
enum class Storage { automatic, memory, stream };

// Where a view's data comes from: a PLINK fileset (prefix of .bed/.bim/.fam) or an HDF5 dataset.
struct ViewSource {
  std::string text;  // as configured
  bool plink = false;
  std::string path;     // PLINK prefix, or the HDF5 file
  std::string dataset;  // HDF5 only, e.g. "/Y"
};

struct Settings {
  ViewSource x, y;
  Method method = Method::pls;
  double alpha = 1.0;  // ridge blend per view: 1 PLS, 0 CCA
  int components = 10;
  SolverKind solver = SolverKind::ey;
  OptimizerKind optimizer = OptimizerKind::adam;
  double lr = 0.0;  // 0: the solver's default for the method and optimizer
  double momentum = 0.9;
  bool cosine_schedule = true;  // lr_schedule=cosine (else constant)
  std::int64_t batch_size = 100;
  int epochs = 5;
  std::uint64_t seed = 0;
  double val_fraction = 0.1;
  bool scale = true;       // standardize=scale (else center)
  bool float32 = false;    // precision=float32: weights, products and genotype decoding in single precision
  bool reference = false;  // reference=exact: solve exactly first and report the PCC of the EY run
  std::int64_t eval_every = 0;  // steps between validation scores (0: once per epoch)
  double progress_seconds = 5.0;
  Storage storage = Storage::automatic;
  std::int64_t memory_budget_mb = 4096;  // storage=auto: per rank and view
};

engine::JobSpec job_spec();
// Throws UsageError naming the key for any bad value. Never communicates.
Settings parse_settings(const engine::Config& config);
// "prefix" (PLINK: prefix.bed exists or no ':') or "file.h5:/dataset".
ViewSource parse_view_source(const std::string& text, const std::string& key);

std::string to_string(Method method);

}  // namespace skein::cca
