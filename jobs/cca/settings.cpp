#include "jobs/cca/settings.hpp"

#include "engine/error.hpp"

#include <climits>
#include <cmath>

namespace skein::cca {

using engine::UsageError;

namespace {

std::string key_name(const std::string& key) {
  return "config key 'cca." + key + "'";
}

}  // namespace

std::string to_string(Method method) {
  return method == Method::pls ? "pls" : method == Method::ridge ? "ridge" : "cca";
}

ViewSource parse_view_source(const std::string& text, const std::string& key) {
  ViewSource source;
  source.text = text;
  const auto colon = text.rfind(":/");
  if (colon != std::string::npos) {
    source.path = text.substr(0, colon);
    source.dataset = text.substr(colon + 1);
    if (source.path.empty() || source.dataset.size() < 2) {
      throw UsageError(key_name(key) + ": '" + text + "' is neither a PLINK prefix nor FILE.h5:/DATASET");
    }
    return source;
  }
  source.plink = true;
  source.path = text;
  for (const char* extension : {".bed", ".bim", ".fam"}) {
    const std::string suffix(extension);
    if (text.size() > suffix.size() &&
        text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0) {
      source.path = text.substr(0, text.size() - suffix.size());  // "data.bed" means the prefix "data"
    }
  }
  return source;
}

engine::JobSpec job_spec() {
  return {
      "cca",
      "Stochastic PLS / ridge CCA / CCA (GEP-EY, Chapman et al. 2024) between two views, e.g. PLINK "
      "genotypes "
      "and imaging features, columns sharded over ranks; exact PLS in one pass",
      {
          {"x", "", "first view: a PLINK prefix (path/name of .bed/.bim/.fam) or FILE.h5:/DATASET (n x p)",
           true},
          {"y", "", "second view: a PLINK prefix or FILE.h5:/DATASET (n x q); samples matched to x by id",
           true},
          {"method", "pls", "pls | ridge | cca"},
          {"alpha", "0.5", "ridge only: V = alpha U^T U + (1 - alpha) Var(XU), in (0, 1)"},
          {"components", "10", "k: canonical directions to learn"},
          {"solver", "ey",
           "ey (stochastic GEP-EY, any size) | exact (pls: one pass + SVD; ridge/cca: dense, small p)"},
          {"optimizer", "adam", "ey: adam | sgd (heavy-ball momentum)"},
          {"lr", "0", "ey: learning rate (0: the default for the method and optimizer)"},
          {"momentum", "0.9", "ey, sgd: momentum"},
          {"lr_schedule", "cosine",
           "ey: cosine (5% warm-up, then a cosine decay to a tenth over the planned epochs; lr is its peak) "
           "| "
           "constant"},
          {"batch_size", "100", "ey: samples per minibatch (over all ranks)"},
          {"epochs", "5", "ey: passes over the training samples"},
          {"seed", "0", "initial weights, minibatch order and the validation split"},
          {"val_fraction", "0.1", "share of matched samples held out for validation correlations"},
          {"standardize", "scale", "center | scale (columns to unit variance; genotypes by sqrt(2f(1-f)))"},
          {"precision", "float64", "float64 | float32 (weights, products, genotype decoding)"},
          {"reference", "none",
           "ey: none | exact (solve exactly first, then report the proportion of correlation captured, PCC)"},
          {"eval_every", "0", "ey: steps between validation scores in /history (0: once per epoch)"},
          {"storage", "auto",
           "HDF5 views: memory (read once) | stream (read rows from the file at each use: the page cache "
           "holds the data, a rank O(10 MB); the same results) | auto (stream a view whose block on a rank "
           "exceeds memory_budget_mb)"},
          {"memory_budget_mb", "4096", "storage=auto: MiB per rank and view above which a view is streamed"},
          {"progress_seconds", "5", "seconds between progress lines", false, false},
      },
      {"cca.h5"}};
}

Settings parse_settings(const engine::Config& config) {
  Settings s;
  s.x = parse_view_source(config.get("x"), "x");
  s.y = parse_view_source(config.get("y"), "y");
  const std::string method = config.get_choice("method", {"pls", "ridge", "cca"});
  s.method = method == "pls" ? Method::pls : method == "ridge" ? Method::ridge : Method::cca;
  s.alpha = s.method == Method::pls ? 1.0 : s.method == Method::cca ? 0.0 : config.get_double("alpha");
  if (s.method == Method::ridge && !(s.alpha > 0 && s.alpha < 1)) {
    throw UsageError(key_name("alpha") + ": " + config.get("alpha") +
                     " is not in (0, 1) (alpha 1 is method=pls, alpha 0 is method=cca)");
  }
  s.components = static_cast<int>(config.get_int("components", 1, 100000));
  s.solver = config.get_choice("solver", {"ey", "exact"}) == "exact" ? SolverKind::exact : SolverKind::ey;
  s.optimizer =
      config.get_choice("optimizer", {"adam", "sgd"}) == "sgd" ? OptimizerKind::sgd : OptimizerKind::adam;
  s.lr = config.get_double("lr");
  if (!(s.lr >= 0)) throw UsageError(key_name("lr") + ": " + config.get("lr") + " is negative");
  s.momentum = config.get_double("momentum");
  if (!(s.momentum >= 0 && s.momentum < 1)) {
    throw UsageError(key_name("momentum") + ": " + config.get("momentum") + " is not in [0, 1)");
  }
  s.cosine_schedule = config.get_choice("lr_schedule", {"cosine", "constant"}) == "cosine";
  s.batch_size = config.get_int("batch_size", 4, INT64_MAX);
  s.epochs = static_cast<int>(config.get_int("epochs", 1, 1000000));
  s.seed = static_cast<std::uint64_t>(config.get_int("seed", 0, INT64_MAX));
  s.val_fraction = config.get_double("val_fraction");
  if (!(s.val_fraction >= 0 && s.val_fraction < 1)) {
    throw UsageError(key_name("val_fraction") + ": " + config.get("val_fraction") + " is not in [0, 1)");
  }
  s.scale = config.get_choice("standardize", {"center", "scale"}) == "scale";
  s.float32 = config.get_choice("precision", {"float64", "float32"}) == "float32";
  s.reference = config.get_choice("reference", {"none", "exact"}) == "exact";
  s.eval_every = config.get_int("eval_every", 0, INT64_MAX);
  if (s.y.plink) {
    throw UsageError(key_name("y") + ": '" + s.y.text +
                     "' is a PLINK prefix; y must be an HDF5 dataset FILE.h5:/DATASET (genotypes go in x)");
  }
  const std::string storage = config.get_choice("storage", {"auto", "memory", "stream"});
  s.storage = storage == "memory"   ? Storage::memory
              : storage == "stream" ? Storage::stream
                                    : Storage::automatic;
  s.memory_budget_mb = config.get_int("memory_budget_mb", 0, INT64_MAX);
  s.progress_seconds = config.get_double("progress_seconds");
  if (!(s.progress_seconds >= 0)) {
    throw UsageError(key_name("progress_seconds") + ": " + config.get("progress_seconds") + " is negative");
  }
  return s;
}

}  // namespace skein::cca
