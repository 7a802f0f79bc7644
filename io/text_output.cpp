#include "io/text_output.hpp"

#include "engine/error.hpp"
#include "io/atomic_output.hpp"
#include "io/file_space.hpp"

#include <mpi.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

namespace skein::io {

namespace {

// Per-call byte count for MPI-IO, which takes int counts.
constexpr std::uint64_t max_bytes_per_write = std::uint64_t{1} << 30;

std::string mpi_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  return std::string(text, static_cast<std::size_t>(length));
}

}  // namespace

void write_concatenated_to(const comm::Communicator& comm, const std::string& path,
                           const std::string& local_bytes) {
  const std::uint64_t size = local_bytes.size();
  const std::uint64_t offset = comm.exscan(size);
  const std::uint64_t total = comm.allreduce(size, comm::Op::sum);
  // Every rank makes the same number of collective write calls, some of them empty.
  const std::uint64_t rounds =
      comm.allreduce<std::uint64_t>((size + max_bytes_per_write - 1) / max_bytes_per_write, comm::Op::max);
  MPI_File file = MPI_FILE_NULL;
  comm.agree([&] {
    const int rc =
        MPI_File_open(comm.native(), path.c_str(), MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &file);
    if (rc != MPI_SUCCESS) {
      file = MPI_FILE_NULL;
      throw_write_error(path, 0, "cannot open it for writing: " + mpi_text(rc));
    }
  });
  try {
    // Open MPI's MPI-IO reports a write into a full file system as success (it only prints a warning), so
    // the space is reserved first and the size checked at the end.
    comm.agree([&] {
      if (comm.rank() == 0) reserve_file_space(path, total);
    });
    for (std::uint64_t round = 0; round < rounds; ++round) {
      comm.agree([&] {
        const std::uint64_t begin = round * max_bytes_per_write;
        const std::uint64_t n = begin < size ? std::min(max_bytes_per_write, size - begin) : 0;
        MPI_Status status;
        const int rc = MPI_File_write_at_all(file, static_cast<MPI_Offset>(offset + begin),
                                             local_bytes.data() + std::min(begin, size), static_cast<int>(n),
                                             MPI_BYTE, &status);
        if (rc != MPI_SUCCESS) throw_write_error(path, 0, "writing failed: " + mpi_text(rc));
        int written = 0;
        if (MPI_Get_count(&status, MPI_BYTE, &written) == MPI_SUCCESS && written != MPI_UNDEFINED &&
            static_cast<std::uint64_t>(written) != n) {
          throw_write_error(path, 0,
                            "wrote " + std::to_string(written) + " of " + std::to_string(n) + " bytes");
        }
      });
    }
  } catch (...) {
    // Every rank is here (the error was agreed), so the collective close cannot leave anyone waiting.
    MPI_File_close(&file);
    throw;
  }
  comm.agree([&] {
    const int rc = MPI_File_close(&file);
    if (rc != MPI_SUCCESS) throw_write_error(path, 0, "closing failed: " + mpi_text(rc));
  });
  comm.agree([&] {
    if (comm.rank() != 0) return;
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) throw_write_error(path, errno, "cannot check its size");
    if (static_cast<std::uint64_t>(info.st_size) != total) {
      throw_write_error(
          path, 0,
          "short write: " + std::to_string(info.st_size) + " of " + std::to_string(total) + " bytes on disk");
    }
  });
}

void write_concatenated(const comm::Communicator& comm, const std::string& path,
                        const std::string& local_bytes) {
  AtomicOutput out(comm, path);
  write_concatenated_to(comm, out.tmp_path(), local_bytes);
  out.commit();
}

}  // namespace skein::io
