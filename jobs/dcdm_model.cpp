#include "jobs/dcdm_model.hpp"

#include "engine/error.hpp"
#include "io/h5_parallel_reader.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace skein::dcdm {

namespace {

std::string layer_name(const solvers::cnn::DcdmArchitecture& a, int l) {
  if (l == a.conv_count()) return "/model/output";
  char name[32];
  std::snprintf(name, sizeof name, "/model/conv%02d", l);
  return name;
}

// The expected (weight shape, bias shape) of layer l.
std::pair<std::vector<std::uint64_t>, std::vector<std::uint64_t>> layer_shapes(
    const solvers::cnn::DcdmArchitecture& a, int l) {
  const auto c = static_cast<std::uint64_t>(a.channels);
  if (l == a.conv_count()) return {{1, c}, {1}};
  return {{c, static_cast<std::uint64_t>(a.conv_in(l)), 3, 3, 3}, {c}};
}

std::string shape_text(const std::vector<std::uint64_t>& s) {
  std::string text = "(";
  for (std::size_t i = 0; i < s.size(); ++i) text += (i ? ", " : "") + std::to_string(s[i]);
  return text + ")";
}

}  // namespace

std::array<std::string, 2> layer_datasets(const solvers::cnn::DcdmArchitecture& architecture, int l) {
  const std::string group = layer_name(architecture, l);
  return {group + "/weight", group + "/bias"};
}

LoadedModel load_model(const comm::Communicator& comm, const std::string& path) {
  io::H5ParallelReader reader(comm, path);
  const std::string where = "model file " + path + ": ";
  auto fail = [&](const std::string& what) { comm.agree([&] { throw engine::DataError(where + what); }); };
  if (!reader.exists("/model")) fail("no /model group (not a DCDM model; dcdm-train writes one)");
  for (const char* attribute : {"kind", "format_version", "channels", "fine_pairs_before", "coarse_pairs",
                                "fine_pairs_after", "trained_grid", "parameter_count"}) {
    if (!reader.exists("/model", attribute)) fail(std::string("/model has no attribute '") + attribute + "'");
  }
  const std::string kind = reader.string_attribute("/model", "kind");
  if (kind != kModelKind) fail("/model kind is '" + kind + "', expected '" + kModelKind + "'");
  const std::int64_t version = reader.int_attribute("/model", "format_version");
  if (version != kModelFormatVersion) {
    fail("unknown format_version " + std::to_string(version) + " (this skein reads version " +
         std::to_string(kModelFormatVersion) + ")");
  }
  LoadedModel model;
  auto& a = model.architecture;
  a.channels = static_cast<int>(reader.int_attribute("/model", "channels"));
  a.fine_pairs_before = static_cast<int>(reader.int_attribute("/model", "fine_pairs_before"));
  a.coarse_pairs = static_cast<int>(reader.int_attribute("/model", "coarse_pairs"));
  a.fine_pairs_after = static_cast<int>(reader.int_attribute("/model", "fine_pairs_after"));
  try {
    a.validate();
  } catch (const std::invalid_argument& e) {
    fail(std::string("architecture attribute ") + e.what());
  }
  if (a.conv_count() > 1000)
    fail("architecture attributes ask for " + std::to_string(a.conv_count()) + " layers");
  const auto grid = reader.int_list_attribute("/model", "trained_grid");
  if (grid.size() != 3) fail("trained_grid has " + std::to_string(grid.size()) + " entries, expected 3");
  for (int i = 0; i < 3; ++i) model.trained_grid[i] = grid[i];
  const std::int64_t count = reader.int_attribute("/model", "parameter_count");
  if (count != a.parameter_count()) {
    fail("parameter_count " + std::to_string(count) + " does not fit the architecture attributes (channels " +
         std::to_string(a.channels) + ", pairs " + std::to_string(a.fine_pairs_before) + "/" +
         std::to_string(a.coarse_pairs) + "/" + std::to_string(a.fine_pairs_after) + ": " +
         std::to_string(a.parameter_count()) + ")");
  }
  model.parameters.reserve(static_cast<std::size_t>(count));
  for (int l = 0; l <= a.conv_count(); ++l) {
    const auto names = layer_datasets(a, l);
    const auto shapes = layer_shapes(a, l);
    for (int part = 0; part < 2; ++part) {
      const auto& expected = part == 0 ? shapes.first : shapes.second;
      if (!reader.exists(names[part])) {
        fail("dataset " + names[part] + " is missing (the architecture attributes ask for " +
             std::to_string(a.conv_count()) + " convolutions)");
      }
      const auto found = reader.shape(names[part]);
      if (found != expected) {
        fail("dataset " + names[part] + " has shape " + shape_text(found) +
             ", the architecture attributes need " + shape_text(expected));
      }
      const auto values = reader.read_replicated<float>(names[part]);
      for (std::size_t x = 0; x < values.size(); ++x) {
        if (!std::isfinite(values[x])) {
          fail("dataset " + names[part] + " holds a non-finite value (" + std::to_string(values[x]) +
               ") at flat index " + std::to_string(x));
        }
      }
      model.parameters.insert(model.parameters.end(), values.begin(), values.end());
    }
  }
  // A file with more convolutions than the attributes say was written for another architecture.
  char extra[32];
  std::snprintf(extra, sizeof extra, "/model/conv%02d", a.conv_count());
  if (reader.exists(extra)) {
    fail(std::string("holds ") + extra + " beyond the " + std::to_string(a.conv_count()) +
         " convolutions the architecture attributes ask for");
  }
  reader.close();
  return model;
}

void write_model(io::H5Writer& out, const LoadedModel& model) {
  const auto& a = model.architecture;
  if (static_cast<std::int64_t>(model.parameters.size()) != a.parameter_count()) {
    throw engine::InternalError("write_model: " + std::to_string(model.parameters.size()) +
                                " parameters for an architecture of " + std::to_string(a.parameter_count()));
  }
  out.create_group("/model");
  out.set_attribute("/model", "kind", kModelKind);
  out.set_attribute("/model", "format_version", kModelFormatVersion);
  out.set_attribute("/model", "channels", a.channels);
  out.set_attribute("/model", "fine_pairs_before", a.fine_pairs_before);
  out.set_attribute("/model", "coarse_pairs", a.coarse_pairs);
  out.set_attribute("/model", "fine_pairs_after", a.fine_pairs_after);
  out.set_attribute("/model", "trained_grid",
                    std::vector<std::int64_t>(model.trained_grid.begin(), model.trained_grid.end()));
  out.set_attribute("/model", "parameter_count", a.parameter_count());
  const bool root = out.comm().rank() == 0;
  std::size_t at = 0;
  for (int l = 0; l <= a.conv_count(); ++l) {
    const auto names = layer_datasets(a, l);
    const auto shapes = layer_shapes(a, l);
    for (int part = 0; part < 2; ++part) {
      const auto& shape = part == 0 ? shapes.first : shapes.second;
      std::uint64_t size = 1;
      for (const auto s : shape) size *= s;
      const std::vector<std::uint64_t> zero(shape.size(), 0);
      std::vector<std::uint64_t> extent = shape;
      if (!root) extent.assign(shape.size(), 0);
      out.write_block(names[part], shape, zero, extent, model.parameters.data() + at);
      at += size;
    }
  }
}

}  // namespace skein::dcdm
