// What every fuzz target shares: the one-rank MPI + Kokkos runtime, a scratch folder on tmpfs, files
// written from the input, and the rule that a skein error is an expected outcome while anything else is a
// finding.
#pragma once

#include "comm/communicator.hpp"
#include "engine/error.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace skein::fuzz {

// Starts MPI and Kokkos once for the process (one rank; never finalised: libFuzzer exits from its loop)
// and returns the world communicator. Called from LLVMFuzzerInitialize, and lazily by the targets.
const comm::Communicator& world();

// A folder of this process on tmpfs (/dev/shm when it exists, else $TMPDIR): input files are written
// there, so no disk is touched per input. Removed at exit.
const std::string& scratch_dir();

// Writes `bytes` to scratch_dir()/name (replacing it) and returns the path.
std::string write_scratch(const std::string& name, std::string_view bytes);

// Reads input bytes in order; past the end every read gives zeros, so a short input is still a valid
// program for the targets' decoders.
class ByteReader {
 public:
  ByteReader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t u8() { return at_ < size_ ? data_[at_++] : 0; }
  std::uint16_t u16() { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(u16() | (std::uint32_t{u16()} << 16)); }
  std::uint64_t u64() { return u32() | (std::uint64_t{u32()} << 32); }
  // Up to `n` bytes as text (fewer at the end).
  std::string_view bytes(std::size_t n) {
    const std::size_t take = n < size_ - at_ ? n : size_ - at_;
    std::string_view out(reinterpret_cast<const char*>(data_ + at_), take);
    at_ += take;
    return out;
  }
  std::string_view rest() { return bytes(size_ - at_); }
  bool empty() const { return at_ >= size_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

// Prints a line where the crash report will show it (also under libFuzzer's -close_fd_mask=2).
void report(const std::string& what);
bool verbose();

// Runs `body`; a skein error (engine::Error: usage, data, I/O) is the reader refusing bad input, which is
// what it should do, so it is swallowed. Any other exception escapes and libFuzzer reports it as a crash.
// SKEIN_FUZZ_VERBOSE=1 prints each such error (to see how deep the seeds reach).
template <class F>
void expect_skein_errors(F&& body) {
  try {
    body();
  } catch (const engine::Error& e) {
    if (verbose()) report(std::string("expected error: ") + e.what());
  }
}

// A broken invariant of a reader that did not refuse its input: reported as a crash.
[[noreturn]] void finding(const std::string& what);

}  // namespace skein::fuzz
