// Indexing .jsonl.zst inputs (decompressed size, frame starts) so that readers can split them across ranks.
#pragma once

#include "comm/communicator.hpp"
#include "io/input_files.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace skein::io {

struct ZstdIndex {
  std::uint64_t stream_size = 0;       // decompressed bytes of the whole file
  std::vector<ZstdFrameStart> frames;  // every frame that holds data (skippable frames are left out)
};

// Reads one file's frame structure. A frame that declares its content size (ZSTD_compress and the zstd CLI
// write it) is stepped over by its block headers without decoding; one that does not (streaming writers)
// is decoded to count its bytes. Throws DataError naming the file for data that is not zstd, is damaged or
// is truncated (with the decompressed offset where the data ends).
ZstdIndex index_zstd_file(const std::string& path, std::uint64_t size);

// Collective: indexes every .zst file of `files` (the files shared out over the ranks, results gathered),
// so that each becomes splittable (InputFile::indexed). Errors are agreed: every rank throws.
void index_zstd_inputs(const comm::Communicator& comm, std::vector<InputFile>& files);

// Collective: returns once every rank has called it, sleeping while it waits, for a rank about to enter a
// collective ahead of its peers (one indexes a file, or reads a slower piece, while another has nothing left
// to do). Waiting in the collective itself polls: Open MPI with mpi_yield_when_idle calls sched_yield in a
// loop, which on a loaded machine burned 8-17 % of each rank's CPU seconds in a 2-rank dsir run (perf),
// CPU the descheduled peer needed. A one-byte fan-in to rank 0 and fan-out back, tested every 0.2 ms (a
// delay that matters only before collectives seconds apart), inside an engine::BlockingScope named
// `operation`, so that a stopped peer trips the watchdog as a blocking MPI call would.
void wait_for_ranks(const comm::Communicator& comm, const char* operation);

}  // namespace skein::io
