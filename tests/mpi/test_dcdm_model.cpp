// jobs/dcdm_model: write_model then load_model gives back the architecture, trained grid and parameters
// (h5py-readable PyTorch-layout datasets); every malformed file (missing, not HDF5, no /model, wrong kind,
// unknown format_version, attributes that do not fit the datasets, NaN weights) is the same agreed
// DataError on every rank, naming the file and what is wrong.
// skein-test-ranks: 1 2
#include "comm/communicator.hpp"
#include "engine/error.hpp"
#include "io/hdf5.hpp"
#include "jobs/dcdm_model.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace {

using skein::comm::Communicator;
using skein::solvers::cnn::DcdmArchitecture;
namespace dcdm = skein::dcdm;
namespace fs = std::filesystem;

// A small architecture: 5 convolutions of 2 channels, 1 coarse pair.
DcdmArchitecture small_architecture() {
  DcdmArchitecture a;
  a.channels = 2;
  a.fine_pairs_before = 0;
  a.coarse_pairs = 1;
  a.fine_pairs_after = 0;
  return a;
}

dcdm::LoadedModel small_model() {
  dcdm::LoadedModel m;
  m.architecture = small_architecture();
  m.trained_grid = {8, 6, 5};
  m.parameters.resize(static_cast<std::size_t>(m.architecture.parameter_count()));
  for (std::size_t x = 0; x < m.parameters.size(); ++x)
    m.parameters[x] = static_cast<float>(std::sin(0.37 * static_cast<double>(x)));
  return m;
}

// What a hand-written model file holds: attributes as given, and the datasets of `datasets_for` filled
// from `parameters` (NaN at flat index nan_at when >= 0).
struct FileSpec {
  bool model_group = true;
  std::string kind = dcdm::kModelKind;
  std::int64_t format_version = dcdm::kModelFormatVersion;
  DcdmArchitecture attributes = small_architecture();
  DcdmArchitecture datasets_for = small_architecture();
  std::int64_t parameter_count = -1;  // -1: attributes.parameter_count()
  std::int64_t nan_at = -1;
};

void write_spec(const Communicator& world, const std::string& path, const FileSpec& spec) {
  skein::io::H5Writer out(world, path);
  if (!spec.model_group) {
    out.create_group("/other");
    out.set_attribute("/other", "kind", spec.kind);
    out.close();
    return;
  }
  dcdm::LoadedModel m;
  m.architecture = spec.datasets_for;
  m.trained_grid = {8, 6, 5};
  m.parameters.assign(static_cast<std::size_t>(spec.datasets_for.parameter_count()), 0.25f);
  if (spec.nan_at >= 0) m.parameters[static_cast<std::size_t>(spec.nan_at)] = std::nanf("");
  dcdm::write_model(out, m);
  // Then overwrite the attributes with the spec's.
  const auto& a = spec.attributes;
  out.set_attribute("/model", "kind", spec.kind);
  out.set_attribute("/model", "format_version", spec.format_version);
  out.set_attribute("/model", "channels", a.channels);
  out.set_attribute("/model", "fine_pairs_before", a.fine_pairs_before);
  out.set_attribute("/model", "coarse_pairs", a.coarse_pairs);
  out.set_attribute("/model", "fine_pairs_after", a.fine_pairs_after);
  out.set_attribute("/model", "parameter_count",
                    spec.parameter_count >= 0 ? spec.parameter_count : a.parameter_count());
  out.close();
}

class DcdmModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (world.rank() == 0) {
      dir = (fs::temp_directory_path() / ("skein-dcdm-model-" + std::to_string(::getpid()))).string();
      fs::create_directories(dir);
    }
    world.bcast(dir, 0);
    world.barrier();
  }
  void TearDown() override {
    world.barrier();
    if (world.rank() == 0) fs::remove_all(dir);
  }
  // load_model on every rank must throw the same agreed DataError naming the file and holding `parts`.
  void expect_agreed_error(const std::string& path, const std::vector<std::string>& parts) {
    std::string message;
    bool agreed = false;
    try {
      dcdm::load_model(world, path);
      ADD_FAILURE() << path << ": no error; expected one mentioning " << parts.front();
    } catch (const skein::engine::DataError& e) {
      message = e.what();
      agreed = e.agreed();
    }
    EXPECT_TRUE(agreed) << message;
    EXPECT_NE(message.find(path), std::string::npos) << message;
    for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
    std::string root_message = message;
    world.bcast(root_message, 0);
    EXPECT_EQ(message, root_message);
  }
  std::string file(const std::string& name) const { return dir + "/" + name; }
  void expect_spec_error(const std::string& name, const FileSpec& spec,
                         const std::vector<std::string>& parts) {
    write_spec(world, file(name), spec);
    expect_agreed_error(file(name), parts);
  }

  Communicator world{MPI_COMM_WORLD};
  std::string dir;
};

TEST_F(DcdmModelTest, WrittenModelLoadsBackExactly) {
  const auto model = small_model();
  {
    skein::io::H5Writer out(world, file("model.h5"));
    dcdm::write_model(out, model);
    out.close();
  }
  const auto loaded = dcdm::load_model(world, file("model.h5"));
  EXPECT_EQ(loaded.architecture.channels, 2);
  EXPECT_EQ(loaded.architecture.fine_pairs_before, 0);
  EXPECT_EQ(loaded.architecture.coarse_pairs, 1);
  EXPECT_EQ(loaded.architecture.fine_pairs_after, 0);
  EXPECT_EQ(loaded.trained_grid, model.trained_grid);
  ASSERT_EQ(loaded.parameters.size(), model.parameters.size());
  for (std::size_t x = 0; x < model.parameters.size(); ++x)
    EXPECT_EQ(loaded.parameters[x], model.parameters[x]);
  EXPECT_EQ(dcdm::layer_datasets(model.architecture, 0)[0], "/model/conv00/weight");
  EXPECT_EQ(dcdm::layer_datasets(model.architecture, 5)[1], "/model/output/bias");
}

TEST_F(DcdmModelTest, MissingFileAndNotHdf5) {
  expect_agreed_error(file("missing.h5"), {"No such"});
  if (world.rank() == 0) std::ofstream(file("plain.h5")) << "not a model\n";
  world.barrier();
  expect_agreed_error(file("plain.h5"), {"not an HDF5"});
}

TEST_F(DcdmModelTest, NoModelGroup) {
  FileSpec spec;
  spec.model_group = false;
  expect_spec_error("no_model.h5", spec, {"no /model group"});
}

TEST_F(DcdmModelTest, WrongKind) {
  FileSpec spec;
  spec.kind = "keras-cnn";
  expect_spec_error("kind.h5", spec, {"kind is 'keras-cnn'", "dcdm-cnn"});
}

TEST_F(DcdmModelTest, UnknownFormatVersion) {
  FileSpec spec;
  spec.format_version = 7;
  expect_spec_error("version.h5", spec, {"unknown format_version 7"});
}

TEST_F(DcdmModelTest, InvalidArchitectureAttribute) {
  FileSpec spec;
  spec.attributes.channels = 0;
  expect_spec_error("channels0.h5", spec, {"channels must be in [1, 64], got 0"});
  spec = FileSpec();
  spec.attributes.coarse_pairs = -1;
  expect_spec_error("pairs.h5", spec, {"coarse_pairs must be >= 0, got -1"});
}

TEST_F(DcdmModelTest, ParameterCountThatDoesNotFitTheArchitecture) {
  FileSpec spec;
  spec.parameter_count = small_architecture().parameter_count() + 1;
  expect_spec_error("count.h5", spec,
                    {"parameter_count " + std::to_string(spec.parameter_count), "does not fit"});
}

TEST_F(DcdmModelTest, AttributesThatDoNotFitTheDatasetShapes) {
  // Attributes say 3 channels, the datasets hold 2: the first weight's shape is named.
  FileSpec spec;
  spec.attributes.channels = 3;
  expect_spec_error("shape.h5", spec,
                    {"/model/conv00/weight has shape (2, 1, 3, 3, 3)", "need (3, 1, 3, 3, 3)"});
  // Attributes ask for more convolutions than the file holds: the first missing one is named.
  spec = FileSpec();
  spec.attributes.coarse_pairs = 2;
  expect_spec_error("layers.h5", spec, {"/model/conv05/weight", "missing"});
  // Fewer: the file holds convolutions the attributes do not account for.
  spec = FileSpec();
  spec.attributes.coarse_pairs = 0;
  expect_spec_error("fewer.h5", spec, {"holds /model/conv03 beyond the 3 convolutions"});
}

TEST_F(DcdmModelTest, NonFiniteWeight) {
  FileSpec spec;
  // Flat index 60 lies in conv01's weight (conv00: 54 weights + 2 biases).
  spec.nan_at = 60;
  expect_spec_error("nan.h5", spec, {"/model/conv01/weight", "non-finite", "flat index 4"});
}

}  // namespace
