#include "io/h5_parallel_reader.hpp"

#include "engine/error.hpp"
#include "engine/log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace skein::io {

using detail::check_id;
using detail::check_status;
using detail::H5Handle;

std::uint64_t& detail::max_bytes_per_read() {
  // Stay well under MPI's 2 GiB int counts per H5Dread (as the writer does for H5Dwrite).
  static std::uint64_t bytes = std::uint64_t{1} << 30;
  return bytes;
}

namespace {

std::string normalize(const std::string& name) {
  std::string out = name.empty() || name.front() != '/' ? "/" + name : name;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

std::string list_text(const std::vector<std::uint64_t>& values) {
  std::string text = "[";
  for (std::size_t i = 0; i < values.size(); ++i) text += (i ? ", " : "") + std::to_string(values[i]);
  return text + "]";
}

// Whether every link on the way to `name` exists (H5Lexists on a path whose parent is missing fails).
bool object_exists(hid_t file, const std::string& name) {
  if (name == "/") return true;
  for (std::size_t pos = 1; pos <= name.size(); ++pos) {
    if (pos != name.size() && name[pos] != '/') continue;
    const htri_t found = H5Lexists(file, name.substr(0, pos).c_str(), H5P_DEFAULT);
    if (found <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
  }
  return true;
}

ElementType element_type_of(hid_t type) {
  ElementType element;
  element.size = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      element.kind = ElementType::Kind::integer;
      element.is_signed = H5Tget_sign(type) == H5T_SGN_2;
      break;
    case H5T_FLOAT:
      element.kind = ElementType::Kind::floating;
      element.is_signed = true;
      break;
    case H5T_STRING:
      element.kind = ElementType::Kind::string;
      break;
    default:
      break;
  }
  return element;
}

bool is_floating(detail::ScalarType type) {
  return type == detail::ScalarType::f32 || type == detail::ScalarType::f64;
}

// An open dataset with its dataspace's dimensions and element type.
struct OpenDataset {
  H5Handle dataset;
  H5Handle space;
  std::vector<hsize_t> dims;
  ElementType element;
};

OpenDataset open_dataset(hid_t file, const std::string& path, const std::string& name) {
  if (file < 0) throw engine::InternalError("H5ParallelReader: " + path + " is already closed");
  if (!object_exists(file, name)) throw engine::DataError(path + " has no dataset " + name);
  {
    H5Handle object(check_id(H5Oopen(file, name.c_str(), H5P_DEFAULT), "H5Oopen", path, name), H5Oclose);
    if (H5Iget_type(object.get()) != H5I_DATASET)
      throw engine::DataError(path + ": " + name + " is not a dataset");
  }
  OpenDataset open;
  open.dataset =
      H5Handle(check_id(H5Dopen2(file, name.c_str(), H5P_DEFAULT), "H5Dopen2", path, name), H5Dclose);
  open.space = H5Handle(check_id(H5Dget_space(open.dataset.get()), "H5Dget_space", path, name), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(open.space.get());
  check_status(rank < 0 ? -1 : 0, "H5Sget_simple_extent_ndims", path, name);
  open.dims.resize(static_cast<std::size_t>(rank));
  if (rank > 0) {
    check_status(H5Sget_simple_extent_dims(open.space.get(), open.dims.data(), nullptr),
                 "H5Sget_simple_extent_dims", path, name);
  }
  H5Handle type(check_id(H5Dget_type(open.dataset.get()), "H5Dget_type", path, name), H5Tclose);
  open.element = element_type_of(type.get());
  return open;
}

// DataError unless the file's elements can be read as `type` (numbers; no floats into integers).
void require_convertible(const OpenDataset& open, detail::ScalarType type, const std::string& path,
                         const std::string& name) {
  using Kind = ElementType::Kind;
  if (open.element.kind != Kind::integer && open.element.kind != Kind::floating) {
    throw engine::DataError(path + ": " + name + " does not hold numbers (integers or floating point)");
  }
  if (open.element.kind == Kind::floating && !is_floating(type)) {
    throw engine::DataError(path + ": " + name +
                            " holds floating-point values; it cannot be read into an integer array");
  }
}

}  // namespace

H5ParallelReader::H5ParallelReader(const comm::Communicator& comm, const std::string& path)
    : comm_(comm), path_(path) {
  // Rank 0 tells a missing file and a file that is not HDF5 apart, which a failed MPI-IO open does not.
  comm_.decide([&] {
    detail::QuietErrors quiet;
    struct stat info {};
    if (::stat(path_.c_str(), &info) != 0 || ::access(path_.c_str(), R_OK) != 0) {
      throw engine::DataError("cannot open " + path_ + ": " + std::strerror(errno));
    }
    if (S_ISDIR(info.st_mode)) throw engine::DataError(path_ + " is a directory, not an HDF5 file");
    const htri_t is_hdf5 = H5Fis_hdf5(path_.c_str());
    if (is_hdf5 < 0) throw engine::DataError("cannot read " + path_ + ": " + detail::h5_error_text());
    if (is_hdf5 == 0) throw engine::DataError(path_ + " is not an HDF5 file");
  });
  comm_.agree([&] {
    detail::QuietErrors quiet;
    H5Handle fapl(check_id(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate", path_, ""), H5Pclose);
    check_status(H5Pset_fapl_mpio(fapl.get(), comm_.native(), MPI_INFO_NULL), "H5Pset_fapl_mpio", path_, "");
#if H5_VERSION_GE(1, 10, 7)
    // Keep HDF5's file lock where the file system has one, and do without it where it has none (Lustre
    // mounted without flock), instead of failing the open. HDF5_USE_FILE_LOCKING still overrides this.
    check_status(H5Pset_file_locking(fapl.get(), true, true), "H5Pset_file_locking", path_, "");
#endif
#if H5_VERSION_GE(1, 10, 8)
    // One rank reads each piece of metadata and broadcasts it, so P ranks do not all make the same small
    // reads (1.10.5-1.10.7 get collective metadata reads of existing files wrong). Every rank therefore
    // makes the same HDF5 calls in the same order, which the collective methods guarantee.
    check_status(H5Pset_all_coll_metadata_ops(fapl.get(), true), "H5Pset_all_coll_metadata_ops", path_, "");
#endif
    const hid_t file = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, fapl.get());
    if (file < 0) throw engine::DataError("cannot open " + path_ + " as HDF5: " + detail::h5_error_text());
    file_ = H5Handle(file, H5Fclose);
    dxpl_ = H5Handle(check_id(H5Pcreate(H5P_DATASET_XFER), "H5Pcreate", path_, ""), H5Pclose);
    check_status(H5Pset_dxpl_mpio(dxpl_.get(), H5FD_MPIO_COLLECTIVE), "H5Pset_dxpl_mpio", path_, "");
  });
}

H5ParallelReader::~H5ParallelReader() {
  if (!file_) return;
  dxpl_.reset();  // a property list is local
  detail::abandon_file(std::move(file_), path_);
}

void H5ParallelReader::close() {
  if (!file_) return;
  comm_.agree([&] {
    detail::QuietErrors quiet;
    dxpl_.reset();
    if (file_.close() < 0) {
      throw engine::InternalError("HDF5 H5Fclose failed for " + path_ + ": " + detail::h5_error_text());
    }
  });
}

bool H5ParallelReader::exists(const std::string& object, const std::string& attribute) const {
  bool found = false;
  comm_.agree([&] {
    detail::QuietErrors quiet;
    if (!file_) throw engine::InternalError("H5ParallelReader: " + path_ + " is already closed");
    const std::string name = normalize(object);
    found = object_exists(file_.get(), name);
    if (!found || attribute.empty()) return;
    const htri_t has = H5Aexists_by_name(file_.get(), name.c_str(), attribute.c_str(), H5P_DEFAULT);
    check_status(has < 0 ? -1 : 0, "H5Aexists_by_name", path_, name + "@" + attribute);
    found = has > 0;
  });
  return found;
}

std::vector<std::uint64_t> H5ParallelReader::shape(const std::string& dataset) const {
  std::vector<std::uint64_t> dims;
  comm_.agree([&] {
    detail::QuietErrors quiet;
    const auto open = open_dataset(file_.get(), path_, normalize(dataset));
    dims.assign(open.dims.begin(), open.dims.end());
  });
  return dims;
}

ElementType H5ParallelReader::element_type(const std::string& dataset) const {
  ElementType element;
  comm_.agree([&] {
    detail::QuietErrors quiet;
    element = open_dataset(file_.get(), path_, normalize(dataset)).element;
  });
  return element;
}

void H5ParallelReader::require_rank(const std::string& dataset, const std::vector<std::uint64_t>& dims,
                                    std::size_t rank) const {
  comm_.agree([&] {
    if (dims.size() != rank) {
      throw engine::DataError(path_ + ": " + normalize(dataset) + " has " + std::to_string(dims.size()) +
                              " dimensions, expected " + std::to_string(rank));
    }
  });
}

void H5ParallelReader::read_raw(const std::string& dataset, detail::ScalarType type,
                                const std::vector<std::uint64_t>& offset,
                                const std::vector<std::uint64_t>& extent, void* buffer) const {
  const std::string name = normalize(dataset);
  OpenDataset open;
  std::uint64_t local_rounds = 0, rows_per_round = 1, row_count = 1;
  // Everything that can be wrong is found here, before any rank enters a collective read.
  comm_.agree([&] {
    detail::QuietErrors quiet;
    open = open_dataset(file_.get(), path_, name);
    require_convertible(open, type, path_, name);
    if (open.dims.size() != offset.size() || extent.size() != offset.size()) {
      throw engine::DataError(path_ + ": " + name + " has " + std::to_string(open.dims.size()) +
                              " dimensions, expected " + std::to_string(offset.size()));
    }
    if (offset.empty()) throw engine::DataError(path_ + ": " + name + " is a scalar, not an array");
    bool empty = false;
    for (std::size_t d = 0; d < offset.size(); ++d) {
      empty = empty || extent[d] == 0;
      if (d > 0) row_count *= extent[d];
    }
    for (std::size_t d = 0; d < offset.size() && !empty; ++d) {
      if (offset[d] > open.dims[d] || extent[d] > open.dims[d] - offset[d]) {
        const std::vector<std::uint64_t> dims(open.dims.begin(), open.dims.end());
        throw engine::DataError(path_ + ": the block at " + list_text(offset) + " of extent " +
                                list_text(extent) + " lies outside " + name + " of shape " + list_text(dims));
      }
    }
    const std::uint64_t row_bytes =
        std::max<std::uint64_t>(1, row_count * std::max(detail::type_size(type), open.element.size));
    rows_per_round = std::max<std::uint64_t>(1, detail::max_bytes_per_read() / row_bytes);
    local_rounds = empty ? 0 : (extent[0] + rows_per_round - 1) / rows_per_round;
  });
  // Every rank makes the same number of collective H5Dread calls, some of them empty.
  const std::uint64_t rounds = comm_.allreduce(local_rounds, comm::Op::max);
  comm_.agree([&] {
    detail::QuietErrors quiet;
    const int rank = static_cast<int>(offset.size());
    const hid_t mem_type = detail::native_type(type);
    bool reported = false;
    for (std::uint64_t round = 0; round < rounds; ++round) {
      const std::uint64_t begin = round * rows_per_round;
      const std::uint64_t n =
          round < local_rounds ? std::min(rows_per_round, extent[0] - begin) : 0;  // rows this round
      std::vector<hsize_t> start(offset.begin(), offset.end()), count(extent.begin(), extent.end());
      start[0] += begin;
      count[0] = n;
      std::vector<hsize_t> mem_dims(count);
      for (auto& d : mem_dims) d = std::max<hsize_t>(d, 1);
      H5Handle mem_space(
          check_id(H5Screate_simple(rank, mem_dims.data(), nullptr), "H5Screate_simple", path_, name),
          H5Sclose);
      static char dummy[8] = {};
      void* target = dummy;
      if (n == 0) {
        check_status(H5Sselect_none(mem_space.get()), "H5Sselect_none", path_, name);
        check_status(H5Sselect_none(open.space.get()), "H5Sselect_none", path_, name);
      } else {
        check_status(H5Sselect_hyperslab(open.space.get(), H5S_SELECT_SET, start.data(), nullptr,
                                         count.data(), nullptr),
                     "H5Sselect_hyperslab", path_, name);
        target = static_cast<char*>(buffer) + begin * row_count * detail::type_size(type);
      }
      check_status(
          H5Dread(open.dataset.get(), mem_type, mem_space.get(), open.space.get(), dxpl_.get(), target),
          "H5Dread", path_, name);
      // HDF5 falls back to independent reads when it converts types; fine, but worth seeing when tuning.
      std::uint32_t local_cause = 0, global_cause = 0;
      if (!reported && H5Pget_mpio_no_collective_cause(dxpl_.get(), &local_cause, &global_cause) >= 0 &&
          global_cause != H5D_MPIO_COLLECTIVE) {
        engine::Log::rank_log().debug("HDF5 read of {} in {} was not collective (cause 0x{:x})", name, path_,
                                      global_cause);
        reported = true;
      }
    }
  });
}

void H5ParallelReader::read_whole_on_root(const std::string& dataset, detail::ScalarType type,
                                          const std::vector<std::uint64_t>& dims, void* buffer) const {
  if (dims.empty()) {
    // A scalar dataset: one element, read by rank 0 alone through a collective call.
    const std::string name = normalize(dataset);
    comm_.agree([&] {
      detail::QuietErrors quiet;
      const auto open = open_dataset(file_.get(), path_, name);
      require_convertible(open, type, path_, name);
      H5Handle mem_space(check_id(H5Screate(H5S_SCALAR), "H5Screate", path_, name), H5Sclose);
      if (comm_.rank() != 0) {
        check_status(H5Sselect_none(mem_space.get()), "H5Sselect_none", path_, name);
        check_status(H5Sselect_none(open.space.get()), "H5Sselect_none", path_, name);
      }
      check_status(H5Dread(open.dataset.get(), detail::native_type(type), mem_space.get(), open.space.get(),
                           dxpl_.get(), buffer),
                   "H5Dread", path_, name);
    });
    return;
  }
  const std::vector<std::uint64_t> offset(dims.size(), 0);
  read_raw(dataset, type, offset, comm_.rank() == 0 ? dims : std::vector<std::uint64_t>(dims.size(), 0),
           buffer);
}

namespace {

// An attribute's values, read by every rank (collective metadata reads make one rank do the reading).
struct OpenAttribute {
  H5Handle attribute;
  H5Handle type;
  std::size_t count = 0;
  std::string where;  // "object@name" for messages
};

OpenAttribute open_attribute(hid_t file, const std::string& path, const std::string& object,
                             const std::string& name) {
  if (file < 0) throw engine::InternalError("H5ParallelReader: " + path + " is already closed");
  OpenAttribute open;
  const std::string owner = normalize(object);
  open.where = owner + "@" + name;
  if (!object_exists(file, owner)) throw engine::DataError(path + " has no object " + owner);
  const htri_t found = H5Aexists_by_name(file, owner.c_str(), name.c_str(), H5P_DEFAULT);
  check_status(found < 0 ? -1 : 0, "H5Aexists_by_name", path, open.where);
  if (found == 0) throw engine::DataError(path + " has no attribute " + name + " on " + owner);
  open.attribute =
      H5Handle(check_id(H5Aopen_by_name(file, owner.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                        "H5Aopen_by_name", path, open.where),
               H5Aclose);
  open.type =
      H5Handle(check_id(H5Aget_type(open.attribute.get()), "H5Aget_type", path, open.where), H5Tclose);
  H5Handle space(check_id(H5Aget_space(open.attribute.get()), "H5Aget_space", path, open.where), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  check_status(rank < 0 ? -1 : 0, "H5Sget_simple_extent_ndims", path, open.where);
  if (rank > 1) {
    throw engine::DataError(path + ": attribute " + name + " on " + owner + " has " + std::to_string(rank) +
                            " dimensions; a scalar or a list was expected");
  }
  const hssize_t points = H5Sget_simple_extent_npoints(space.get());
  check_status(points < 0 ? -1 : 0, "H5Sget_simple_extent_npoints", path, open.where);
  open.count = static_cast<std::size_t>(points);
  return open;
}

template <class T>
std::vector<T> read_number_attribute(hid_t file, const std::string& path, const std::string& object,
                                     const std::string& name) {
  const auto open = open_attribute(file, path, object, name);
  const ElementType element = element_type_of(open.type.get());
  const bool integers = std::is_integral_v<T>;
  if (element.kind != ElementType::Kind::integer &&
      (integers || element.kind != ElementType::Kind::floating)) {
    throw engine::DataError(
        path + ": attribute " + name + " on " + normalize(object) + " is not " +
        (integers ? "an integer or a list of integers" : "a number or a list of numbers"));
  }
  std::vector<T> values(open.count);
  if (!values.empty()) {
    check_status(
        H5Aread(open.attribute.get(), detail::native_type(detail::scalar_type_of<T>()), values.data()),
        "H5Aread", path, open.where);
  }
  return values;
}

template <class T>
T single(std::vector<T> values, const std::string& path, const std::string& object, const std::string& name) {
  if (values.size() != 1) {
    throw engine::DataError(path + ": attribute " + name + " on " + normalize(object) + " holds " +
                            std::to_string(values.size()) + " values, expected one");
  }
  return std::move(values.front());
}

}  // namespace

std::vector<std::int64_t> H5ParallelReader::int_list_attribute(const std::string& object,
                                                               const std::string& name) const {
  std::vector<std::int64_t> values;
  comm_.agree([&] {
    detail::QuietErrors quiet;
    values = read_number_attribute<std::int64_t>(file_.get(), path_, object, name);
  });
  return values;
}

std::vector<double> H5ParallelReader::double_list_attribute(const std::string& object,
                                                            const std::string& name) const {
  std::vector<double> values;
  comm_.agree([&] {
    detail::QuietErrors quiet;
    values = read_number_attribute<double>(file_.get(), path_, object, name);
  });
  return values;
}

std::vector<std::string> H5ParallelReader::string_list_attribute(const std::string& object,
                                                                 const std::string& name) const {
  std::vector<std::string> values;
  comm_.agree([&] {
    detail::QuietErrors quiet;
    const auto open = open_attribute(file_.get(), path_, object, name);
    if (H5Tget_class(open.type.get()) != H5T_STRING) {
      throw engine::DataError(path_ + ": attribute " + name + " on " + normalize(object) +
                              " is not a string");
    }
    if (open.count == 0) return;
    const htri_t variable = H5Tis_variable_str(open.type.get());
    check_status(variable < 0 ? -1 : 0, "H5Tis_variable_str", path_, open.where);
    if (variable > 0) {
      H5Handle mem(check_id(H5Tcopy(H5T_C_S1), "H5Tcopy", path_, open.where), H5Tclose);
      check_status(H5Tset_size(mem.get(), H5T_VARIABLE), "H5Tset_size", path_, open.where);
      check_status(H5Tset_cset(mem.get(), H5Tget_cset(open.type.get())), "H5Tset_cset", path_, open.where);
      std::vector<char*> texts(open.count, nullptr);
      check_status(H5Aread(open.attribute.get(), mem.get(), texts.data()), "H5Aread", path_, open.where);
      for (char* text : texts) {
        values.emplace_back(text == nullptr ? "" : text);
        H5free_memory(text);
      }
    } else {
      const std::size_t size = H5Tget_size(open.type.get());
      std::vector<char> bytes(open.count * size);
      check_status(H5Aread(open.attribute.get(), open.type.get(), bytes.data()), "H5Aread", path_,
                   open.where);
      for (std::size_t i = 0; i < open.count; ++i) {
        const char* begin = bytes.data() + i * size;
        values.emplace_back(begin, strnlen(begin, size));
      }
    }
  });
  return values;
}

std::int64_t H5ParallelReader::int_attribute(const std::string& object, const std::string& name) const {
  auto values = int_list_attribute(object, name);
  std::int64_t value = 0;
  comm_.agree([&] { value = single(std::move(values), path_, object, name); });
  return value;
}

double H5ParallelReader::double_attribute(const std::string& object, const std::string& name) const {
  auto values = double_list_attribute(object, name);
  double value = 0;
  comm_.agree([&] { value = single(std::move(values), path_, object, name); });
  return value;
}

std::string H5ParallelReader::string_attribute(const std::string& object, const std::string& name) const {
  auto values = string_list_attribute(object, name);
  std::string value;
  comm_.agree([&] { value = single(std::move(values), path_, object, name); });
  return value;
}

H5RowReader::H5RowReader(const std::string& path, const std::string& dataset)
    : path_(path), name_(normalize(dataset)) {
  detail::QuietErrors quiet;
  struct stat info {};
  if (::stat(path_.c_str(), &info) != 0 || ::access(path_.c_str(), R_OK) != 0) {
    throw engine::DataError("cannot open " + path_ + ": " + std::strerror(errno));
  }
  const hid_t file = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) throw engine::DataError("cannot open " + path_ + " as HDF5: " + detail::h5_error_text());
  file_ = H5Handle(file, H5Fclose);
  OpenDataset open = open_dataset(file_.get(), path_, name_);
  require_convertible(open, detail::ScalarType::f64, path_, name_);
  if (open.dims.size() != 2) {
    throw engine::DataError(path_ + ": " + name_ + " has " + std::to_string(open.dims.size()) +
                            " dimensions, expected 2");
  }
  shape_.assign(open.dims.begin(), open.dims.end());
  dataset_ = std::move(open.dataset);
  space_ = std::move(open.space);
}

void H5RowReader::read_raw(const std::vector<std::uint64_t>& rows, std::uint64_t column,
                           std::uint64_t columns, detail::ScalarType type, void* out) const {
  if (rows.empty() || columns == 0) return;
  detail::QuietErrors quiet;
  if (column > shape_[1] || columns > shape_[1] - column || rows.back() >= shape_[0]) {
    throw engine::DataError(path_ + ": rows up to " + std::to_string(rows.back()) + ", columns [" +
                            std::to_string(column) + ", " + std::to_string(column + columns) +
                            ") lie outside " + name_ + " of shape " + list_text(shape_));
  }
  // One H5Dread per run of consecutive rows, each a single block: HDF5 maps a block onto the chunks of a
  // chunked dataset directly, but walks an irregular selection (a union of runs) element by element,
  // which made reading 1024 rows x 2048 columns take most of a second.
  const hsize_t mem_dims[2] = {rows.size(), columns};
  H5Handle mem_space(check_id(H5Screate_simple(2, mem_dims, nullptr), "H5Screate_simple", path_, name_),
                     H5Sclose);
  const hid_t mem_type = detail::native_type(type);
  for (std::size_t i = 0; i < rows.size();) {
    std::size_t j = i + 1;
    while (j < rows.size() && rows[j] == rows[j - 1] + 1) ++j;
    const hsize_t start[2] = {rows[i], column}, mem_start[2] = {i, 0}, count[2] = {j - i, columns};
    check_status(H5Sselect_hyperslab(space_.get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
                 "H5Sselect_hyperslab", path_, name_);
    check_status(H5Sselect_hyperslab(mem_space.get(), H5S_SELECT_SET, mem_start, nullptr, count, nullptr),
                 "H5Sselect_hyperslab", path_, name_);
    check_status(H5Dread(dataset_.get(), mem_type, mem_space.get(), space_.get(), H5P_DEFAULT, out),
                 "H5Dread", path_, name_);
    i = j;
  }
}

}  // namespace skein::io
