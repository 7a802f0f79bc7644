#include "io/input_files.hpp"

#include "engine/error.hpp"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

namespace skein::io {

namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool has_wildcard(const std::string& pattern) {
  return pattern.find_first_of("*?[") != std::string::npos;
}

void check_extension(const std::string& key, const std::string& path,
                     const std::vector<std::string>& extensions) {
  for (const auto& extension : extensions) {
    if (ends_with(path, extension)) return;
  }
  std::string names;
  for (std::size_t i = 0; i < extensions.size(); ++i) {
    names += (i == 0 ? "" : i + 1 == extensions.size() ? " or " : ", ") + extensions[i];
  }
  throw engine::UsageError(key + ": " + path + " is not a " + names + " file");
}

std::vector<std::string> expand(const std::string& key, const std::string& pattern) {
  glob_t matches{};
  const int rc = ::glob(pattern.c_str(), GLOB_TILDE, nullptr, &matches);
  std::vector<std::string> paths;
  if (rc == 0) {
    for (std::size_t i = 0; i < matches.gl_pathc; ++i) paths.emplace_back(matches.gl_pathv[i]);
  }
  ::globfree(&matches);
  if (rc == GLOB_NOMATCH || (rc == 0 && paths.empty())) {
    if (has_wildcard(pattern)) throw engine::DataError(key + ": pattern " + pattern + " matches no file");
    struct stat info {};
    // stat says why (a name too long, a directory on the way that cannot be searched), glob only "no match".
    if (::stat(pattern.c_str(), &info) != 0 && errno != ENOENT) {
      throw engine::DataError(key + ": " + pattern + ": " + std::strerror(errno));
    }
    throw engine::DataError(key + ": no such file: " + pattern);
  }
  if (rc != 0)
    throw engine::DataError(key + ": cannot expand " + pattern + " (glob error " + std::to_string(rc) + ")");
  return paths;  // glob(3) sorts them
}

std::vector<InputFile> resolve_locally(const std::vector<std::string>& patterns, const std::string& key,
                                       const std::vector<std::string>& extensions) {
  if (patterns.empty()) throw engine::UsageError(key + ": no input files given");
  std::vector<InputFile> files;
  std::set<std::pair<dev_t, ino_t>> seen;
  for (const auto& pattern : patterns) {
    if (pattern.empty()) throw engine::UsageError(key + ": empty file name");
    if (!has_wildcard(pattern)) check_extension(key, pattern, extensions);
    for (const auto& path : expand(key, pattern)) {
      struct stat info {};
      if (::stat(path.c_str(), &info) != 0) {
        throw engine::DataError(key + ": cannot access " + path + ": " + std::strerror(errno));
      }
      if (S_ISDIR(info.st_mode)) throw engine::DataError(key + ": " + path + " is a directory, not a file");
      if (!S_ISREG(info.st_mode)) throw engine::DataError(key + ": " + path + " is not a regular file");
      check_extension(key, path, extensions);
      // open(2) rather than access(2): it is the check that matters, and it is right for root too.
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) throw engine::DataError(key + ": cannot read " + path + ": " + std::strerror(errno));
      ::close(fd);
      if (!seen.insert({info.st_dev, info.st_ino}).second) continue;
      files.push_back({path, static_cast<std::uint64_t>(info.st_size), ends_with(path, ".zst")});
    }
  }
  return files;
}

void put_u64(std::string& out, std::uint64_t value) {
  out.append(reinterpret_cast<const char*>(&value), 8);
}

std::uint64_t get_u64(const std::string& in, std::size_t& pos) {
  std::uint64_t value = 0;
  std::memcpy(&value, in.data() + pos, 8);
  pos += 8;
  return value;
}

}  // namespace

std::vector<InputFile> resolve_inputs(const comm::Communicator& comm,
                                      const std::vector<std::string>& patterns, const std::string& config_key,
                                      const std::vector<std::string>& extensions) {
  // Rank 0 alone touches the file system; the verdict (list or error) is broadcast, so every rank throws
  // the same error without a "rank 0:" prefix: the problem is the input, not a rank.
  int code = 0;
  std::string payload;
  if (comm.rank() == 0) {
    try {
      for (const auto& file : resolve_locally(patterns, config_key, extensions)) {
        put_u64(payload, file.size);
        payload.push_back(file.zstd ? 1 : 0);
        put_u64(payload, file.path.size());
        payload += file.path;
      }
    } catch (const engine::Error& e) {
      code = static_cast<int>(e.code());
      payload = e.what();
    } catch (const std::exception& e) {
      code = static_cast<int>(engine::ExitCode::internal);
      payload = std::string("internal error: ") + e.what();
    }
  }
  comm.bcast(&code, 1, 0);
  comm.bcast(payload, 0);
  if (code != 0) engine::throw_agreed_error(static_cast<engine::ExitCode>(code), payload);

  std::vector<InputFile> files;
  for (std::size_t pos = 0; pos < payload.size();) {
    InputFile file;
    file.size = get_u64(payload, pos);
    file.zstd = payload[pos++] != 0;
    const std::uint64_t length = get_u64(payload, pos);
    file.path = payload.substr(pos, length);
    pos += length;
    files.push_back(std::move(file));
  }
  return files;
}

}  // namespace skein::io
