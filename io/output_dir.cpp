#include "io/output_dir.hpp"

#include "engine/error.hpp"
#include "engine/log.hpp"
#include "io/atomic_output.hpp"
#include "io/file_space.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <sstream>

namespace skein::io {

void make_directories(const std::string& path) {
  std::string partial;
  std::istringstream parts(path);
  std::string part;
  if (!path.empty() && path[0] == '/') partial = "/";
  while (std::getline(parts, part, '/')) {
    if (part.empty()) continue;
    partial += part + "/";
    if (::mkdir(partial.c_str(), 0775) != 0 && errno != EEXIST) {
      const int saved = errno;
      if (saved == ENAMETOOLONG) throw engine::UsageError("output path " + path + ": file name too long");
      throw engine::IoError("cannot create directory " + partial + " (for " + path +
                            "): " + errno_text(saved));
    }
  }
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    throw engine::UsageError("output path " + path + " is not a directory");
  }
}

namespace {

std::string host_name() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "?";
  return name;
}

std::string read_small_file(int fd) {
  char text[256] = {};
  const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
  std::string content = n > 0 ? std::string(text, static_cast<std::size_t>(n)) : "";
  while (!content.empty() && (content.back() == '\n' || content.back() == ' ')) content.pop_back();
  return content;
}

}  // namespace

OutputDir::OutputDir(const comm::Communicator& comm, std::string path,
                     const std::vector<std::string>& outputs)
    : path_(std::move(path)), lock_path_(path_ + "/.skein.lock") {
  comm.agree([&] {
    if (comm.rank() != 0) return;
    make_directories(path_);
    // The lock file proves the folder writable; an inode check after locking guards against a run that
    // removed it meanwhile (we would hold a lock on a file no one else can see).
    for (int attempt = 0; attempt < 3 && lock_fd_ < 0; ++attempt) {
      const int fd = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0664);
      if (fd < 0) throw_write_error(lock_path_, errno, "cannot create a file in the output folder");
      if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int saved = errno;
        const std::string holder = read_small_file(fd);
        ::close(fd);
        if (saved == EWOULDBLOCK) {
          throw engine::UsageError("another skein run (" + (holder.empty() ? std::string("pid ?") : holder) +
                                   ") is writing into " + path_ +
                                   "; wait for it to end or choose another --out");
        }
        break;  // a file system without flock: go on unlocked
      }
      struct stat held {
      }, named{};
      if (::fstat(fd, &held) == 0 && ::stat(lock_path_.c_str(), &named) == 0 && held.st_ino == named.st_ino) {
        lock_fd_ = fd;
      } else {
        ::close(fd);
      }
    }
    if (lock_fd_ >= 0) {
      const std::string holder = "pid " + std::to_string(::getpid()) + " on " + host_name() + "\n";
      if (::ftruncate(lock_fd_, 0) != 0 ||
          ::pwrite(lock_fd_, holder.data(), holder.size(), 0) != static_cast<ssize_t>(holder.size()) ||
          ::fsync(lock_fd_) != 0) {
        const int saved = errno;
        ::close(lock_fd_);
        lock_fd_ = -1;
        ::unlink(lock_path_.c_str());
        throw_write_error(lock_path_, saved, "cannot write into the output folder");
      }
    }
    for (const auto& name : outputs) {
      const std::string tmp = path_ + "/" + name + ".tmp";
      if (remove_stale_temporary(tmp))
        engine::Log::rank_log().info("removed {}, left by an interrupted run", tmp);
    }
  });
}

OutputDir::~OutputDir() {
  if (lock_fd_ < 0) return;
  ::unlink(lock_path_.c_str());  // before releasing, so a waiting run never locks a removed file
  ::close(lock_fd_);
}

}  // namespace skein::io
