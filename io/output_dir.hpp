// A run's output folder, checked and claimed in the run's first second rather than found wrong at its end.
#pragma once

#include "comm/communicator.hpp"

#include <string>
#include <vector>

namespace skein::io {

class OutputDir {
 public:
  // Collective. Rank 0 creates the folder (and its parents), takes an advisory lock on DIR/.skein.lock —
  // writing its pid and host there, which also proves the folder writable and not full — and removes the
  // temporaries (NAME.tmp for each of `outputs`) an interrupted run left. Errors, the same on every rank:
  // IoError (exit 74) when the folder cannot be created or written (permission, full disk); UsageError
  // (exit 2) when the path is not a folder, a temporary is a directory, or another live run holds the lock.
  OutputDir(const comm::Communicator& comm, std::string path, const std::vector<std::string>& outputs);
  // Rank 0 removes the lock file and releases the lock. Not collective.
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string lock_path_;
  int lock_fd_ = -1;
};

// Creates `path` and its parents (rank-local). IoError naming the part that could not be made; UsageError
// when `path` exists and is not a directory.
void make_directories(const std::string& path);

}  // namespace skein::io
