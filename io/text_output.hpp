// Text outputs written by every rank at once: each rank's bytes, in rank order, form the file.
#pragma once

#include "comm/communicator.hpp"

#include <string>

namespace skein::io {

// Collective. Writes the concatenation of every rank's `local_bytes` in rank order to `path` with MPI-IO
// (each rank at its exscan offset; any part may be empty), atomically through AtomicOutput: the file
// appears under `path` only when complete. Errors throw the same InternalError on every rank.
void write_concatenated(const comm::Communicator& comm, const std::string& path,
                        const std::string& local_bytes);

}  // namespace skein::io
