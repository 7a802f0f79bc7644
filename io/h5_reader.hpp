// Reading HDF5 files serially: whole datasets, one rank's N-D block, strings, attributes, shapes.
#pragma once

#include "io/hdf5.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace skein::io {

namespace detail {
// A dataspace's dimensions.
std::vector<hsize_t> dims_of(hid_t space);
// Every object below the root (hard links), with its type, in HDF5's name order.
struct Entry {
  std::string name;
  H5I_type_t type;
};
std::vector<Entry> list_objects(hid_t file);
// Opens `path` read-only, serially; DataError naming it when it is missing, unreadable or not HDF5.
H5Handle open_for_reading(const std::string& path);
// Reads the whole dataset converted to `type`; `allocate(count)` returns room for `count` elements.
void read_dataset_raw(const std::string& path, const std::string& name, ScalarType type,
                      const std::function<void*(std::uint64_t)>& allocate);
// Reads the block [offset, offset + extent) of an N-D dataset, converted to `type`, into `buffer`
// (row-major); DataError when the dataset is missing, has another rank, or is too small.
void read_block_raw(const std::string& path, const std::string& name, ScalarType type,
                    const std::vector<std::uint64_t>& offset, const std::vector<std::uint64_t>& extent,
                    void* buffer);
}  // namespace detail

// One rank's block of an N-D dataset (serial read of a hyperslab, so each rank reads exactly its part).
template <class T>
std::vector<T> read_block(const std::string& path, const std::string& name,
                          const std::vector<std::uint64_t>& offset,
                          const std::vector<std::uint64_t>& extent) {
  std::uint64_t count = 1;
  for (const auto e : extent) count *= e;
  std::vector<T> values(static_cast<std::size_t>(count));
  detail::read_block_raw(path, name, detail::scalar_type_of<T>(), offset, extent, values.data());
  return values;
}

// A whole dataset, flattened row-major and converted to T (DataError if the file or dataset is missing).
template <class T>
std::vector<T> read_dataset(const std::string& path, const std::string& name) {
  std::vector<T> values;
  detail::read_dataset_raw(path, name, detail::scalar_type_of<T>(), [&](std::uint64_t count) -> void* {
    values.resize(count);
    return values.data();
  });
  return values;
}
std::vector<std::uint64_t> dataset_shape(const std::string& path, const std::string& name);
// A 1-D string dataset (variable- or fixed-length).
std::vector<std::string> read_strings(const std::string& path, const std::string& name);
// Scalar attributes of a group or dataset ("/" for the root).
std::string read_string_attribute(const std::string& path, const std::string& object,
                                  const std::string& name);
double read_double_attribute(const std::string& path, const std::string& object, const std::string& name);
std::int64_t read_int64_attribute(const std::string& path, const std::string& object,
                                  const std::string& name);
// The full names of every dataset below `group` (recursively), sorted.
std::vector<std::string> list_datasets(const std::string& path, const std::string& group);
// Whether a group, dataset or attribute (when `attribute` is non-empty) exists.
bool h5_exists(const std::string& path, const std::string& object, const std::string& attribute = "");

}  // namespace skein::io
