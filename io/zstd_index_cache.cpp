#include "io/zstd_index_cache.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

namespace skein::io {

namespace {

constexpr const char* kHeader = "skein zstd index 1";

}  // namespace

ZstdIndexCache::Key ZstdIndexCache::key_of(const InputFile& file) const {
  Key key;
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(file.path.c_str(), nullptr), &std::free);
  struct stat info {};
  if (!real || ::stat(real.get(), &info) != 0) return key;
  key.real_path = real.get();
  if (key.real_path.find('\n') != std::string::npos) return Key{};  // one path per line in the entry
  // FNV-1a of the real path names the entry: one entry per input path, replaced when the file changes.
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (const char c : key.real_path) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ull;
  }
  char name[32];
  std::snprintf(name, sizeof name, "%016llx.idx", static_cast<unsigned long long>(hash));
  key.entry = dir_ + "/" + name;
  key.stamp = std::to_string(info.st_size) + " " + std::to_string(info.st_mtim.tv_sec) + " " +
              std::to_string(info.st_mtim.tv_nsec) + " " +
              std::to_string(head_tail_hash(key.real_path, static_cast<std::uint64_t>(info.st_size)));
  return key;
}

ZstdIndex ZstdIndexCache::index(const InputFile& file, bool& from_cache, std::string& store_error) const {
  // The key once: it reads the file's first and last 64 KiB.
  const Key key = key_of(file);
  ZstdIndex index;
  from_cache = !key.entry.empty() && load(key, file, index);
  if (!from_cache) {
    index = index_zstd_file(file.path, file.size);
    store_error = key.entry.empty() ? file.path + ": cannot find its real path" : store(key, index);
  }
  return index;
}

bool ZstdIndexCache::load(const Key& key, const InputFile& file, ZstdIndex& index) const {
  std::ifstream in(key.entry);
  std::string header, path, stamp;
  if (!std::getline(in, header) || header != kHeader || !std::getline(in, path) || path != key.real_path ||
      !std::getline(in, stamp) || stamp != key.stamp) {
    return false;
  }
  ZstdIndex read;
  std::uint64_t count = 0;
  if (!(in >> read.stream_size >> count) || count == 0) return false;
  for (std::uint64_t k = 0; k < count; ++k) {
    ZstdFrameStart frame;
    if (!(in >> frame.compressed_offset >> frame.stream_offset)) return false;
    // Frames ascend in both offsets, the first one's data at the stream's start (a skippable frame may
    // come before it in the file), none past the file's end: else not an index of this file.
    const bool in_order = k == 0 ? frame.stream_offset == 0
                                 : frame.compressed_offset > read.frames.back().compressed_offset &&
                                       frame.stream_offset > read.frames.back().stream_offset;
    if (!in_order || frame.compressed_offset >= std::max<std::uint64_t>(file.size, 1) ||
        frame.stream_offset > read.stream_size) {
      return false;
    }
    read.frames.push_back(frame);
  }
  std::string rest;
  if (!(in >> rest) || rest != "end") return false;
  index = std::move(read);
  return true;
}

std::string ZstdIndexCache::store(const Key& key, const ZstdIndex& index) const {
  std::error_code error;
  std::filesystem::create_directories(dir_, error);
  if (error) return dir_ + ": " + error.message();
  // Unique to this process among every node that shares the directory.
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string temporary = key.entry + "." + host + "." + std::to_string(::getpid()) + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << kHeader << "\n" << key.real_path << "\n" << key.stamp << "\n";
    out << index.stream_size << " " << index.frames.size() << "\n";
    for (const auto& frame : index.frames)
      out << frame.compressed_offset << " " << frame.stream_offset << "\n";
    out << "end\n";
    out.close();
    if (!out) {
      const std::string why = temporary + ": " + std::strerror(errno);
      std::remove(temporary.c_str());
      return why;
    }
  }
  if (std::rename(temporary.c_str(), key.entry.c_str()) != 0) {
    const std::string why = key.entry + ": " + std::strerror(errno);
    std::remove(temporary.c_str());
    return why;
  }
  return "";
}

}  // namespace skein::io
