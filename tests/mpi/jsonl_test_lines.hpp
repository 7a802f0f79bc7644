// Line records, the plain reference split into lines, and a shared scratch folder for the JSONL reader tests.
#pragma once

#include "comm/communicator.hpp"

#include <stdlib.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstdint>
#include <filesystem>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

// One line as read: its file, offset and bytes (by length and hash); `pad` makes the padding explicit (0)
// so that records compare and gather the same on every rank.
struct Rec {
  std::uint32_t file;
  std::uint32_t pad;
  std::uint64_t offset;
  std::uint64_t length;
  std::uint64_t hash;
  bool operator==(const Rec& o) const {
    return file == o.file && offset == o.offset && length == o.length && hash == o.hash;
  }
  bool operator<(const Rec& o) const { return file != o.file ? file < o.file : offset < o.offset; }
};

inline std::ostream& operator<<(std::ostream& os, const Rec& r) {
  return os << "{file " << r.file << ", offset " << r.offset << ", length " << r.length << "}";
}

inline Rec make_rec(std::uint32_t file, std::uint64_t offset, std::string_view bytes) {
  return {file, 0, offset, bytes.size(), XXH3_64bits(bytes.data(), bytes.size())};
}

// The lines of each file by the plain definition: split on '\n'; a final piece without '\n' is a line.
inline std::vector<Rec> expected_lines(const std::vector<std::string>& contents) {
  std::vector<Rec> out;
  for (std::uint32_t f = 0; f < contents.size(); ++f) {
    const std::string& c = contents[f];
    for (std::size_t pos = 0; pos < c.size();) {
      const auto nl = c.find('\n', pos);
      const std::size_t end = nl == std::string::npos ? c.size() : nl;
      out.push_back(make_rec(f, pos, std::string_view(c).substr(pos, end - pos)));
      pos = end + 1;
    }
  }
  return out;
}

// A temporary directory every rank sees: rank 0 creates it, the others learn its name.
class SharedDir {
 public:
  SharedDir(const skein::comm::Communicator& comm, const std::string& prefix) : comm_(comm) {
    if (comm_.rank() == 0) {
      const auto base = std::filesystem::temp_directory_path() / (prefix + "-XXXXXX");
      std::string name = base.string();
      if (::mkdtemp(name.data()) == nullptr) name.clear();
      path_ = name;
    }
    comm_.bcast(path_, 0);
    if (path_.empty()) throw std::runtime_error("mkdtemp failed");
  }
  ~SharedDir() {
    comm_.barrier();
    if (comm_.rank() == 0) std::filesystem::remove_all(path_);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  const skein::comm::Communicator& comm_;
  std::string path_;
};

}  // namespace
