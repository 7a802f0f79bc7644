#include "io/input_files.hpp"

#include "engine/error.hpp"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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

// FNV-1a over `bytes`, continuing from `hash`.
std::uint64_t fnv1a(std::uint64_t hash, const char* bytes, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    hash ^= static_cast<unsigned char>(bytes[i]);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

}  // namespace

std::uint64_t head_tail_hash(const std::string& path, std::uint64_t size) {
  constexpr std::uint64_t window = 64 * 1024;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw engine::DataError("cannot read " + path + ": " + std::strerror(errno));
  std::uint64_t hash = 0xcbf29ce484222325ull;
  std::string buffer(window, '\0');
  const std::uint64_t starts[2] = {0, size > 2 * window ? size - window : std::min(size, window)};
  for (const std::uint64_t start : starts) {
    const std::uint64_t count = std::min(window, size - std::min(size, start));
    std::uint64_t done = 0;
    while (done < count) {
      const ssize_t got = ::pread(fd, buffer.data() + done, count - done, static_cast<off_t>(start + done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) {
        const int saved = errno;
        ::close(fd);
        throw engine::DataError("cannot read " + path + ": " + std::strerror(saved));
      }
      if (got == 0) break;  // shorter than its size said: the hash differs, which is the point
      done += static_cast<std::uint64_t>(got);
    }
    hash = fnv1a(hash, buffer.data(), done);
  }
  ::close(fd);
  return hash;
}

std::vector<std::uint64_t> input_identities(const comm::Communicator& comm,
                                            const std::vector<InputFile>& files) {
  std::vector<std::uint64_t> identities(2 * files.size(), 0);
  comm.agree([&] {
    if (comm.rank() != 0) return;
    for (std::size_t i = 0; i < files.size(); ++i) {
      struct stat info {};
      if (::stat(files[i].path.c_str(), &info) != 0) {
        throw engine::DataError("cannot access " + files[i].path + ": " + std::strerror(errno));
      }
      identities[2 * i] = static_cast<std::uint64_t>(info.st_size);
      identities[2 * i + 1] = head_tail_hash(files[i].path, identities[2 * i]);
    }
  });
  comm.bcast(identities.data(), identities.size(), 0);
  return identities;
}

void check_inputs_unchanged(const std::vector<InputFile>& files, const std::vector<std::uint64_t>& now,
                            const std::vector<std::uint64_t>& recorded, const std::string& keys) {
  const std::string advice =
      "; restore the inputs, or run without --resume (into a new --out or with --fresh)";
  if (recorded.size() != now.size()) {
    engine::throw_agreed_error(engine::ExitCode::data,
                               keys + ": the inputs changed since the checkpoint: it read " +
                                   std::to_string(recorded.size() / 2) + " files, they match " +
                                   std::to_string(now.size() / 2) + " now" + advice);
  }
  for (std::size_t i = 0; i < files.size() && 2 * i + 1 < now.size(); ++i) {
    const std::uint64_t size = now[2 * i], was = recorded[2 * i];
    if (size != was) {
      engine::throw_agreed_error(engine::ExitCode::data,
                                 files[i].path + ": changed since the checkpoint (" + std::to_string(size) +
                                     " bytes, " + std::to_string(was) + " when it was written)" + advice);
    }
    if (now[2 * i + 1] != recorded[2 * i + 1]) {
      engine::throw_agreed_error(engine::ExitCode::data,
                                 files[i].path +
                                     ": changed since the checkpoint (same size, different first or last "
                                     "64 KiB)" +
                                     advice);
    }
  }
}

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
