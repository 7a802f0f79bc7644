#include "io/atomic_output.hpp"

#include "engine/error.hpp"
#include "engine/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace skein::io {

namespace {

std::string parent_dir(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

// fsync through a read-only descriptor flushes the file's (or directory's) data on Linux.
void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0) throw engine::InternalError("cannot open " + path + " to sync it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  // Some file systems (and /dev/shm) do not support fsync on directories; that is not a failure to report.
  if (rc != 0 && !(directory && (saved == EINVAL || saved == ENOTSUP))) {
    throw engine::InternalError("fsync of " + path + " failed: " + std::strerror(saved));
  }
}

}  // namespace

AtomicOutput::AtomicOutput(const comm::Communicator& comm, std::string final_path)
    : comm_(comm), final_path_(std::move(final_path)), tmp_path_(final_path_ + ".tmp") {
  comm_.agree([&] {
    if (comm_.rank() != 0) return;
    std::error_code ec;
    const std::string dir = parent_dir(final_path_);
    std::filesystem::create_directories(dir, ec);
    if (ec) throw engine::UsageError("cannot create output directory " + dir + ": " + ec.message());
    if (::unlink(tmp_path_.c_str()) != 0 && errno != ENOENT) {
      throw engine::UsageError("cannot remove stale " + tmp_path_ + ": " + std::strerror(errno));
    }
  });
}

AtomicOutput::~AtomicOutput() {
  if (committed_ || comm_.rank() != 0) return;
  if (::unlink(tmp_path_.c_str()) != 0 && errno != ENOENT) {
    engine::Log::rank_log().warn("cannot remove {}: {}", tmp_path_, std::strerror(errno));
  }
}

void AtomicOutput::commit() {
  if (committed_) return;
  comm_.barrier();  // every rank has closed its handle on the tmp file
  comm_.agree([&] {
    if (comm_.rank() != 0) return;
    fsync_path(tmp_path_, false);
    if (std::rename(tmp_path_.c_str(), final_path_.c_str()) != 0) {
      throw engine::InternalError("cannot rename " + tmp_path_ + " to " + final_path_ + ": " +
                                  std::strerror(errno));
    }
    fsync_path(parent_dir(final_path_), true);
  });
  committed_ = true;  // agree() returned on every rank: the rename happened
}

}  // namespace skein::io
