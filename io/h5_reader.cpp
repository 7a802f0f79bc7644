#include "io/h5_reader.hpp"

#include "engine/error.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

namespace skein::io {

using detail::check_id;
using detail::check_status;
using detail::H5Handle;

namespace detail {

std::vector<hsize_t> dims_of(hid_t space) {
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

std::vector<Entry> list_objects(hid_t file) {
  std::vector<std::string> names;
  H5Lvisit(
      file, H5_INDEX_NAME, H5_ITER_INC,
      [](hid_t, const char* name, const H5L_info_t* info, void* data) -> herr_t {
        if (info->type == H5L_TYPE_HARD) static_cast<std::vector<std::string>*>(data)->push_back(name);
        return 0;
      },
      &names);
  std::vector<Entry> entries;
  for (const auto& name : names) {
    H5Handle obj(H5Oopen(file, name.c_str(), H5P_DEFAULT), H5Oclose);
    if (!obj) continue;
    entries.push_back({"/" + name, H5Iget_type(obj.get())});
  }
  return entries;
}

}  // namespace detail

namespace {

using detail::dims_of;
using detail::list_objects;

void require_file(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    throw engine::DataError("cannot open " + path + ": " + std::strerror(errno));
  if (S_ISDIR(info.st_mode)) throw engine::DataError(path + " is a directory, not an HDF5 file");
}

}  // namespace

namespace detail {

H5Handle open_for_reading(const std::string& path) {
  QuietErrors quiet;
  require_file(path);
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 < 0) throw engine::DataError("cannot read " + path + ": " + h5_error_text());
  if (is_hdf5 == 0) throw engine::DataError(path + " is not an HDF5 file");
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) throw engine::DataError("cannot open " + path + " as HDF5: " + h5_error_text());
  return H5Handle(file, H5Fclose);
}

void read_dataset_raw(const std::string& path, const std::string& name, ScalarType type,
                      const std::function<void*(std::uint64_t)>& allocate) {
  QuietErrors quiet;
  H5Handle file = open_for_reading(path);
  if (!h5_exists(path, name)) throw engine::DataError(path + " has no dataset " + name);
  H5Handle ds(check_id(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), "H5Dopen2", path, name), H5Dclose);
  H5Handle space(check_id(H5Dget_space(ds.get()), "H5Dget_space", path, name), H5Sclose);
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  check_status(count < 0 ? -1 : 0, "H5Sget_simple_extent_npoints", path, name);
  void* buffer = allocate(static_cast<std::uint64_t>(count));
  if (count == 0) return;
  check_status(H5Dread(ds.get(), native_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer), "H5Dread", path,
               name);
}

void read_block_raw(const std::string& path, const std::string& name, ScalarType type,
                    const std::vector<std::uint64_t>& offset, const std::vector<std::uint64_t>& extent,
                    void* buffer) {
  QuietErrors quiet;
  H5Handle file = open_for_reading(path);
  if (!h5_exists(path, name)) throw engine::DataError(path + " has no dataset " + name);
  H5Handle ds(check_id(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), "H5Dopen2", path, name), H5Dclose);
  H5Handle space(check_id(H5Dget_space(ds.get()), "H5Dget_space", path, name), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank != static_cast<int>(offset.size()) || extent.size() != offset.size()) {
    throw engine::DataError(path + ": " + name + " has " + std::to_string(rank) + " dimensions, expected " +
                            std::to_string(offset.size()));
  }
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  std::uint64_t count = 1;
  for (std::size_t d = 0; d < dims.size(); ++d) {
    if (offset[d] + extent[d] > dims[d]) {
      throw engine::DataError(path + ": " + name + " is too small for the block asked for (dimension " +
                              std::to_string(d) + " has " + std::to_string(dims[d]) + ")");
    }
    count *= extent[d];
  }
  if (count == 0) return;
  const std::vector<hsize_t> start(offset.begin(), offset.end()), block(extent.begin(), extent.end());
  check_status(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, block.data(), nullptr),
               "H5Sselect_hyperslab", path, name);
  H5Handle memory(check_id(H5Screate_simple(rank, block.data(), nullptr), "H5Screate_simple", path, name),
                  H5Sclose);
  check_status(H5Dread(ds.get(), native_type(type), memory.get(), space.get(), H5P_DEFAULT, buffer),
               "H5Dread", path, name);
}

}  // namespace detail

bool h5_exists(const std::string& path, const std::string& object, const std::string& attribute) {
  detail::QuietErrors quiet;
  H5Handle file = detail::open_for_reading(path);
  std::string prefix;
  std::stringstream parts(object);
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part.empty()) continue;
    prefix += "/" + part;
    if (H5Lexists(file.get(), prefix.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
  }
  if (attribute.empty()) return true;
  const std::string where = prefix.empty() ? "/" : prefix;
  const htri_t found = H5Aexists_by_name(file.get(), where.c_str(), attribute.c_str(), H5P_DEFAULT);
  H5Eclear2(H5E_DEFAULT);
  return found > 0;
}

std::vector<std::uint64_t> dataset_shape(const std::string& path, const std::string& name) {
  detail::QuietErrors quiet;
  H5Handle file = detail::open_for_reading(path);
  if (!h5_exists(path, name)) throw engine::DataError(path + " has no dataset " + name);
  H5Handle ds(check_id(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), "H5Dopen2", path, name), H5Dclose);
  H5Handle space(check_id(H5Dget_space(ds.get()), "H5Dget_space", path, name), H5Sclose);
  const auto dims = dims_of(space.get());
  return std::vector<std::uint64_t>(dims.begin(), dims.end());
}

std::vector<std::string> read_strings(const std::string& path, const std::string& name) {
  detail::QuietErrors quiet;
  H5Handle file = detail::open_for_reading(path);
  if (!h5_exists(path, name)) throw engine::DataError(path + " has no dataset " + name);
  H5Handle ds(check_id(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), "H5Dopen2", path, name), H5Dclose);
  H5Handle type(check_id(H5Dget_type(ds.get()), "H5Dget_type", path, name), H5Tclose);
  H5Handle space(check_id(H5Dget_space(ds.get()), "H5Dget_space", path, name), H5Sclose);
  if (H5Tget_class(type.get()) != H5T_STRING)
    throw engine::DataError(path + ": " + name + " is not a string dataset");
  const auto count =
      static_cast<std::size_t>(std::max<hssize_t>(H5Sget_simple_extent_npoints(space.get()), 0));
  std::vector<std::string> out;
  if (count == 0) return out;
  if (H5Tis_variable_str(type.get()) > 0) {
    H5Handle mem(check_id(H5Tcopy(H5T_C_S1), "H5Tcopy", path, name), H5Tclose);
    check_status(H5Tset_size(mem.get(), H5T_VARIABLE), "H5Tset_size", path, name);
    check_status(H5Tset_cset(mem.get(), H5Tget_cset(type.get())), "H5Tset_cset", path, name);
    std::vector<char*> values(count, nullptr);
    check_status(H5Dread(ds.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), "H5Dread", path,
                 name);
    for (char* v : values) {
      out.emplace_back(v == nullptr ? "" : v);
      H5free_memory(v);
    }
  } else {
    const std::size_t size = H5Tget_size(type.get());
    std::vector<char> values(count * size);
    check_status(H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), "H5Dread", path,
                 name);
    for (std::size_t i = 0; i < count; ++i) {
      const char* begin = values.data() + i * size;
      out.emplace_back(begin, strnlen(begin, size));
    }
  }
  return out;
}

namespace {

H5Handle open_attribute(hid_t file, const std::string& path, const std::string& object,
                        const std::string& name) {
  const std::string where = object.empty() ? "/" : object;
  const htri_t found = H5Aexists_by_name(file, where.c_str(), name.c_str(), H5P_DEFAULT);
  if (found <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw engine::DataError(path + " has no attribute " + name + " on " + where);
  }
  return H5Handle(check_id(H5Aopen_by_name(file, where.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                           "H5Aopen_by_name", path, where + "@" + name),
                  H5Aclose);
}

}  // namespace

std::string read_string_attribute(const std::string& path, const std::string& object,
                                  const std::string& name) {
  detail::QuietErrors quiet;
  H5Handle file = detail::open_for_reading(path);
  H5Handle attr = open_attribute(file.get(), path, object, name);
  H5Handle type(check_id(H5Aget_type(attr.get()), "H5Aget_type", path, name), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING) {
    throw engine::DataError(path + ": attribute " + name + " on " + object + " is not a string");
  }
  if (H5Tis_variable_str(type.get()) > 0) {
    H5Handle mem(check_id(H5Tcopy(H5T_C_S1), "H5Tcopy", path, name), H5Tclose);
    check_status(H5Tset_size(mem.get(), H5T_VARIABLE), "H5Tset_size", path, name);
    check_status(H5Tset_cset(mem.get(), H5Tget_cset(type.get())), "H5Tset_cset", path, name);
    char* value = nullptr;
    check_status(H5Aread(attr.get(), mem.get(), &value), "H5Aread", path, name);
    std::string out = value == nullptr ? "" : value;
    H5free_memory(value);
    return out;
  }
  const std::size_t size = H5Tget_size(type.get());
  std::vector<char> value(size + 1, '\0');
  check_status(H5Aread(attr.get(), type.get(), value.data()), "H5Aread", path, name);
  return std::string(value.data(), strnlen(value.data(), size));
}

double read_double_attribute(const std::string& path, const std::string& object, const std::string& name) {
  detail::QuietErrors quiet;
  H5Handle file = detail::open_for_reading(path);
  H5Handle attr = open_attribute(file.get(), path, object, name);
  double value = 0;
  check_status(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &value), "H5Aread", path, name);
  return value;
}

std::int64_t read_int64_attribute(const std::string& path, const std::string& object,
                                  const std::string& name) {
  detail::QuietErrors quiet;
  H5Handle file = detail::open_for_reading(path);
  H5Handle attr = open_attribute(file.get(), path, object, name);
  std::int64_t value = 0;
  check_status(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), "H5Aread", path, name);
  return value;
}

std::vector<std::string> list_datasets(const std::string& path, const std::string& group) {
  detail::QuietErrors quiet;
  H5Handle file = detail::open_for_reading(path);
  const std::string prefix = group.back() == '/' ? group : group + "/";
  std::vector<std::string> names;
  for (const auto& entry : list_objects(file.get())) {
    if (entry.type == H5I_DATASET && entry.name.rfind(prefix, 0) == 0) names.push_back(entry.name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace skein::io
