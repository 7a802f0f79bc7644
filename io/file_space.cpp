#include "io/file_space.hpp"

#include "engine/error.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace skein::io {

std::string user_visible_name(const std::string& path) {
  const std::string suffix = ".tmp";
  if (path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return path.substr(0, path.size() - suffix.size());
  }
  return path;
}

std::string errno_text(int errno_value) {
  std::string text = std::strerror(errno_value);
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string write_failure_cause(const std::string& path) {
  auto directory = std::filesystem::path(path).parent_path();
  if (directory.empty()) directory = ".";
  struct statvfs fs {};
  if (::statvfs(directory.c_str(), &fs) != 0) return "";
  // A full file system still shows a few blocks free to root on some; call it full below one block.
  if (fs.f_bavail == 0 || fs.f_bfree == 0) return errno_text(ENOSPC);
  if (fs.f_favail == 0 && fs.f_files > 0) return "no free inodes left on device";
  return "";
}

void throw_write_error(const std::string& path, int errno_value, const std::string& detail) {
  const std::string cause = errno_value != 0 ? errno_text(errno_value) : write_failure_cause(path);
  std::string message = user_visible_name(path) + ": ";
  if (cause.empty()) {
    message += detail;
  } else {
    message += cause;
    if (!detail.empty()) message += " (" + detail + ")";
  }
  throw engine::IoError(message);
}

void reserve_file_space(const std::string& path, std::uint64_t bytes) {
  if (bytes == 0) return;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw_write_error(path, errno, "cannot open it to reserve space");
  // KEEP_SIZE: the blocks are reserved without changing the file's length, so a size check after the
  // writes still tells whether they all arrived.
  const int rc = ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(bytes));
  const int saved = errno;
  ::close(fd);
  if (rc == 0) return;
  if (saved == EOPNOTSUPP || saved == ENOSYS || saved == EINVAL) return;  // the file system cannot reserve
  throw_write_error(path, saved, "reserving " + std::to_string(bytes) + " bytes");
}

}  // namespace skein::io
