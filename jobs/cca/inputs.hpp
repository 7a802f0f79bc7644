// Reading the cca job's views: sample ids, matching X's samples to Y's by id, and a rank's columns of an
// HDF5 view in the matched sample order.
#pragma once

#include "comm/block_partition.hpp"
#include "comm/communicator.hpp"
#include "jobs/cca/settings.hpp"
#include "solvers/feature_block.hpp"

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace skein::cca {

// Matched samples: pair i is row x_rows[i] of x and row y_rows[i] of y, in x's order.
struct SampleMatch {
  std::vector<std::int64_t> x_rows, y_rows;
  std::int64_t x_samples = 0, y_samples = 0;  // rows of each view
  bool by_id = false;                         // false: both views had no ids and equal row counts
  std::int64_t unmatched_x() const { return x_samples - static_cast<std::int64_t>(x_rows.size()); }
  std::int64_t unmatched_y() const { return y_samples - static_cast<std::int64_t>(y_rows.size()); }
};

// The ids of an HDF5 view: its file's 1-D string dataset /sample_id (empty when there is none). Collective.
std::vector<std::string> hdf5_sample_ids(const comm::Communicator& comm, const ViewSource& source);
// Rows and columns of an HDF5 view's 2-D dataset (DataError naming it otherwise). Collective.
std::vector<std::uint64_t> hdf5_view_shape(const comm::Communicator& comm, const ViewSource& source);

// By id when both views have ids (duplicates are an error naming both rows; no common id is an error), else
// by row when the row counts agree (else an error saying what to add). Never communicates: every rank gets
// the same inputs and the same result or error.
SampleMatch match_samples(const std::vector<std::string>& x_ids, std::int64_t x_samples,
                          const std::string& x_name, const std::vector<std::string>& y_ids,
                          std::int64_t y_samples, const std::string& y_name);

// This rank's columns `columns` of an HDF5 view, the rows `rows` of the file in that order (m x columns),
// read collectively; NaN or Inf is a DataError naming the file row and column (agreed).
template <class Scalar>
Kokkos::View<Scalar**, Kokkos::LayoutRight> read_view_columns(const comm::Communicator& comm,
                                                              const ViewSource& source,
                                                              const std::vector<std::int64_t>& rows,
                                                              comm::IndexRange columns);

// This rank's columns `columns` of an HDF5 view, streamed: each read goes to the file (through
// io::H5RowReader, this rank alone), block row i being file row rows[i]. Errors (an unreadable file, NaN or
// Inf, naming the file row and column) are recorded, not thrown, and the read leaves zeros: call
// check_sources() on every rank at the points where ranks agree. Construct it after every collective
// reader of the same file is closed (HDF5 shares one open file per process).
template <class Scalar>
class Hdf5ColumnSource final : public solvers::FeatureSource<Scalar> {
 public:
  using HostMatrix = typename solvers::FeatureSource<Scalar>::HostMatrix;
  // Throws (locally) when the file cannot be opened: construct it inside comm.agree.
  Hdf5ColumnSource(const ViewSource& source, std::vector<std::int64_t> rows, comm::IndexRange columns);
  ~Hdf5ColumnSource() override;
  std::int64_t rows() const override { return static_cast<std::int64_t>(rows_.size()); }
  std::int64_t columns() const override { return static_cast<std::int64_t>(columns_.size()); }
  void read(const std::vector<std::int64_t>& rows, std::int64_t c0, std::int64_t c1,
            HostMatrix out) const override;
  // The first error a read met ("" when none).
  const std::string& error() const { return error_; }

 private:
  struct Reader;
  std::unique_ptr<Reader> reader_;
  std::string name_;                // "file:/dataset" for messages
  std::vector<std::int64_t> rows_;  // block row -> file row
  comm::IndexRange columns_;
  mutable std::string error_;
  mutable std::vector<std::uint64_t> file_rows_;
  mutable std::vector<std::int64_t> order_;
  mutable std::vector<Scalar> sorted_values_;
};

// A DataError on every rank when any rank's source met an error (the first one's message).
template <class Scalar>
void check_sources(const comm::Communicator& comm,
                   const std::vector<std::shared_ptr<const Hdf5ColumnSource<Scalar>>>& sources);

// The file's 1-D string dataset `name` next to the view (e.g. /feature_names), empty when absent.
std::vector<std::string> hdf5_names(const comm::Communicator& comm, const std::string& path,
                                    const std::string& name);

}  // namespace skein::cca
