#include "jobs/cca/inputs.hpp"

#include "engine/error.hpp"
#include "io/h5_parallel_reader.hpp"
#include "io/h5_reader.hpp"

#include <fmt/format.h>

#include <cmath>
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

template <class Scalar>
Kokkos::View<Scalar**, Kokkos::LayoutRight> read_view_columns(const comm::Communicator& comm,
                                                              const ViewSource& source,
                                                              const std::vector<std::int64_t>& rows,
                                                              comm::IndexRange columns) {
  io::H5ParallelReader file(comm, source.path);
  const auto shape = file.shape(source.dataset);
  const std::uint64_t local = columns.size();
  // The whole column block (all file rows) in one collective read, then the matched rows picked out.
  const std::vector<Scalar> block =
      file.read_block<Scalar>(source.dataset, {0, columns.begin}, {shape[0], local});
  file.close();
  Kokkos::View<Scalar**, Kokkos::LayoutRight> out("cca::view_columns", rows.size(), local);
  auto host = Kokkos::create_mirror_view(out);
  comm.agree([&] {
    for (std::size_t i = 0; i < rows.size(); ++i) {
      for (std::uint64_t j = 0; j < local; ++j) {
        const Scalar value = block[static_cast<std::size_t>(rows[i]) * local + j];
        if (!std::isfinite(static_cast<double>(value))) {
          throw DataError(fmt::format("{}: {} row {}, column {} is {:g}", source.path, source.dataset,
                                      rows[i], columns.begin + j, static_cast<double>(value)));
        }
        host(i, j) = value;
      }
    }
  });
  Kokkos::deep_copy(out, host);
  return out;
}

template Kokkos::View<float**, Kokkos::LayoutRight> read_view_columns<float>(const comm::Communicator&,
                                                                             const ViewSource&,
                                                                             const std::vector<std::int64_t>&,
                                                                             comm::IndexRange);
template Kokkos::View<double**, Kokkos::LayoutRight> read_view_columns<double>(
    const comm::Communicator&, const ViewSource&, const std::vector<std::int64_t>&, comm::IndexRange);

}  // namespace skein::cca
