// Text outputs written by every rank at once: each rank's bytes, in rank order, form the file.
#pragma once

#include "comm/communicator.hpp"

#include <string>

namespace skein::io {

// Collective. Writes the concatenation of every rank's `local_bytes` in rank order to `path` with MPI-IO
// (each rank at its exscan offset; any part may be empty). The space is reserved before writing and the
// size checked after closing, so a full disk or quota is an IoError naming the file on every rank, never
// a short file. Writes `path` as given: use it on an OutputSet's tmp path.
void write_concatenated_to(const comm::Communicator& comm, const std::string& path,
                           const std::string& local_bytes);

// write_concatenated_to() through an AtomicOutput: the file appears under `path` only when complete.
void write_concatenated(const comm::Communicator& comm, const std::string& path,
                        const std::string& local_bytes);

}  // namespace skein::io
