// Reading an HDF5 input collectively: every rank of a communicator opens the file through MPI-IO, reads its
// own N-D block into a Kokkos View, and gets replicated datasets and attributes; errors reach every rank.
#pragma once

#include "comm/communicator.hpp"
#include "io/detail/view_copy.hpp"
#include "io/hdf5.hpp"

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace skein::io {

namespace detail {
// The most bytes one collective H5Dread moves per rank (1 GiB); larger blocks go in rounds of whole rows.
// A test lowers it to exercise the rounds.
std::uint64_t& max_bytes_per_read();
}  // namespace detail

// What a dataset's elements are in the file; reads convert them to the type asked for.
struct ElementType {
  enum class Kind { integer, floating, string, other };
  Kind kind = Kind::other;
  std::size_t size = 0;    // bytes per element in the file
  bool is_signed = false;  // integers only
};

// One HDF5 file opened read-only by every rank of a communicator (MPI-IO driver, collective metadata reads,
// collective data transfers). Every method is collective: all ranks call it in the same order with the same
// dataset and attribute names (blocks differ). Names may omit the leading '/'. Errors are agreed: a missing
// file, dataset or attribute, a dataset of another rank (dimension count) or element kind than asked for, or
// a block outside the dataset throws the same engine::DataError on every rank, naming the file and the
// dataset ("rank R: " first when it concerns one rank's block). Reads convert the file's elements to the
// View's type (int into double, float into double, ...); floating-point data are never read into integers.
class H5ParallelReader {
 public:
  // Opens `path`; DataError on every rank when it is missing, unreadable or not HDF5.
  H5ParallelReader(const comm::Communicator& comm, const std::string& path);
  // Never communicates (it may run while one rank unwinds alone): a file still open here is left for
  // close_abandoned_files(). Call close() on every rank when done.
  ~H5ParallelReader();
  H5ParallelReader(const H5ParallelReader&) = delete;
  H5ParallelReader& operator=(const H5ParallelReader&) = delete;

  const std::string& path() const { return path_; }
  // Collective close; idempotent.
  void close();

  // Whether a group or dataset (and, when `attribute` is non-empty, that attribute on it) exists.
  bool exists(const std::string& object, const std::string& attribute = "") const;
  std::vector<std::uint64_t> shape(const std::string& dataset) const;
  ElementType element_type(const std::string& dataset) const;

  // This rank's block of an N-D dataset: [offset, offset + the View's extents), row-major in the file, into
  // a View of rank 1-3 (any layout or memory space, a subview too; of the dataset's rank). A View with a
  // zero extent reads nothing but still takes part. Host LayoutRight Views are read into directly.
  template <class View, std::enable_if_t<Kokkos::is_view<View>::value, int> = 0>
  void read_block(const std::string& dataset, const std::vector<std::uint64_t>& offset,
                  const View& view) const;
  // The same into a row-major host vector of the block's size.
  template <class T>
  std::vector<T> read_block(const std::string& dataset, const std::vector<std::uint64_t>& offset,
                            const std::vector<std::uint64_t>& extent) const {
    std::uint64_t count = 1;
    for (const auto e : extent) count *= e;
    std::vector<T> values(static_cast<std::size_t>(count));
    read_raw(dataset, detail::scalar_type_of<T>(), offset, extent, values.data());
    return values;
  }
  // Rows [first_row, first_row + rows) of a 1-D or 2-D dataset (all columns) into `view`, reallocated to
  // (rows) or (rows, columns) unless it has that shape already; its rank must be the dataset's.
  template <class View>
  void read_rows(const std::string& dataset, std::uint64_t first_row, std::uint64_t rows, View& view) const;

  // The whole dataset on every rank (rank 0 reads it, then broadcasts): into `view`, reallocated to the
  // dataset's shape unless it has it already; or flattened row-major into a vector (a scalar dataset gives
  // one element).
  template <class View, std::enable_if_t<Kokkos::is_view<View>::value, int> = 0>
  void read_replicated(const std::string& dataset, View& view) const;
  template <class T>
  std::vector<T> read_replicated(const std::string& dataset) const {
    std::vector<T> values;
    read_replicated_raw(dataset, detail::scalar_type_of<T>(), [&](std::uint64_t count) -> void* {
      values.resize(static_cast<std::size_t>(count));
      return values.data();
    });
    return values;
  }

  // Attributes of a group or dataset ("/" for the root). The list forms take scalar or 1-D attributes (a
  // scalar is a list of one); the scalar forms want exactly one value. Integer lists need integer
  // attributes; double lists take integers too; strings may be fixed or variable length.
  std::vector<std::int64_t> int_list_attribute(const std::string& object, const std::string& name) const;
  std::vector<double> double_list_attribute(const std::string& object, const std::string& name) const;
  std::vector<std::string> string_list_attribute(const std::string& object, const std::string& name) const;
  std::int64_t int_attribute(const std::string& object, const std::string& name) const;
  double double_attribute(const std::string& object, const std::string& name) const;
  std::string string_attribute(const std::string& object, const std::string& name) const;

 private:
  void read_raw(const std::string& dataset, detail::ScalarType type, const std::vector<std::uint64_t>& offset,
                const std::vector<std::uint64_t>& extent, void* buffer) const;
  // `allocate(count)` returns room for the whole dataset on every rank.
  template <class Allocate>
  void read_replicated_raw(const std::string& dataset, detail::ScalarType type, Allocate&& allocate) const {
    const auto dims = shape(dataset);
    std::uint64_t count = 1;
    for (const auto d : dims) count *= d;
    void* buffer = allocate(count);
    read_whole_on_root(dataset, type, dims, buffer);
    comm_.bcast(static_cast<char*>(buffer), count * detail::type_size(type), 0);
  }
  void read_whole_on_root(const std::string& dataset, detail::ScalarType type,
                          const std::vector<std::uint64_t>& dims, void* buffer) const;
  // DataError on every rank unless the dataset has `rank` dimensions.
  void require_rank(const std::string& dataset, const std::vector<std::uint64_t>& dims,
                    std::size_t rank) const;

  template <class View>
  static void reallocate(View& view, const std::vector<std::uint64_t>& dims) {
    bool same = true;
    for (std::size_t d = 0; d < View::rank; ++d) same = same && view.extent(d) == dims[d];
    if (same && view.data() != nullptr) return;
    if constexpr (View::rank == 1) {
      Kokkos::realloc(view, dims[0]);
    } else if constexpr (View::rank == 2) {
      Kokkos::realloc(view, dims[0], dims[1]);
    } else {
      Kokkos::realloc(view, dims[0], dims[1], dims[2]);
    }
  }

  const comm::Communicator& comm_;
  std::string path_;
  detail::H5Handle file_;
  detail::H5Handle dxpl_;  // collective transfers
};

// One rank's own reads of row sets of a 2-D dataset: for data streamed from the file each time it is used
// (the page cache holds it, not the process). The file is opened serially by this rank (no MPI-IO), so ranks
// read different rows at different times and no call is collective; errors (engine::DataError naming the
// file and dataset) concern this rank only: the caller agrees on them. HDF5 shares one open file per process,
// so open it while no H5ParallelReader has the same file open, and close it before opening one.
class H5RowReader {
 public:
  // Opens `dataset` (a 2-D numeric dataset) of `path` read-only.
  H5RowReader(const std::string& path, const std::string& dataset);
  H5RowReader(const H5RowReader&) = delete;
  H5RowReader& operator=(const H5RowReader&) = delete;

  const std::string& path() const { return path_; }
  const std::string& dataset() const { return name_; }
  // Rows and columns.
  const std::vector<std::uint64_t>& shape() const { return shape_; }
  // out (rows.size() x columns, row-major) = the rows `rows` (ascending, distinct) of columns [column,
  // column + columns), converted to T (float or double). Consecutive rows are read as one block.
  template <class T>
  void read(const std::vector<std::uint64_t>& rows, std::uint64_t column, std::uint64_t columns,
            T* out) const {
    read_raw(rows, column, columns, detail::scalar_type_of<T>(), out);
  }

 private:
  void read_raw(const std::vector<std::uint64_t>& rows, std::uint64_t column, std::uint64_t columns,
                detail::ScalarType type, void* out) const;

  std::string path_, name_;
  std::vector<std::uint64_t> shape_;
  detail::H5Handle file_, dataset_, space_;
};

template <class View, std::enable_if_t<Kokkos::is_view<View>::value, int>>
void H5ParallelReader::read_block(const std::string& dataset, const std::vector<std::uint64_t>& offset,
                                  const View& view) const {
  static_assert(View::rank >= 1 && View::rank <= 3, "read_block takes Views of rank 1 to 3");
  using T = typename View::non_const_value_type;
  static_assert(std::is_same_v<typename View::value_type, T>, "read_block needs a non-const View");
  const auto extent = detail::extents_of(view);
  constexpr bool direct =
      std::is_same_v<typename View::array_layout, Kokkos::LayoutRight> &&
      Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename View::memory_space>::accessible;
  if (direct && view.span_is_contiguous()) {
    Kokkos::fence();  // a kernel may still use the View's memory
    read_raw(dataset, detail::scalar_type_of<T>(), offset, extent, view.data());
    return;
  }
  std::vector<T> values(view.size());
  read_raw(dataset, detail::scalar_type_of<T>(), offset, extent, values.data());
  detail::assign_row_major(view, values.data());
}

template <class View>
void H5ParallelReader::read_rows(const std::string& dataset, std::uint64_t first_row, std::uint64_t rows,
                                 View& view) const {
  static_assert(Kokkos::is_view<View>::value && (View::rank == 1 || View::rank == 2),
                "read_rows takes a View of rank 1 or 2");
  auto dims = shape(dataset);
  require_rank(dataset, dims, View::rank);
  dims[0] = rows;
  reallocate(view, dims);
  std::vector<std::uint64_t> offset(View::rank, 0);
  offset[0] = first_row;
  read_block(dataset, offset, view);
}

template <class View, std::enable_if_t<Kokkos::is_view<View>::value, int>>
void H5ParallelReader::read_replicated(const std::string& dataset, View& view) const {
  static_assert(View::rank >= 1 && View::rank <= 3, "read_replicated takes Views of rank 1 to 3");
  using T = typename View::non_const_value_type;
  const auto dims = shape(dataset);
  require_rank(dataset, dims, View::rank);
  reallocate(view, dims);
  std::vector<T> values(view.size());
  read_whole_on_root(dataset, detail::scalar_type_of<T>(), dims, values.data());
  comm_.bcast(values.data(), values.size(), 0);
  detail::assign_row_major(view, values.data());
}

}  // namespace skein::io
