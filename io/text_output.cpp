#include "io/text_output.hpp"

#include "engine/error.hpp"
#include "io/atomic_output.hpp"

#include <mpi.h>

#include <algorithm>
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

// Closes the MPI file when every rank leaves together (normally, or through an agreed error).
class MpiFile {
 public:
  MPI_File handle = MPI_FILE_NULL;
  ~MpiFile() {
    if (handle != MPI_FILE_NULL) MPI_File_close(&handle);
  }
};

}  // namespace

void write_concatenated(const comm::Communicator& comm, const std::string& path,
                        const std::string& local_bytes) {
  AtomicOutput out(comm, path);
  const std::uint64_t size = local_bytes.size();
  const std::uint64_t offset = comm.exscan(size);
  // Every rank makes the same number of collective write calls, some of them empty.
  const std::uint64_t rounds =
      comm.allreduce<std::uint64_t>((size + max_bytes_per_write - 1) / max_bytes_per_write, comm::Op::max);
  {
    MpiFile file;
    comm.agree([&] {
      const int rc = MPI_File_open(comm.native(), out.tmp_path().c_str(), MPI_MODE_CREATE | MPI_MODE_WRONLY,
                                   MPI_INFO_NULL, &file.handle);
      if (rc != MPI_SUCCESS) {
        file.handle = MPI_FILE_NULL;
        throw engine::InternalError("cannot open " + out.tmp_path() + " for writing: " + mpi_text(rc));
      }
    });
    for (std::uint64_t round = 0; round < rounds; ++round) {
      comm.agree([&] {
        const std::uint64_t begin = round * max_bytes_per_write;
        const std::uint64_t n = begin < size ? std::min(max_bytes_per_write, size - begin) : 0;
        MPI_Status status;
        const int rc = MPI_File_write_at_all(file.handle, static_cast<MPI_Offset>(offset + begin),
                                             local_bytes.data() + std::min(begin, size), static_cast<int>(n),
                                             MPI_BYTE, &status);
        if (rc != MPI_SUCCESS)
          throw engine::InternalError("writing " + out.tmp_path() + " failed: " + mpi_text(rc));
      });
    }
    comm.agree([&] {
      const int rc = MPI_File_close(&file.handle);
      file.handle = MPI_FILE_NULL;
      if (rc != MPI_SUCCESS)
        throw engine::InternalError("closing " + out.tmp_path() + " failed: " + mpi_text(rc));
    });
  }
  out.commit();
}

}  // namespace skein::io
