#include "jobs/cca/inputs.hpp"

#include "engine/error.hpp"
#include "io/h5_parallel_reader.hpp"
#include "io/h5_reader.hpp"

#include <fmt/format.h>

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <unordered_map>

namespace skein::cca {

using engine::DataError;

std::vector<std::string> hdf5_names(const comm::Communicator& comm, const std::string& path,
                                    const std::string& name) {
  io::H5ParallelReader file(comm, path);
  const bool present = file.exists(name);
  file.close();
  if (!present) return {};
  // Small (one string per sample or feature): every rank reads it serially.
  std::vector<std::string> names;
  comm.agree([&] { names = io::read_strings(path, name); });
  return names;
}

std::vector<std::string> hdf5_sample_ids(const comm::Communicator& comm, const ViewSource& source) {
  return hdf5_names(comm, source.path, "/sample_id");
}

std::vector<std::uint64_t> hdf5_view_shape(const comm::Communicator& comm, const ViewSource& source) {
  io::H5ParallelReader file(comm, source.path);
  const auto shape = file.shape(source.dataset);
  file.close();
  comm.agree([&] {
    if (shape.size() != 2) {
      throw DataError(source.path + ": " + source.dataset + " has " + std::to_string(shape.size()) +
                      " dimensions; a view is 2-D (samples x features)");
    }
    if (shape[0] < 2 || shape[1] == 0) {
      throw DataError(source.path + ": " + source.dataset + " is " + std::to_string(shape[0]) + " x " +
                      std::to_string(shape[1]) + "; a view needs at least 2 samples and 1 feature");
    }
  });
  return shape;
}

SampleMatch match_samples(const std::vector<std::string>& x_ids, std::int64_t x_samples,
                          const std::string& x_name, const std::vector<std::string>& y_ids,
                          std::int64_t y_samples, const std::string& y_name) {
  SampleMatch match;
  match.x_samples = x_samples;
  match.y_samples = y_samples;
  if (x_ids.empty() || y_ids.empty()) {
    if (x_samples != y_samples) {
      throw DataError(
          fmt::format("{} has {} samples and {} has {}, and {} has no sample ids to match them by: add a 1-D "
                      "string dataset "
                      "/sample_id (one id per row) to the HDF5 file",
                      x_name, x_samples, y_name, y_samples, x_ids.empty() ? x_name : y_name));
    }
    for (std::int64_t i = 0; i < x_samples; ++i) {
      match.x_rows.push_back(i);
      match.y_rows.push_back(i);
    }
    return match;
  }
  match.by_id = true;
  if (static_cast<std::int64_t>(y_ids.size()) != y_samples ||
      static_cast<std::int64_t>(x_ids.size()) != x_samples) {
    throw DataError(
        fmt::format("{}: /sample_id has {} ids for {} rows",
                    x_ids.size() != static_cast<std::size_t>(x_samples) ? x_name : y_name,
                    x_ids.size() != static_cast<std::size_t>(x_samples) ? x_ids.size() : y_ids.size(),
                    x_ids.size() != static_cast<std::size_t>(x_samples) ? x_samples : y_samples));
  }
  std::unordered_map<std::string, std::int64_t> y_row;
  y_row.reserve(y_ids.size());
  for (std::int64_t i = 0; i < y_samples; ++i) {
    const auto [at, fresh] = y_row.emplace(y_ids[i], i);
    if (!fresh) {
      throw DataError(fmt::format("{}: duplicate sample id '{}' in /sample_id rows {} and {}", y_name,
                                  y_ids[i], at->second, i));
    }
  }
  std::unordered_map<std::string, std::int64_t> x_seen;
  x_seen.reserve(x_ids.size());
  for (std::int64_t i = 0; i < x_samples; ++i) {
    const auto [at, fresh] = x_seen.emplace(x_ids[i], i);
    if (!fresh) {
      throw DataError(
          fmt::format("{}: duplicate sample id '{}' in rows {} and {}", x_name, x_ids[i], at->second, i));
    }
    const auto found = y_row.find(x_ids[i]);
    if (found == y_row.end()) continue;
    match.x_rows.push_back(i);
    match.y_rows.push_back(found->second);
  }
  if (match.x_rows.size() < 2) {
    throw DataError(
        fmt::format("{} and {} share {} sample id(s) (e.g. '{}' against '{}'): nothing to analyse", x_name,
                    y_name, match.x_rows.size(), x_ids.front(), y_ids.front()));
  }
  return match;
}

namespace {

// Asks the kernel to back [data, data + bytes) with transparent huge pages before it is first touched:
// a large View is otherwise faulted in 4 KiB at a time, which costs more (~7 us a page on the VM measured,
// 3.2 GB in 5.7 s of system time) than reading the data from the page cache.
void advise_huge_pages(void* data, std::size_t bytes) {
#ifdef MADV_HUGEPAGE
  constexpr std::uintptr_t huge = std::uintptr_t{2} << 20;
  const auto begin = (reinterpret_cast<std::uintptr_t>(data) + huge - 1) & ~(huge - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(data) + bytes) & ~(huge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // advice only
#else
  (void)data;
  (void)bytes;
#endif
}

// Whether values[0 .. count) are all finite: an all-ones exponent field is NaN or Inf. A branch-free
// integer test the compiler vectorises (a std::isfinite loop that may throw at each value does not; it
// cost as much as the statistics it guards).
template <class Scalar>
bool all_finite(const Scalar* values, std::size_t count) {
  static_assert(sizeof(Scalar) == 4 || sizeof(Scalar) == 8, "float or double");
  using Bits = std::conditional_t<sizeof(Scalar) == 4, std::uint32_t, std::uint64_t>;
  constexpr Bits exponent = sizeof(Scalar) == 4 ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
  Bits bad = 0;
  for (std::size_t i = 0; i < count; ++i) {
    Bits bits;
    std::memcpy(&bits, values + i, sizeof(Bits));
    bad |= static_cast<Bits>((bits & exponent) == exponent);
  }
  return bad == 0;
}

// A DataError naming the first non-finite value of out (m x w; row i is file row file_row(i)).
template <class Scalar, class FileRow>
void require_finite(const Scalar* values, std::size_t m, std::size_t w, const ViewSource& source,
                    FileRow&& file_row, std::uint64_t first_column) {
  if (all_finite(values, m * w)) return;
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < w; ++j) {
      const Scalar value = values[i * w + j];
      if (!std::isfinite(static_cast<double>(value))) {
        throw DataError(fmt::format("{}: {} row {}, column {} is {:g}", source.path, source.dataset,
                                    file_row(i), first_column + j, static_cast<double>(value)));
      }
    }
}

}  // namespace

template <class Scalar>
Kokkos::View<Scalar**, Kokkos::LayoutRight> read_view_columns(const comm::Communicator& comm,
                                                              const ViewSource& source,
                                                              const std::vector<std::int64_t>& rows,
                                                              comm::IndexRange columns) {
  using Matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight>;
  io::H5ParallelReader file(comm, source.path);
  const auto shape = file.shape(source.dataset);
  const std::uint64_t local = columns.size();
  // Read straight into the View (never initialised, huge pages): one copy of the block, not two.
  Matrix out(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("cca::view_columns")), rows.size(),
             local);
  advise_huge_pages(out.data(), out.span() * sizeof(Scalar));
  bool identity = rows.size() == shape[0];
  for (std::size_t i = 0; identity && i < rows.size(); ++i)
    identity = rows[i] == static_cast<std::int64_t>(i);
  constexpr bool host =
      Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename Matrix::memory_space>::accessible;
  if (identity && host) {
    file.read_block(source.dataset, {0, columns.begin}, out);
    file.close();
    comm.agree([&] {
      require_finite(
          out.data(), rows.size(), local, source, [](std::size_t i) { return i; }, columns.begin);
    });
    return out;
  }
  // Rows matched in another order, or some unmatched: the file's rows in rounds of at most ~64 MiB per
  // rank (the same number of collective reads on every rank), each scattered to its matched rows.
  std::vector<std::int64_t> matched(shape[0], -1);
  for (std::size_t i = 0; i < rows.size(); ++i)
    matched[static_cast<std::size_t>(rows[i])] = static_cast<std::int64_t>(i);
  const std::uint64_t widest = comm.allreduce(local, comm::Op::max);
  const std::uint64_t round_rows = std::max<std::uint64_t>(
      1, (std::uint64_t{64} << 20) / std::max<std::uint64_t>(1, widest * sizeof(Scalar)));
  auto host_out = Kokkos::create_mirror_view(out);
  std::vector<Scalar> buffer;
  for (std::uint64_t r0 = 0; r0 < shape[0]; r0 += round_rows) {
    const std::uint64_t m = std::min(round_rows, shape[0] - r0);
    buffer = file.read_block<Scalar>(source.dataset, {r0, columns.begin}, {m, local});
    comm.agree([&] {
      for (std::uint64_t i = 0; i < m; ++i) {
        const std::int64_t to = matched[r0 + i];
        if (to < 0) continue;
        const Scalar* from = buffer.data() + i * local;
        require_finite(
            from, 1, local, source, [&](std::size_t) { return r0 + i; }, columns.begin);
        std::copy(from, from + local, &host_out(to, 0));
      }
    });
  }
  file.close();
  Kokkos::deep_copy(out, host_out);
  return out;
}

template <class Scalar>
struct Hdf5ColumnSource<Scalar>::Reader {
  Reader(const std::string& path, const std::string& dataset) : file(path, dataset) {}
  io::H5RowReader file;
};

template <class Scalar>
Hdf5ColumnSource<Scalar>::Hdf5ColumnSource(const ViewSource& source, std::vector<std::int64_t> rows,
                                           comm::IndexRange columns)
    : reader_(std::make_unique<Reader>(source.path, source.dataset)),
      name_(source.path + ":" + source.dataset),
      rows_(std::move(rows)),
      columns_(columns) {}

template <class Scalar>
Hdf5ColumnSource<Scalar>::~Hdf5ColumnSource() = default;

template <class Scalar>
void Hdf5ColumnSource<Scalar>::read(const std::vector<std::int64_t>& rows, std::int64_t c0, std::int64_t c1,
                                    HostMatrix out) const {
  const std::size_t m = rows.size(), w = static_cast<std::size_t>(c1 - c0);
  if (m == 0 || w == 0) return;
  if (!error_.empty()) {  // already failed: zeros until the ranks agree to stop
    Kokkos::deep_copy(out, Scalar(0));
    return;
  }
  try {
    // Block rows ascend; their file rows need not (ids matched in another order): read those in file
    // order, then put each where it belongs.
    file_rows_.resize(m);
    bool ascending = true;
    for (std::size_t i = 0; i < m; ++i) {
      file_rows_[i] = static_cast<std::uint64_t>(rows_[static_cast<std::size_t>(rows[i])]);
      ascending = ascending && (i == 0 || file_rows_[i] > file_rows_[i - 1]);
    }
    const std::uint64_t first_column = columns_.begin + static_cast<std::uint64_t>(c0);
    if (ascending) {
      reader_->file.read(file_rows_, first_column, w, out.data());
      require_finite(
          out.data(), m, w, ViewSource{"", false, reader_->file.path(), reader_->file.dataset()},
          [&](std::size_t i) { return file_rows_[i]; }, first_column);
      return;
    }
    order_.resize(m);
    std::iota(order_.begin(), order_.end(), std::int64_t{0});
    std::sort(order_.begin(), order_.end(),
              [&](std::int64_t a, std::int64_t b) { return file_rows_[a] < file_rows_[b]; });
    std::vector<std::uint64_t> sorted(m);
    for (std::size_t i = 0; i < m; ++i) sorted[i] = file_rows_[static_cast<std::size_t>(order_[i])];
    sorted_values_.resize(m * w);
    reader_->file.read(sorted, first_column, w, sorted_values_.data());
    require_finite(
        sorted_values_.data(), m, w, ViewSource{"", false, reader_->file.path(), reader_->file.dataset()},
        [&](std::size_t i) { return sorted[i]; }, first_column);
    for (std::size_t i = 0; i < m; ++i)
      std::copy(sorted_values_.data() + i * w, sorted_values_.data() + (i + 1) * w,
                &out(static_cast<std::size_t>(order_[i]), 0));
  } catch (const std::exception& e) {
    error_ = e.what();
    Kokkos::deep_copy(out, Scalar(0));
  }
}

template <class Scalar>
void check_sources(const comm::Communicator& comm,
                   const std::vector<std::shared_ptr<const Hdf5ColumnSource<Scalar>>>& sources) {
  comm.agree([&] {
    for (const auto& source : sources)
      if (source && !source->error().empty()) throw DataError(source->error());
  });
}

template class Hdf5ColumnSource<float>;
template class Hdf5ColumnSource<double>;
template void check_sources<float>(const comm::Communicator&,
                                   const std::vector<std::shared_ptr<const Hdf5ColumnSource<float>>>&);
template void check_sources<double>(const comm::Communicator&,
                                    const std::vector<std::shared_ptr<const Hdf5ColumnSource<double>>>&);

template Kokkos::View<float**, Kokkos::LayoutRight> read_view_columns<float>(const comm::Communicator&,
                                                                             const ViewSource&,
                                                                             const std::vector<std::int64_t>&,
                                                                             comm::IndexRange);
template Kokkos::View<double**, Kokkos::LayoutRight> read_view_columns<double>(
    const comm::Communicator&, const ViewSource&, const std::vector<std::int64_t>&, comm::IndexRange);

}  // namespace skein::cca
