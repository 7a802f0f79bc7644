// HDF5 inputs for the hessian e2e tests: a seeded tanh MLP in tools/hessian/make_model.py's layout and
// labelled rows, from a generator independent of skein's own, plus the small HDF5 writers they use.
#pragma once

#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace skein::test {

// splitmix64 -> uniform [-1, 1): test inputs that do not depend on skein's own generators.
inline double uniform(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-52 - 1.0;
}

inline void write_dataset(hid_t file, const std::string& name, const std::vector<hsize_t>& shape,
                          hid_t file_type, hid_t memory_type, const void* data) {
  const hid_t space = H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr);
  const hid_t set = H5Dcreate2(file, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(set, 0) << name;
  H5Dwrite(set, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(set);
  H5Sclose(space);
}

inline void write_string_attribute(hid_t object, const std::string& name, const std::string& value) {
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, value.size());
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t attribute = H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(attribute, type, value.data());
  H5Aclose(attribute);
  H5Sclose(space);
  H5Tclose(type);
}

struct HessianInputFiles {
  std::string model, data;
};

// DIR/model.h5: a tanh MLP with cross-entropy loss and layer widths `sizes`, weights and biases uniform in
// +-1.5/sqrt(fan-in); DIR/data.h5: `rows` rows of sizes.front() features whose class (of sizes.back()) shows
// as a raised feature, plus noise.
inline HessianInputFiles write_tanh_mlp_inputs(const std::string& dir, const std::vector<hsize_t>& sizes,
                                               hsize_t rows) {
  HessianInputFiles made{dir + "/model.h5", dir + "/data.h5"};
  hid_t file = H5Fcreate(made.model.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const hid_t group = H5Gcreate2(file, "/model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  write_string_attribute(group, "activation", "tanh");
  write_string_attribute(group, "loss", "cross_entropy");
  std::uint64_t counter = 1000;
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    const hsize_t outputs = sizes[l + 1], inputs = sizes[l];
    std::vector<float> w(outputs * inputs), b(outputs);
    for (auto& v : w) v = static_cast<float>(1.5 / std::sqrt(double(inputs)) * uniform(counter++));
    for (auto& v : b) v = static_cast<float>(1.5 / std::sqrt(double(inputs)) * uniform(counter++));
    write_dataset(file, "/model/W" + std::to_string(l), {outputs, inputs}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                  w.data());
    write_dataset(file, "/model/b" + std::to_string(l), {outputs}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                  b.data());
  }
  H5Gclose(group);
  H5Fclose(file);
  const hsize_t features = sizes.front();
  const auto classes = static_cast<std::int64_t>(sizes.back());
  std::vector<float> x(rows * features);
  std::vector<std::int64_t> y(rows);
  for (hsize_t i = 0; i < rows; ++i) {
    y[i] = static_cast<std::int64_t>((uniform(5000 + i) + 1.0) * 0.5 * double(classes)) % classes;
    for (hsize_t j = 0; j < features; ++j) {
      const double raised = static_cast<std::int64_t>(j) % classes == y[i] ? 1.0 : 0.0;
      x[i * features + j] = static_cast<float>(raised + 0.7 * uniform(9000 + i * 64 + j));
    }
  }
  file = H5Fcreate(made.data.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  write_dataset(file, "/X", {rows, features}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, x.data());
  write_dataset(file, "/y", {rows}, H5T_STD_I64LE, H5T_NATIVE_INT64, y.data());
  H5Fclose(file);
  return made;
}

}  // namespace skein::test
