// Writing to a file system that can fill up: space reserved before data is written, and write failures
// turned into the message a user needs ("OUT/dsir.h5: no space left on device").
#pragma once

#include <cstdint>
#include <string>

namespace skein::io {

// strerror(errno_value) in lower case, to sit after a colon in a message ("no space left on device").
std::string errno_text(int errno_value);

// The name a user knows a file by: `path` without a trailing ".tmp" (outputs are written as NAME.tmp).
std::string user_visible_name(const std::string& path);

// Makes sure the first `bytes` bytes of `path` (an existing file) have disk blocks, so that later writes
// there cannot fail for lack of space or quota. Throws engine::IoError naming the file when the space is
// not there. A file system that cannot reserve space (no fallocate) is left alone: nothing is promised.
void reserve_file_space(const std::string& path, std::uint64_t bytes);

// Why writing into `path`'s directory probably failed, from the file system's state ("no space left on
// device" when it is full), or "" when nothing explains it.
std::string write_failure_cause(const std::string& path);

// engine::IoError "NAME: CAUSE (DETAIL)", NAME the user-visible name, CAUSE from errno when it is set
// (non-zero), else from write_failure_cause(), else DETAIL alone.
[[noreturn]] void throw_write_error(const std::string& path, int errno_value, const std::string& detail);

}  // namespace skein::io
