#include "io/atomic_output.hpp"

#include "engine/error.hpp"
#include "engine/log.hpp"
#include "io/file_space.hpp"

#include <fcntl.h>
#include <sys/stat.h>
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
  if (fd < 0) throw_write_error(path, errno, "cannot open it to sync it");
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  // Some file systems (and /dev/shm) do not support fsync on directories; that is not a failure to report.
  if (rc != 0 && !(directory && (saved == EINVAL || saved == ENOTSUP)))
    throw_write_error(path, saved, "fsync");
}

std::string join(const std::string& directory, const std::string& name) {
  return directory.empty() || directory == "." ? name : directory + "/" + name;
}

}  // namespace

bool remove_stale_temporary(const std::string& tmp) {
  struct stat info {};
  if (::lstat(tmp.c_str(), &info) != 0) return false;
  if (S_ISDIR(info.st_mode)) {
    throw engine::UsageError(tmp + " is a directory and is in the way of an output; remove it");
  }
  if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) {
    throw engine::IoError("cannot remove " + tmp + ", left by an interrupted run: " + errno_text(errno));
  }
  return true;
}

OutputSet::OutputSet(const comm::Communicator& comm, std::string directory)
    : comm_(comm), directory_(std::move(directory)) {}

std::string OutputSet::add(const std::string& name) {
  return add_path(join(directory_, name));
}

std::string OutputSet::add_path(const std::string& final_path) {
  const std::string tmp = final_path + ".tmp";
  comm_.agree([&] {
    if (comm_.rank() != 0) return;
    std::error_code ec;
    const std::string dir = parent_dir(final_path);
    std::filesystem::create_directories(dir, ec);
    if (ec) throw engine::UsageError("cannot create output directory " + dir + ": " + ec.message());
    remove_stale_temporary(tmp);
  });
  files_.push_back(final_path);
  return tmp;
}

OutputSet::~OutputSet() {
  if (committed_ || comm_.rank() != 0) return;
  for (const auto& file : files_) {
    const std::string tmp = file + ".tmp";
    // Empty it first: another rank may still hold it open, and unlinking alone would keep its blocks.
    ::truncate(tmp.c_str(), 0);
    if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) {
      engine::Log::rank_log().warn("cannot remove {}: {}", tmp, std::strerror(errno));
    }
  }
}

void OutputSet::commit() {
  if (committed_) return;
  comm_.barrier();  // every rank has closed its handles on the tmp files
  comm_.agree([&] {
    if (comm_.rank() != 0 || files_.empty()) return;
    for (const auto& file : files_) fsync_path(file + ".tmp", false);
    // Without the old last file the folder holds no complete set while the others are being replaced.
    if (files_.size() > 1 && ::unlink(files_.back().c_str()) != 0 && errno != ENOENT) {
      throw_write_error(files_.back(), errno, "cannot remove the previous run's file");
    }
    for (const auto& file : files_) {
      if (std::rename((file + ".tmp").c_str(), file.c_str()) != 0) {
        throw_write_error(file, errno, "cannot rename " + file + ".tmp into place");
      }
    }
    fsync_path(parent_dir(files_.back()), true);
  });
  committed_ = true;  // agree() returned on every rank: the renames happened
}

AtomicOutput::AtomicOutput(const comm::Communicator& comm, const std::string& final_path)
    : set_(comm, parent_dir(final_path)), final_path_(final_path), tmp_path_(set_.add_path(final_path)) {}

}  // namespace skein::io
