// Parallel HDF5 output: RAII handles and a collective writer of distributed arrays in global index space.
#pragma once

#include "comm/communicator.hpp"

#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace skein::io {

namespace detail {

// Owns one hid_t and closes it with the matching H5*close; move-only.
class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~H5Handle() { reset(); }
  H5Handle(H5Handle&& other) noexcept
      : id_(std::exchange(other.id_, H5I_INVALID_HID)), closer_(other.closer_) {}
  H5Handle& operator=(H5Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
      closer_ = other.closer_;
    }
    return *this;
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;

  hid_t get() const { return id_; }
  explicit operator bool() const { return id_ >= 0; }
  // Closes now and reports failure (the destructor ignores it).
  herr_t close();
  void reset() noexcept;

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// Turns off HDF5's own error printing while alive (skein reports the error itself) and restores it after.
class QuietErrors {
 public:
  QuietErrors();
  ~QuietErrors();
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// Throw engine::InternalError "<call> failed for '<object>' in <file>: <HDF5's innermost message>" when
// the id is negative / the status is negative.
hid_t check_id(hid_t id, const char* call, const std::string& file, const std::string& object);
void check_status(herr_t status, const char* call, const std::string& file, const std::string& object);
// The most specific message on HDF5's current error stack ("" if none); clears the stack.
std::string h5_error_text();

// Element types the writer accepts, mapped to HDF5 native types in hdf5.cpp.
enum class ScalarType { i8, u8, i16, u16, i32, u32, i64, u64, f32, f64 };

template <class T>
constexpr ScalarType scalar_type_of() {
  using U = std::remove_cv_t<T>;
  static_assert(std::is_arithmetic_v<U> && !std::is_same_v<U, bool> && !std::is_same_v<U, char>,
                "HDF5 datasets hold (u)int8..64, float or double (use int8_t/uint8_t rather than char)");
  if constexpr (std::is_floating_point_v<U>) {
    static_assert(sizeof(U) == 4 || sizeof(U) == 8, "float or double");
    return sizeof(U) == 4 ? ScalarType::f32 : ScalarType::f64;
  } else if constexpr (std::is_signed_v<U>) {
    return sizeof(U) == 1   ? ScalarType::i8
           : sizeof(U) == 2 ? ScalarType::i16
           : sizeof(U) == 4 ? ScalarType::i32
                            : ScalarType::i64;
  } else {
    return sizeof(U) == 1   ? ScalarType::u8
           : sizeof(U) == 2 ? ScalarType::u16
           : sizeof(U) == 4 ? ScalarType::u32
                            : ScalarType::u64;
  }
}

hid_t native_type(ScalarType type);
std::size_t type_size(ScalarType type);

// Host staging of a Kokkos View for the writer's View overload, defined in io/detail/view_copy.hpp (include
// io/hdf5_views.hpp), so that this header needs no Kokkos. Without it that overload fails to compile here.
template <class View>
struct ViewStaging;

// Which file a descriptor is open on (st_dev, st_ino), so that a writer's file can be found among this
// process's descriptors once its path is gone (its .tmp is removed as the error unwinds).
struct FileIdentity {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  bool known = false;
};

// Keeps a parallel file whose owner is destroyed without a collective close (an error is unwinding) for
// close_abandoned_files(): closing it here could leave this rank alone in a collective. `discard` (a
// writer's file) says that nothing HDF5 writes into it any more matters: see close_abandoned_files();
// `identity` finds its descriptors.
void abandon_file(H5Handle file, const std::string& path, bool discard = false, FileIdentity identity = {});

}  // namespace detail

// One output file written by every rank of a communicator. Every method is collective: all ranks call
// it in the same order with the same dataset names (the data differ). Datasets are contiguous and
// unfiltered, written with collective MPI-IO in global index space, so the file's contents do not depend
// on the number of ranks. Groups are created on demand ("/selected/file_index" creates "/selected").
// Errors are agreed across ranks: an HDF5 failure on any rank throws the same typed error on all (IoError,
// exit 74, naming the file and the cause, for a failed write or close). Disk space for each dataset is
// reserved before its data is written, so a full disk is found before HDF5's own state can go wrong.
// Close the writer with close() on every rank before OutputSet/AtomicOutput::commit().
class H5Writer {
 public:
  // Creates (truncates) `path`.
  H5Writer(const comm::Communicator& comm, const std::string& path);
  // Never communicates: it may run while one rank unwinds from an error the others do not know about.
  // A file still open here (close() was not reached) is left for close_abandoned_files().
  ~H5Writer();
  H5Writer(const H5Writer&) = delete;
  H5Writer& operator=(const H5Writer&) = delete;

  const std::string& path() const { return path_; }
  const comm::Communicator& comm() const { return comm_; }

  // Creates the group and any missing parents; an existing group is fine.
  void create_group(const std::string& group);

  // 1-D dataset of the concatenation, in rank order, of every rank's `local` (any part may be empty).
  template <class T>
  void write_distributed(const std::string& dataset, const std::vector<T>& local) {
    write_distributed(dataset, local.data(), local.size());
  }
  template <class T>
  void write_distributed(const std::string& dataset, const T* local, std::size_t count) {
    write_array(dataset, detail::scalar_type_of<T>(), local, count, 1, /*two_d=*/false, /*replicated=*/false);
  }
  // 2-D dataset [global_rows, cols] (row-major): this rank's `local_rows` rows follow lower ranks' rows.
  // `cols` must be the same on every rank.
  template <class T>
  void write_distributed_rows(const std::string& dataset, const T* local, std::size_t local_rows,
                              std::size_t cols) {
    write_array(dataset, detail::scalar_type_of<T>(), local, local_rows, cols, /*two_d=*/true,
                /*replicated=*/false);
  }
  // The same values on every rank (a model vector); written once. Sizes must agree across ranks.
  template <class T>
  void write_replicated(const std::string& dataset, const std::vector<T>& values) {
    write_array(dataset, detail::scalar_type_of<T>(), values.data(), values.size(), 1, false,
                /*replicated=*/true);
  }
  template <class T>
  void write_replicated_rows(const std::string& dataset, const T* values, std::size_t rows,
                             std::size_t cols) {
    write_array(dataset, detail::scalar_type_of<T>(), values, rows, cols, /*two_d=*/true,
                /*replicated=*/true);
  }
  // N-D dataset of shape `global_shape` (row-major, C order) of which this rank writes the block at
  // `offset` with `extent` (its elements contiguous, row-major, in `local`); blocks of different ranks must
  // not overlap and together should cover the array. An empty extent writes nothing. Every rank passes the
  // same global shape. Used for 3-D fields of a domain decomposition: the file is the global array.
  template <class T>
  void write_block(const std::string& dataset, const std::vector<std::uint64_t>& global_shape,
                   const std::vector<std::uint64_t>& offset, const std::vector<std::uint64_t>& extent,
                   const T* local) {
    write_nd(dataset, detail::scalar_type_of<T>(), global_shape, offset, extent, local);
  }
  // The same from a Kokkos View of rank 1 to 3 (any layout or memory space, a subview of a ghosted field
  // too): its extents are the block's; it is copied to a row-major host buffer first. Needs
  // io/hdf5_views.hpp.
  template <class View, comm::detail::if_view_like<View> = 0>
  void write_block(const std::string& dataset, const std::vector<std::uint64_t>& global_shape,
                   const std::vector<std::uint64_t>& offset, const View& view) {
    const auto values = detail::ViewStaging<View>::row_major_values(view);
    write_block(dataset, global_shape, offset, detail::ViewStaging<View>::extents(view), values.data());
  }
  // A replicated list of variable-length UTF-8 strings. Parallel HDF5 cannot write variable-length data
  // through MPI-IO, so the dataset is created now and rank 0 fills it in close(), after the collective
  // close, with a serial open; attributes may be set on it meanwhile.
  void write_strings(const std::string& dataset, const std::vector<std::string>& values);

  // Attributes on a group or dataset (a missing group is created); the value must be the same on every
  // rank. An existing attribute of that name is replaced. Strings are variable-length UTF-8 scalars
  // (no 64 KiB limit: the resolved config fits); integers are stored as int64 (uint64 when unsigned).
  void set_attribute(const std::string& object_path, const std::string& name, const std::string& value);
  void set_attribute(const std::string& object_path, const std::string& name, const char* value) {
    set_attribute(object_path, name, std::string(value));
  }
  void set_attribute(const std::string& object_path, const std::string& name, double value);
  template <class I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>, int> = 0>
  void set_attribute(const std::string& object_path, const std::string& name, I value) {
    if constexpr (std::is_signed_v<I>) {
      const auto v = static_cast<std::int64_t>(value);
      set_scalar_attribute(object_path, name, detail::ScalarType::i64, &v);
    } else {
      const auto v = static_cast<std::uint64_t>(value);
      set_scalar_attribute(object_path, name, detail::ScalarType::u64, &v);
    }
  }

  // A 1-D int64 attribute (a grid's extents); H5ParallelReader::int_list_attribute reads it back.
  void set_attribute(const std::string& object_path, const std::string& name,
                     const std::vector<std::int64_t>& values);

  // Collective close (then rank 0 writes pending string datasets); idempotent.
  void close();
  // Rank 0 makes sure the file's blocks up to its current end of allocation exist on disk (IoError if not).
  void reserve_space();

 private:
  void write_array(const std::string& dataset, detail::ScalarType type, const void* data, std::uint64_t rows,
                   std::uint64_t cols, bool two_d, bool replicated);
  void write_nd(const std::string& dataset, detail::ScalarType type,
                const std::vector<std::uint64_t>& global_shape, const std::vector<std::uint64_t>& offset,
                const std::vector<std::uint64_t>& extent, const void* data);
  void set_scalar_attribute(const std::string& object_path, const std::string& name, detail::ScalarType type,
                            const void* value, std::size_t list_size = 0);
  bool exists(const std::string& object_path) const;
  void ensure_group(const std::string& group);
  detail::H5Handle create_dataset(const std::string& dataset, hid_t file_type,
                                  const std::vector<hsize_t>& dims, bool contiguous_no_fill);
  // A contiguous dataset of `bytes` bytes of data whose disk blocks are reserved (with the metadata
  // estimate of allocated_end()) before anything is written into it.
  detail::H5Handle create_reserved_dataset(const std::string& name, hid_t mem_type,
                                           const std::vector<hsize_t>& dims, std::uint64_t bytes);
  void write_pending_strings();
  std::uint64_t allocated_end() const;

  const comm::Communicator& comm_;
  std::string path_;
  detail::H5Handle file_;
  detail::H5Handle dxpl_;
  std::vector<std::pair<std::string, std::vector<std::string>>> pending_strings_;  // rank 0 only
  detail::FileIdentity identity_;     // of the file at path_, found again if the writer is abandoned
  std::uint64_t data_end_ = 0;        // end of the last dataset's data in the file
  std::uint64_t metadata_bytes_ = 0;  // attribute values and object names written so far
};

// Collective over the communicators the abandoned writers and readers used (every rank must call it with the
// same set, which holds when writers are created collectively). Closes the files of H5Writers destroyed
// without close() because an error unwound through them (H5ParallelReaders too), so that HDF5 never closes a
// file from MPI_Finalize. Call it after the error was agreed, before MPI is finalized; failures are logged.
// An abandoned writer's file is incomplete and removed (OutputSet), yet HDF5 flushes its metadata when it
// closes it; on a full disk or past `ulimit -f` that flush fails, and a failed H5Fclose leaves HDF5 with a
// dangling file (MPI_Finalize then crashes in it) and the ranks out of step in the collective close (a
// hang). So every rank first points its descriptors on such a file at /dev/null, and its MPI_File_set_size
// is skipped (hdf5.cpp, through the MPI profiling interface): the close then runs the same way on every
// rank and succeeds, and its writes go nowhere.
// Returns how many it closed.
int close_abandoned_files();

}  // namespace skein::io
