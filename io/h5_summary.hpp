// The `skein inspect` summary of an HDF5 file (the general readers are in io/h5_reader.hpp).
#pragma once

#include "io/h5_reader.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace skein::io {

// What `skein inspect FILE.h5` prints: for a checkpoint (root attribute `checkpoint_schema_version`) first a
// line with its step, the ranks that wrote it, its age and whether it is complete, and the scalars of its
// /state; then the root attributes (job, status, skein_version, ranks, seed, wall_seconds, then any others),
// the `config` attribute's text, every dataset (recursively, by name) with its dtype, shape and first values
// (strings quoted; for n-D datasets the start of the first row) and its attributes, then the attributes of
// every other group (e.g. /metrics, /state). Opens read-only, serially.
// A missing, unreadable or non-HDF5 file is a DataError naming it.
std::string summarize_h5(const std::string& path, std::size_t values_per_dataset = 6);

}  // namespace skein::io
