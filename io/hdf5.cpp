#include "io/hdf5.hpp"

#include "engine/error.hpp"
#include "engine/log.hpp"
#include "io/file_space.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <mutex>

namespace skein::io {

namespace detail {

herr_t H5Handle::close() {
  if (id_ < 0) return 0;
  const herr_t status = closer_(id_);
  id_ = H5I_INVALID_HID;
  return status;
}

void H5Handle::reset() noexcept {
  if (id_ >= 0) closer_(id_);
  id_ = H5I_INVALID_HID;
}

QuietErrors::QuietErrors() {
  H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

QuietErrors::~QuietErrors() {
  H5Eset_auto2(H5E_DEFAULT, func_, data_);
}

std::string h5_error_text() {
  std::string text;
  // Walking upward starts at the most specific entry, which says what actually went wrong (errno text).
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* error, void* data) -> herr_t {
        if (n == 0 && error->desc != nullptr) *static_cast<std::string*>(data) = error->desc;
        return 0;
      },
      &text);
  H5Eclear2(H5E_DEFAULT);
  return text;
}

namespace {
[[noreturn]] void fail(const char* call, const std::string& file, const std::string& object) {
  const std::string why = h5_error_text();
  std::string message = std::string("HDF5 ") + call + " failed";
  if (!object.empty()) message += " for '" + object + "'";
  message += " in " + file;
  if (!why.empty()) message += ": " + why;
  throw engine::InternalError(message);
}
}  // namespace

hid_t check_id(hid_t id, const char* call, const std::string& file, const std::string& object) {
  if (id < 0) fail(call, file, object);
  return id;
}

void check_status(herr_t status, const char* call, const std::string& file, const std::string& object) {
  if (status < 0) fail(call, file, object);
}

hid_t native_type(ScalarType type) {
  switch (type) {
    case ScalarType::i8:
      return H5T_NATIVE_INT8;
    case ScalarType::u8:
      return H5T_NATIVE_UINT8;
    case ScalarType::i16:
      return H5T_NATIVE_INT16;
    case ScalarType::u16:
      return H5T_NATIVE_UINT16;
    case ScalarType::i32:
      return H5T_NATIVE_INT32;
    case ScalarType::u32:
      return H5T_NATIVE_UINT32;
    case ScalarType::i64:
      return H5T_NATIVE_INT64;
    case ScalarType::u64:
      return H5T_NATIVE_UINT64;
    case ScalarType::f32:
      return H5T_NATIVE_FLOAT;
    case ScalarType::f64:
      return H5T_NATIVE_DOUBLE;
  }
  return H5I_INVALID_HID;
}

std::size_t type_size(ScalarType type) {
  switch (type) {
    case ScalarType::i8:
    case ScalarType::u8:
      return 1;
    case ScalarType::i16:
    case ScalarType::u16:
      return 2;
    case ScalarType::i32:
    case ScalarType::u32:
    case ScalarType::f32:
      return 4;
    case ScalarType::i64:
    case ScalarType::u64:
    case ScalarType::f64:
      return 8;
  }
  return 0;
}

}  // namespace detail

namespace {

using detail::check_id;
using detail::check_status;
using detail::H5Handle;

// Stay well under MPI's 2 GiB int counts per H5Dwrite (engineering.md, parallel HDF5 pitfall 7).
constexpr std::uint64_t max_bytes_per_write = std::uint64_t{1} << 30;

std::string normalize(const std::string& path) {
  std::string out = path.empty() || path.front() != '/' ? "/" + path : path;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// "/a/b/c" -> {"/a", "/a/b", "/a/b/c"}
std::vector<std::string> prefixes(const std::string& path) {
  std::vector<std::string> out;
  for (std::size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos == path.size() || path[pos] == '/') out.push_back(path.substr(0, pos));
  }
  return out;
}

std::string parent_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

H5Handle vl_string_type(const std::string& file) {
  H5Handle type(check_id(H5Tcopy(H5T_C_S1), "H5Tcopy", file, ""), H5Tclose);
  check_status(H5Tset_size(type.get(), H5T_VARIABLE), "H5Tset_size", file, "");
  check_status(H5Tset_cset(type.get(), H5T_CSET_UTF8), "H5Tset_cset", file, "");
  return type;
}

}  // namespace

H5Writer::H5Writer(const comm::Communicator& comm, const std::string& path) : comm_(comm), path_(path) {
  comm_.agree([&] {
    detail::QuietErrors quiet;
    H5Handle fapl(check_id(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate", path_, ""), H5Pclose);
    check_status(H5Pset_fapl_mpio(fapl.get(), comm_.native(), MPI_INFO_NULL), "H5Pset_fapl_mpio", path_, "");
#if H5_VERSION_GE(1, 10, 0)
    // Metadata is read and written collectively, so P ranks do not hammer the file system with the same
    // small reads (engineering.md pitfall 10). 1.10.5-1.10.7 break collective metadata *reads* of
    // existing files (pitfall 8); a writer only reads what it wrote in this open, which is cached.
    check_status(H5Pset_all_coll_metadata_ops(fapl.get(), true), "H5Pset_all_coll_metadata_ops", path_, "");
    check_status(H5Pset_coll_metadata_write(fapl.get(), true), "H5Pset_coll_metadata_write", path_, "");
#endif
    const hid_t file = H5Fcreate(path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
    if (file < 0) {
      const std::string why = detail::h5_error_text();
      auto dir = std::filesystem::path(path_).parent_path();
      if (dir.empty()) dir = ".";
      if (::access(dir.c_str(), W_OK) != 0) throw_write_error(path_, errno, "cannot create it");
      throw_write_error(path_, 0, "HDF5 H5Fcreate failed: " + why);
    }
    file_ = H5Handle(file, H5Fclose);
    struct stat created {};
    if (::stat(path_.c_str(), &created) == 0) {
      identity_ = {static_cast<std::uint64_t>(created.st_dev), static_cast<std::uint64_t>(created.st_ino),
                   true};
    }
    dxpl_ = H5Handle(check_id(H5Pcreate(H5P_DATASET_XFER), "H5Pcreate", path_, ""), H5Pclose);
    check_status(H5Pset_dxpl_mpio(dxpl_.get(), H5FD_MPIO_COLLECTIVE), "H5Pset_dxpl_mpio", path_, "");
  });
}

namespace {

// Files whose writer or reader was destroyed while open; closed collectively by close_abandoned_files().
struct AbandonedFile {
  H5Handle file;
  std::string path;
  bool discard = false;
  detail::FileIdentity identity;
};
std::vector<AbandonedFile>& abandoned_files() {
  static std::vector<AbandonedFile> files;
  return files;
}

// Points every descriptor of this process open on `file` at /dev/null (dup2 replaces it in place, so the
// MPI-IO layer keeps using the same number); returns how many. Writes to /dev/null always succeed, whatever
// the disk or the file-size limit.
int discard_writes(const detail::FileIdentity& file) {
  if (!file.known) return 0;
  const int sink = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (sink < 0) return 0;
  std::vector<int> matching;
  if (DIR* fds = ::opendir("/proc/self/fd")) {
    while (const dirent* entry = ::readdir(fds)) {
      char* end = nullptr;
      const long fd = std::strtol(entry->d_name, &end, 10);
      if (end == entry->d_name || *end != '\0' || fd == ::dirfd(fds) || fd == sink) continue;
      struct stat info {};
      if (::fstat(static_cast<int>(fd), &info) == 0 &&
          static_cast<std::uint64_t>(info.st_dev) == file.device &&
          static_cast<std::uint64_t>(info.st_ino) == file.inode) {
        matching.push_back(static_cast<int>(fd));
      }
    }
    ::closedir(fds);
  }
  int redirected = 0;
  for (const int fd : matching) {
    // dup2 clears FD_CLOEXEC on the copy; keep the flag the descriptor had.
    const int flags = ::fcntl(fd, F_GETFD);
    if (::dup2(sink, fd) == fd) {
      if (flags >= 0) ::fcntl(fd, F_SETFD, flags);
      ++redirected;
    }
  }
  ::close(sink);
  return redirected;
}

// The MPI-IO handles of the abandoned files being closed with their writes discarded (see
// MPI_File_set_size below). Only touched by the thread that closes them, between MPI calls.
std::vector<MPI_File>& discarded_mpi_files() {
  static std::vector<MPI_File> files;
  return files;
}

}  // namespace

}  // namespace skein::io

// HDF5 closes an MPI-IO file by setting its size to its end of allocation (MPI_File_set_size, on every
// rank). For a file whose descriptors point at /dev/null (close_abandoned_files) that is ftruncate on a
// character device, which fails, and the close with it. Through the MPI profiling interface (every MPI
// function is also PMPI_*, so a program may define its own MPI_* around it), the size of such a file is
// left alone: the file is being removed anyway. Every other call goes to Open MPI unchanged.
extern "C" int MPI_File_set_size(MPI_File file, MPI_Offset size) {
  const auto& discarded = skein::io::discarded_mpi_files();
  if (std::find(discarded.begin(), discarded.end(), file) != discarded.end()) return MPI_SUCCESS;
  return PMPI_File_set_size(file, size);
}

namespace skein::io {

void detail::abandon_file(H5Handle file, const std::string& path, bool discard, FileIdentity identity) {
  abandoned_files().push_back({std::move(file), path, discard, identity});
}

H5Writer::~H5Writer() {
  if (!file_) return;
  dxpl_.reset();  // a property list is local
  detail::abandon_file(std::move(file_), path_, /*discard=*/true, identity_);
}

int close_abandoned_files() {
  auto& files = abandoned_files();
  int closed = 0;
  for (auto& abandoned : files) {
    detail::QuietErrors quiet;
    // Every rank takes the same branch (a writer is abandoned on every rank alike), so the collective close
    // below stays in step.
    void* handle = nullptr;
    if (abandoned.discard && H5Fget_vfd_handle(abandoned.file.get(), H5P_DEFAULT, &handle) >= 0 &&
        handle != nullptr) {
      discarded_mpi_files().push_back(*static_cast<MPI_File*>(handle));
      const int redirected = discard_writes(abandoned.identity);
      engine::Log::rank_log().debug("closing abandoned {}: {} descriptor(s) pointed at /dev/null",
                                    abandoned.path, redirected);
    }
    // Collective: every rank abandoned the same files in the same order.
    if (abandoned.file.close() < 0) {
      engine::Log::rank_log().warn("closing abandoned {} failed: {}", abandoned.path,
                                   detail::h5_error_text());
    }
    ++closed;
    discarded_mpi_files().clear();
  }
  files.clear();
  return closed;
}

std::uint64_t H5Writer::allocated_end() const {
  // HDF5 will not tell the end of allocation of an MPI-IO file (H5Fget_eoa and H5Fget_filesize refuse on
  // one rank), so it is estimated: past the end of the last dataset's data, the metadata HDF5 still holds
  // in its cache and writes when closing — at most what was written as attributes and names, with room.
  return data_end_ + 64 * 1024 + 2 * metadata_bytes_;
}

void H5Writer::reserve_space() {
  comm_.agree([&] {
    if (comm_.rank() != 0) return;
    detail::QuietErrors quiet;
    if (!file_) throw engine::InternalError("H5Writer: " + path_ + " is already closed");
    reserve_file_space(path_, allocated_end());
  });
}

bool H5Writer::exists(const std::string& object_path) const {
  const std::string path = normalize(object_path);
  if (path == "/") return true;
  for (const auto& prefix : prefixes(path)) {
    if (H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
  }
  return true;
}

void H5Writer::ensure_group(const std::string& group) {
  const std::string path = normalize(group);
  if (path == "/") return;
  for (const auto& prefix : prefixes(path)) {
    const htri_t found = H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT);
    check_status(found < 0 ? -1 : 0, "H5Lexists", path_, prefix);
    if (found > 0) continue;
    metadata_bytes_ += 1024 + prefix.size();  // an object header, a link, a local heap
    H5Handle created(check_id(H5Gcreate2(file_.get(), prefix.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                              "H5Gcreate2", path_, prefix),
                     H5Gclose);
  }
}

void H5Writer::create_group(const std::string& group) {
  comm_.agree([&] {
    detail::QuietErrors quiet;
    if (!file_) throw engine::InternalError("H5Writer: " + path_ + " is already closed");
    ensure_group(group);
  });
}

H5Handle H5Writer::create_dataset(const std::string& dataset, hid_t file_type,
                                  const std::vector<hsize_t>& dims, bool contiguous_no_fill) {
  if (!file_) throw engine::InternalError("H5Writer: " + path_ + " is already closed");
  const std::string name = normalize(dataset);
  ensure_group(parent_of(name));
  if (exists(name)) throw engine::InternalError("HDF5 dataset '" + name + "' already exists in " + path_);
  H5Handle space(check_id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                          "H5Screate_simple", path_, name),
                 H5Sclose);
  H5Handle dcpl(check_id(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate", path_, name), H5Pclose);
  if (contiguous_no_fill) {
    // Contiguous and unfiltered keeps collective writes collective; every element gets written, so the
    // fill pass (a full extra write in parallel) is skipped.
    check_status(H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS), "H5Pset_layout", path_, name);
    check_status(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), "H5Pset_fill_time", path_, name);
  }
  metadata_bytes_ += 1024 + name.size();
  return H5Handle(check_id(H5Dcreate2(file_.get(), name.c_str(), file_type, space.get(), H5P_DEFAULT,
                                      dcpl.get(), H5P_DEFAULT),
                           "H5Dcreate2", path_, name),
                  H5Dclose);
}

H5Handle H5Writer::create_reserved_dataset(const std::string& name, hid_t mem_type,
                                           const std::vector<hsize_t>& dims, std::uint64_t bytes) {
  H5Handle ds = create_dataset(name, mem_type, dims, /*contiguous_no_fill=*/true);
  // The dataset's blocks exist before any rank writes into them: a full disk fails here, on rank 0,
  // before HDF5 has written anything it would need to undo.
  if (bytes > 0) {
    const haddr_t address = H5Dget_offset(ds.get());
    if (address != HADDR_UNDEF) data_end_ = std::max<std::uint64_t>(data_end_, address + bytes);
    if (comm_.rank() == 0) reserve_file_space(path_, allocated_end());
  }
  return ds;
}

void H5Writer::write_array(const std::string& dataset, detail::ScalarType type, const void* data,
                           std::uint64_t rows, std::uint64_t cols, bool two_d, bool replicated) {
  const std::string name = normalize(dataset);
  // Shapes are agreed first; every rank reaches the same verdict, so throwing here leaves nobody behind.
  if (comm_.allreduce(cols, comm::Op::min) != comm_.allreduce(cols, comm::Op::max)) {
    engine::throw_agreed_error(
        engine::ExitCode::internal,
        "H5Writer: ranks passed different column counts for '" + name + "' in " + path_);
  }
  std::uint64_t global_rows = 0;
  std::uint64_t offset = 0;
  std::uint64_t my_rows = rows;
  if (replicated) {
    if (comm_.allreduce(rows, comm::Op::min) != comm_.allreduce(rows, comm::Op::max)) {
      engine::throw_agreed_error(
          engine::ExitCode::internal,
          "H5Writer: ranks passed different sizes for replicated '" + name + "' in " + path_);
    }
    global_rows = rows;
    my_rows = comm_.rank() == 0 ? rows : 0;
  } else {
    global_rows = comm_.allreduce(rows, comm::Op::sum);
    offset = comm_.exscan(rows);
  }
  const std::uint64_t row_bytes = std::max<std::uint64_t>(1, cols * detail::type_size(type));
  const std::uint64_t rows_per_write = std::max<std::uint64_t>(1, max_bytes_per_write / row_bytes);
  // Every rank makes the same number of collective H5Dwrite calls, some of them empty.
  const std::uint64_t rounds =
      comm_.allreduce<std::uint64_t>((my_rows + rows_per_write - 1) / rows_per_write, comm::Op::max);

  const hid_t mem_type = detail::native_type(type);
  H5Handle ds;
  comm_.agree([&] {
    detail::QuietErrors quiet;
    std::vector<hsize_t> dims{global_rows};
    if (two_d) dims.push_back(cols);
    ds = create_reserved_dataset(name, mem_type, dims, global_rows * cols * detail::type_size(type));
  });
  if (global_rows == 0 || cols == 0) return;
  comm_.agree([&] {
    detail::QuietErrors quiet;
    H5Handle file_space(check_id(H5Dget_space(ds.get()), "H5Dget_space", path_, name), H5Sclose);
    const int rank = two_d ? 2 : 1;
    static const char dummy[8] = {};
    bool reported = false;
    for (std::uint64_t round = 0; round < rounds; ++round) {
      const std::uint64_t begin = round * rows_per_write;
      const std::uint64_t n = begin < my_rows ? std::min(rows_per_write, my_rows - begin) : 0;
      const hsize_t mem_dims[2] = {std::max<hsize_t>(n, 1), cols};
      H5Handle mem_space(check_id(H5Screate_simple(rank, mem_dims, nullptr), "H5Screate_simple", path_, name),
                         H5Sclose);
      const void* buffer = dummy;
      if (n == 0) {
        check_status(H5Sselect_none(mem_space.get()), "H5Sselect_none", path_, name);
        check_status(H5Sselect_none(file_space.get()), "H5Sselect_none", path_, name);
      } else {
        const hsize_t start[2] = {offset + begin, 0};
        const hsize_t count[2] = {n, cols};
        check_status(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
                     "H5Sselect_hyperslab", path_, name);
        buffer = static_cast<const char*>(data) + begin * cols * detail::type_size(type);
      }
      if (H5Dwrite(ds.get(), mem_type, mem_space.get(), file_space.get(), dxpl_.get(), buffer) < 0) {
        throw_write_error(path_, 0, "HDF5 H5Dwrite of '" + name + "' failed: " + detail::h5_error_text());
      }
      // HDF5 silently falls back to independent I/O in some cases (pitfall 2); make that visible.
      std::uint32_t local_cause = 0;
      std::uint32_t global_cause = 0;
      if (!reported && H5Pget_mpio_no_collective_cause(dxpl_.get(), &local_cause, &global_cause) >= 0 &&
          global_cause != H5D_MPIO_COLLECTIVE) {
        engine::Log::rank_log().debug("HDF5 write of {} in {} was not collective (cause 0x{:x})", name, path_,
                                      global_cause);
        reported = true;
      }
    }
  });
}

void H5Writer::write_nd(const std::string& dataset, detail::ScalarType type,
                        const std::vector<std::uint64_t>& global_shape,
                        const std::vector<std::uint64_t>& offset, const std::vector<std::uint64_t>& extent,
                        const void* data) {
  const std::string name = normalize(dataset);
  const std::size_t rank = global_shape.size();
  comm_.agree([&] {
    if (rank == 0 || offset.size() != rank || extent.size() != rank) {
      throw engine::InternalError("H5Writer: '" + name + "' in " + path_ +
                                  ": shape, offset and extent differ in rank");
    }
    for (std::size_t d = 0; d < rank; ++d) {
      if (offset[d] + extent[d] > global_shape[d]) {
        throw engine::InternalError("H5Writer: the block of '" + name + "' in " + path_ +
                                    " lies outside its shape");
      }
    }
  });
  std::uint64_t local_count = 1, global_count = 1;
  for (std::size_t d = 0; d < rank; ++d) {
    local_count *= extent[d];
    global_count *= global_shape[d];
  }
  // The shape must be the same everywhere: compare every rank's against rank 0's.
  std::vector<std::uint64_t> shape0 = global_shape;
  comm_.bcast(shape0.data(), shape0.size(), 0);
  if (comm_.allreduce(static_cast<int>(shape0 != global_shape), comm::Op::max) != 0) {
    engine::throw_agreed_error(engine::ExitCode::internal,
                               "H5Writer: ranks passed different shapes for '" + name + "' in " + path_);
  }
  if (local_count * detail::type_size(type) > (std::uint64_t{1} << 31)) {
    engine::throw_agreed_error(
        engine::ExitCode::internal,
        "H5Writer: a block of more than 2 GiB per rank for '" + name + "' in " + path_);
  }
  const hid_t mem_type = detail::native_type(type);
  H5Handle ds;
  comm_.agree([&] {
    detail::QuietErrors quiet;
    const std::vector<hsize_t> dims(global_shape.begin(), global_shape.end());
    ds = create_reserved_dataset(name, mem_type, dims, global_count * detail::type_size(type));
  });
  if (global_count == 0) return;
  comm_.agree([&] {
    detail::QuietErrors quiet;
    H5Handle file_space(check_id(H5Dget_space(ds.get()), "H5Dget_space", path_, name), H5Sclose);
    std::vector<hsize_t> start(offset.begin(), offset.end()), count(extent.begin(), extent.end());
    std::vector<hsize_t> mem_dims(count);
    for (auto& d : mem_dims) d = std::max<hsize_t>(d, 1);
    H5Handle mem_space(check_id(H5Screate_simple(static_cast<int>(rank), mem_dims.data(), nullptr),
                                "H5Screate_simple", path_, name),
                       H5Sclose);
    static const char dummy[8] = {};
    const void* buffer = data;
    if (local_count == 0) {
      check_status(H5Sselect_none(mem_space.get()), "H5Sselect_none", path_, name);
      check_status(H5Sselect_none(file_space.get()), "H5Sselect_none", path_, name);
      buffer = dummy;
    } else {
      check_status(
          H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
          "H5Sselect_hyperslab", path_, name);
    }
    if (H5Dwrite(ds.get(), mem_type, mem_space.get(), file_space.get(), dxpl_.get(), buffer) < 0) {
      throw_write_error(path_, 0, "HDF5 H5Dwrite of '" + name + "' failed: " + detail::h5_error_text());
    }
  });
}

void H5Writer::write_strings(const std::string& dataset, const std::vector<std::string>& values) {
  const std::string name = normalize(dataset);
  const std::uint64_t n = values.size();
  if (comm_.allreduce(n, comm::Op::min) != comm_.allreduce(n, comm::Op::max)) {
    engine::throw_agreed_error(
        engine::ExitCode::internal,
        "H5Writer: ranks passed different sizes for replicated '" + name + "' in " + path_);
  }
  comm_.agree([&] {
    detail::QuietErrors quiet;
    H5Handle type = vl_string_type(path_);
    H5Handle ds = create_dataset(name, type.get(), {n}, /*contiguous_no_fill=*/false);
    if (comm_.rank() == 0) pending_strings_.emplace_back(name, values);
  });
}

void H5Writer::set_attribute(const std::string& object_path, const std::string& name,
                             const std::string& value) {
  const std::string object = normalize(object_path);
  comm_.agree([&] {
    detail::QuietErrors quiet;
    if (!file_) throw engine::InternalError("H5Writer: " + path_ + " is already closed");
    if (!exists(object)) ensure_group(object);
    H5Handle obj(check_id(H5Oopen(file_.get(), object.c_str(), H5P_DEFAULT), "H5Oopen", path_, object),
                 H5Oclose);
    const htri_t found = H5Aexists(obj.get(), name.c_str());
    check_status(found < 0 ? -1 : 0, "H5Aexists", path_, object + "@" + name);
    if (found > 0) check_status(H5Adelete(obj.get(), name.c_str()), "H5Adelete", path_, object + "@" + name);
    H5Handle type = vl_string_type(path_);
    H5Handle space(check_id(H5Screate(H5S_SCALAR), "H5Screate", path_, object), H5Sclose);
    metadata_bytes_ += 256 + name.size() + value.size();
    H5Handle attr(
        check_id(H5Acreate2(obj.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                 "H5Acreate2", path_, object + "@" + name),
        H5Aclose);
    const char* text = value.c_str();
    check_status(H5Awrite(attr.get(), type.get(), &text), "H5Awrite", path_, object + "@" + name);
  });
}

void H5Writer::set_attribute(const std::string& object_path, const std::string& name, double value) {
  set_scalar_attribute(object_path, name, detail::ScalarType::f64, &value);
}

void H5Writer::set_attribute(const std::string& object_path, const std::string& name,
                             const std::vector<std::int64_t>& values) {
  if (values.empty()) throw engine::InternalError("H5Writer::set_attribute: empty list for " + name);
  set_scalar_attribute(object_path, name, detail::ScalarType::i64, values.data(), values.size());
}

void H5Writer::set_scalar_attribute(const std::string& object_path, const std::string& name,
                                    detail::ScalarType type, const void* value, std::size_t list_size) {
  const std::string object = normalize(object_path);
  comm_.agree([&] {
    detail::QuietErrors quiet;
    if (!file_) throw engine::InternalError("H5Writer: " + path_ + " is already closed");
    if (!exists(object)) ensure_group(object);
    H5Handle obj(check_id(H5Oopen(file_.get(), object.c_str(), H5P_DEFAULT), "H5Oopen", path_, object),
                 H5Oclose);
    const htri_t found = H5Aexists(obj.get(), name.c_str());
    check_status(found < 0 ? -1 : 0, "H5Aexists", path_, object + "@" + name);
    if (found > 0) check_status(H5Adelete(obj.get(), name.c_str()), "H5Adelete", path_, object + "@" + name);
    const hid_t h5type = detail::native_type(type);
    const hsize_t dims[1] = {static_cast<hsize_t>(list_size)};
    H5Handle space(check_id(list_size == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, nullptr),
                            "H5Screate", path_, object),
                   H5Sclose);
    metadata_bytes_ += 256 + name.size() + 8 * list_size;
    H5Handle attr(check_id(H5Acreate2(obj.get(), name.c_str(), h5type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                           "H5Acreate2", path_, object + "@" + name),
                  H5Aclose);
    check_status(H5Awrite(attr.get(), h5type, value), "H5Awrite", path_, object + "@" + name);
  });
}

void H5Writer::write_pending_strings() {
  detail::QuietErrors quiet;
  // The strings go to a heap at the end of the file: reserve their room first (see allocated_end()).
  std::uint64_t string_bytes = 0;
  for (const auto& [name, values] : pending_strings_) {
    for (const auto& v : values) string_bytes += v.size() + 32;
  }
  reserve_file_space(path_, std::filesystem::file_size(path_) + 64 * 1024 + 2 * string_bytes);
  // Serial (sec2) open by rank 0 alone: the parallel file is closed on every rank by now.
  H5Handle file(check_id(H5Fopen(path_.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), "H5Fopen", path_, ""), H5Fclose);
  H5Handle type = vl_string_type(path_);
  for (const auto& [name, values] : pending_strings_) {
    if (values.empty()) continue;
    H5Handle ds(check_id(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), "H5Dopen2", path_, name), H5Dclose);
    std::vector<const char*> pointers;
    pointers.reserve(values.size());
    for (const auto& v : values) pointers.push_back(v.c_str());
    if (H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()) < 0) {
      throw_write_error(path_, 0, "HDF5 H5Dwrite of '" + name + "' failed: " + detail::h5_error_text());
    }
  }
  pending_strings_.clear();
  if (file.close() < 0) throw_write_error(path_, 0, "HDF5 H5Fclose failed: " + detail::h5_error_text());
}

void H5Writer::close() {
  if (!file_) return;
  // HDF5 writes its metadata while closing; with the blocks reserved first, a full disk is an agreed
  // error here rather than a failure inside HDF5's collective close, where ranks would part ways and hang.
  reserve_space();
  comm_.agree([&] {
    detail::QuietErrors quiet;
    dxpl_.reset();
    if (file_.close() < 0) throw_write_error(path_, 0, "HDF5 H5Fclose failed: " + detail::h5_error_text());
  });
  comm_.agree([&] {
    if (!pending_strings_.empty()) write_pending_strings();
  });
}

}  // namespace skein::io
