#include "tests/bad_inputs/good_inputs.hpp"

#include "tests/e2e/cli_runner.hpp"

#include <filesystem>

namespace skein::bad_inputs {

namespace {

bool kept(const H5Change& change, const std::string& name) {
  return change.omit.count(name) == 0;
}

void finish(H5File& file, const H5Change& change) {
  if (change.add) change.add(file);
}

const char* kWords[] = {"river",  "stone",   "market", "engine",  "garden", "signal",  "harbor", "winter",
                        "copper", "lantern", "meadow", "circuit", "violin", "glacier", "pepper", "orbit"};

}  // namespace

std::vector<std::string> with(std::vector<std::string> args, const std::string& option) {
  const std::string name = option.substr(0, option.find('=') + 1);
  for (auto& arg : args) {
    if (arg.rfind(name, 0) == 0) {
      arg = option;
      return args;
    }
  }
  args.push_back(option);
  return args;
}

// --- dsir -----------------------------------------------------------------------------------------------

std::string dsir_document(int i) {
  std::string text;
  for (int w = 0; w < 12; ++w) {
    if (w) text += ' ';
    text +=
        kWords[static_cast<std::uint64_t>((uniform(static_cast<std::uint64_t>(i) * 31 + w) + 1) * 8) % 16];
  }
  return "{\"id\": " + std::to_string(i) + ", \"text\": \"" + text + "\"}\n";
}

std::vector<std::string> dsir_good(Workspace& ws) {
  std::string target, raw;
  for (int i = 0; i < 40; ++i) target += dsir_document(i);
  for (int i = 1000; i < 1200; ++i) raw += dsir_document(i);
  test::write_file(ws.in + "/target.jsonl", target);
  test::write_file(ws.in + "/raw.jsonl", raw);
  return {"dsir",
          "--dsir.target=" + ws.in + "/target.jsonl",
          "--dsir.raw=" + ws.in + "/raw.jsonl",
          "--dsir.num_select=5",
          "--dsir.min_tokens=1",
          "--dsir.num_buckets=1000",
          "--dsir.piece_size=4k"};
}

// --- poisson --------------------------------------------------------------------------------------------

std::vector<double> poisson_cells() {
  std::vector<double> cells(kPoissonN * kPoissonN * kPoissonN, 0.0);
  cells[0] = 2;
  return cells;
}

std::vector<double> poisson_rhs() {
  std::vector<double> rhs(kPoissonN * kPoissonN * kPoissonN);
  for (std::size_t i = 0; i < rhs.size(); ++i) rhs[i] = uniform(i);
  return rhs;
}

std::vector<std::string> poisson_good(Workspace& ws, const H5Change& change) {
  const std::string path = ws.in + "/problem.h5";
  {
    H5File file(path);
    const hsize_t n = kPoissonN;
    if (kept(change, "/cell_type")) file.numbers("/cell_type", {n, n, n}, H5T_STD_U8LE, poisson_cells());
    if (kept(change, "/rhs")) file.doubles("/rhs", {n, n, n}, poisson_rhs());
    finish(file, change);
  }
  return {"poisson",
          "--poisson.grid=" + std::to_string(kPoissonN),
          "--poisson.problem=file",
          "--poisson.file=" + path,
          "--poisson.solver=cg",
          "--poisson.tol=1e-10"};
}

// --- hessian --------------------------------------------------------------------------------------------

std::vector<double> hessian_labels() {
  std::vector<double> y(30);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<double>(i % 3);
  return y;
}

std::vector<double> hessian_x() {
  const auto y = hessian_labels();
  std::vector<double> x(30 * 4);
  for (std::size_t i = 0; i < 30; ++i)
    for (std::size_t j = 0; j < 4; ++j)
      x[i * 4 + j] = (static_cast<double>(j % 3) == y[i] ? 1.0 : 0.0) + 0.5 * uniform(9000 + i * 4 + j);
  return x;
}

std::vector<std::string> hessian_good(Workspace& ws, const H5Change& model, const H5Change& data) {
  const std::string model_path = ws.in + "/model.h5", data_path = ws.in + "/data.h5";
  {
    H5File file(model_path);
    file.group("/model");
    if (kept(model, "activation")) file.string_attribute("/model", "activation", "tanh");
    if (kept(model, "loss")) file.string_attribute("/model", "loss", "cross_entropy");
    const std::vector<hsize_t> sizes = {4, 6, 3};
    std::uint64_t counter = 100;
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
      const hsize_t in = sizes[l], out = sizes[l + 1];
      std::vector<double> w(out * in), b(out);
      for (auto& v : w) v = 0.6 * uniform(counter++);
      for (auto& v : b) v = 0.6 * uniform(counter++);
      const std::string index = std::to_string(l);
      if (kept(model, "W" + index)) file.numbers("/model/W" + index, {out, in}, H5T_IEEE_F32LE, w);
      if (kept(model, "b" + index)) file.numbers("/model/b" + index, {out}, H5T_IEEE_F32LE, b);
    }
    finish(file, model);
  }
  {
    H5File file(data_path);
    if (kept(data, "/X")) file.numbers("/X", {30, 4}, H5T_IEEE_F32LE, hessian_x());
    if (kept(data, "/y")) file.numbers("/y", {30}, H5T_STD_I64LE, hessian_labels());
    finish(file, data);
  }
  return {"hessian",
          "--hessian.model=" + model_path,
          "--hessian.data=" + data_path,
          "--hessian.top_k=2",
          "--hessian.tol=1e-8",
          "--hessian.trace_samples=4",
          "--hessian.slq_vectors=1",
          "--hessian.slq_steps=8",
          "--hessian.density_points=50"};
}

// --- cca ------------------------------------------------------------------------------------------------

std::vector<std::string> cca_sample_ids(int n) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back("s" + std::to_string(i));
  return ids;
}

std::vector<double> cca_y() {
  std::vector<double> y(kCcaSamples * kCcaFeatures);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = uniform(7000 + i);
  return y;
}

std::vector<std::string> cca_good(Workspace& ws, const H5Change& y) {
  polymorphic_plink(kCcaSamples, kCcaSnps).write(ws.in + "/geno");
  {
    H5File file(ws.in + "/y.h5");
    if (kept(y, "/Y")) file.doubles("/Y", {kCcaSamples, kCcaFeatures}, cca_y());
    if (kept(y, "/sample_id")) file.strings("/sample_id", cca_sample_ids(kCcaSamples));
    finish(file, y);
  }
  return {"cca",
          "--cca.x=" + ws.in + "/geno",
          "--cca.y=" + ws.in + "/y.h5:/Y",
          "--cca.components=2",
          "--cca.batch_size=10",
          "--cca.epochs=2",
          "--cca.lr_schedule=constant"};
}

}  // namespace skein::bad_inputs
