#include "engine/error.hpp"

namespace skein::engine {

namespace {
template <class E>
[[noreturn]] void throw_marked(const std::string& message) {
  E error(message);
  error.mark_agreed();
  throw error;
}
}  // namespace

void throw_agreed_error(ExitCode code, const std::string& message) {
  switch (code) {
    case ExitCode::usage:
      throw_marked<UsageError>(message);
    case ExitCode::data:
      throw_marked<DataError>(message);
    case ExitCode::io:
      throw_marked<IoError>(message);
    case ExitCode::checkpointed:
      throw_marked<Checkpointed>(message);
    case ExitCode::ok:
    case ExitCode::internal:
    case ExitCode::unresponsive:
      break;
  }
  throw_marked<InternalError>(message);
}

}  // namespace skein::engine
