// Write-then-rename for output files: nothing half-written is ever visible under the final name.
#pragma once

#include "comm/communicator.hpp"

#include <string>

namespace skein::io {

// Every output goes through one of these. Ranks write `tmp_path()` (final + ".tmp"), close every handle
// on it, then call commit(): rank 0 renames it to the final name. Declare the AtomicOutput before the
// writer that uses its tmp_path(), so the writer closes first when both leave scope.
//
//   io::AtomicOutput out(comm, dir + "/dsir.h5");
//   { io::H5Writer h5(comm, out.tmp_path()); ...; h5.close(); }
//   out.commit();
class AtomicOutput {
 public:
  // Collective. Rank 0 creates the parent directory if needed and removes a stale tmp file from an
  // earlier crashed run; a failure there is a UsageError on every rank (the output location is wrong).
  AtomicOutput(const comm::Communicator& comm, std::string final_path);
  // Without commit(): rank 0 removes the tmp file (not collective, safe while unwinding).
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  const std::string& final_path() const { return final_path_; }
  const std::string& tmp_path() const { return tmp_path_; }
  bool committed() const { return committed_; }

  // Collective, after every rank closed its handle: barrier; rank 0 fsyncs the file, renames it over the
  // final name and fsyncs the directory; every rank returns once the final file exists. A failure throws
  // the same InternalError on every rank.
  void commit();

 private:
  const comm::Communicator& comm_;
  std::string final_path_;
  std::string tmp_path_;
  bool committed_ = false;
};

}  // namespace skein::io
