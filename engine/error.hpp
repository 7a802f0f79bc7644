// Error types that carry the process exit code the user sees (DESIGN.md "Exit codes").
#pragma once

#include <stdexcept>
#include <string>

namespace skein::engine {

// sysexits-style codes; see DESIGN.md.
enum class ExitCode : int {
  ok = 0,
  usage = 2,          // bad command line or config
  data = 65,          // bad input data (EX_DATAERR)
  unresponsive = 69,  // a rank stopped responding within comm_timeout (EX_UNAVAILABLE): watchdog.hpp
  internal = 70,      // a bug or an environment failure (EX_SOFTWARE)
  io = 74,            // writing outputs or checkpoints failed: disk full, permission, quota (EX_IOERR)
  checkpointed = 75,  // checkpointed on a signal; requeue (EX_TEMPFAIL)
};

// Base of every error skein reports to the user; the message is complete and names the file, line or key.
class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const noexcept { return code_; }
  // True once every rank holds this same error (after Communicator::agree), so the process may end
  // normally; an error that is not agreed ends all ranks through MPI_Abort instead.
  bool agreed() const noexcept { return agreed_; }
  void mark_agreed() noexcept { agreed_ = true; }

 private:
  ExitCode code_;
  bool agreed_ = false;
};

class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(ExitCode::usage, message) {}
};

class DataError : public Error {
 public:
  explicit DataError(const std::string& message) : Error(ExitCode::data, message) {}
};

class InternalError : public Error {
 public:
  explicit InternalError(const std::string& message) : Error(ExitCode::internal, message) {}
};

// Writing an output or a checkpoint failed; the message names the file and the cause.
class IoError : public Error {
 public:
  explicit IoError(const std::string& message) : Error(ExitCode::io, message) {}
};

// Thrown on every rank at once when the ranks agreed to stop for a requeue.
class Checkpointed : public Error {
 public:
  explicit Checkpointed(const std::string& message) : Error(ExitCode::checkpointed, message) {}
};

// Throws the typed error for `code`, marked agreed (used when one rank's error is replayed on all ranks).
[[noreturn]] void throw_agreed_error(ExitCode code, const std::string& message);

}  // namespace skein::engine
