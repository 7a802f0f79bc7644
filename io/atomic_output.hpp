// Write-then-rename for output files: nothing half-written is ever visible under a final name, and a run's
// outputs appear together or not at all.
#pragma once

#include "comm/communicator.hpp"

#include <string>
#include <vector>

namespace skein::io {

// A run's output files, published together. Ranks write each file's `tmp` path (final + ".tmp"), close
// every handle on it, then call commit(). Until commit() the previous run's files are untouched; commit()
// removes the previous *last* file first, renames the others into place and the last one after them. So
// the last file (a job's HDF5 result, which names its companions) marks a complete set: a folder where it
// is missing holds no complete run, whatever else is there, and a failed run leaves the previous set whole.
// Declare the OutputSet before the writers that use its paths, so they close first when leaving scope.
//
//   io::OutputSet outputs(comm, out_dir);
//   const std::string jsonl = outputs.add("selected.jsonl"), h5 = outputs.add("dsir.h5");  // h5 last
//   io::write_concatenated_to(comm, jsonl, text);
//   { io::H5Writer w(comm, h5); ...; w.close(); }
//   outputs.commit();
class OutputSet {
 public:
  // Not collective; add() is.
  OutputSet(const comm::Communicator& comm, std::string directory);
  // Without commit(): rank 0 empties and removes every tmp file (not collective, safe while unwinding;
  // emptying first frees the space even while another rank still holds the file open).
  ~OutputSet();
  OutputSet(const OutputSet&) = delete;
  OutputSet& operator=(const OutputSet&) = delete;

  // Collective. Adds DIRECTORY/NAME and returns the tmp path to write. Rank 0 creates the directory if
  // needed and removes a stale tmp file of that name (UsageError on every rank when it cannot: the output
  // location is wrong, e.g. a directory is in the way).
  std::string add(const std::string& name);
  std::string final_path(std::size_t index) const { return files_.at(index); }
  std::string tmp_path(std::size_t index) const { return files_.at(index) + ".tmp"; }
  bool committed() const { return committed_; }

  // Collective, after every rank closed its handles: rank 0 fsyncs the tmp files, removes the old last
  // file, renames each tmp over its final name (the last one last) and fsyncs the directory; every rank
  // returns once the files exist. A failure throws the same IoError on every rank.
  void commit();

 private:
  friend class AtomicOutput;
  std::string add_path(const std::string& final_path);

  const comm::Communicator& comm_;
  std::string directory_;
  std::vector<std::string> files_;
  bool committed_ = false;
};

// Rank-local. Removes `tmp`, a temporary an interrupted run left (no-op when it is not there); returns
// whether there was one. UsageError when it is a directory (it is in the way of an output, and may be the
// user's), IoError when it cannot be removed.
bool remove_stale_temporary(const std::string& tmp);

// One output file on its own: an OutputSet of one.
//
//   io::AtomicOutput out(comm, dir + "/dsir.h5");
//   { io::H5Writer h5(comm, out.tmp_path()); ...; h5.close(); }
//   out.commit();
class AtomicOutput {
 public:
  // Collective (see OutputSet::add).
  AtomicOutput(const comm::Communicator& comm, const std::string& final_path);
  const std::string& final_path() const { return final_path_; }
  const std::string& tmp_path() const { return tmp_path_; }
  bool committed() const { return set_.committed(); }
  void commit() { set_.commit(); }

 private:
  OutputSet set_;
  std::string final_path_;
  std::string tmp_path_;
};

}  // namespace skein::io
