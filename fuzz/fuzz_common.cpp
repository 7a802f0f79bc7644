#include "fuzz/fuzz_common.hpp"

#include "engine/context.hpp"

#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#define SKEIN_FUZZ_HAVE_SANITIZER 1
#endif
#endif

namespace skein::fuzz {

namespace {

struct Runtime {
  std::unique_ptr<engine::Context> context;
  std::unique_ptr<comm::Communicator> world;
};

Runtime& runtime() {
  // Leaked on purpose: destroying MPI and Kokkos from a static destructor after libFuzzer's exit() would
  // race with the library's own teardown; the process is ending anyway.
  static Runtime* instance = [] {
    auto* r = new Runtime;
    static char name[] = "skein-fuzz";
    static char* argv_storage[] = {name, nullptr};
    int argc = 1;
    char** argv = argv_storage;
#ifdef SKEIN_FUZZ_HAVE_SANITIZER
    // Open MPI, PMIx and hwloc keep (and lose track of) allocations made at MPI_Init; they are theirs,
    // made once, and would otherwise be reported as leaks by the first leak check of a fuzzing run.
    __lsan_disable();
#endif
    r->context = std::make_unique<engine::Context>(argc, argv);
#ifdef SKEIN_FUZZ_HAVE_SANITIZER
    __lsan_enable();
#endif
    r->world = std::make_unique<comm::Communicator>(MPI_COMM_WORLD);
    return r;
  }();
  return *instance;
}

}  // namespace

const comm::Communicator& world() {
  return *runtime().world;
}

const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : (tmp ? tmp : "/tmp");
    std::string pattern = base + "/skein-fuzz-XXXXXX";
    if (!::mkdtemp(pattern.data())) {
      std::perror("skein fuzz: mkdtemp");
      std::abort();
    }
    static std::string removed_at_exit;
    removed_at_exit = pattern;
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(removed_at_exit, ignored);
    });
    return pattern;
  }();
  return dir;
}

std::string write_scratch(const std::string& name, std::string_view bytes) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "skein fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

bool verbose() {
  static const bool on = std::getenv("SKEIN_FUZZ_VERBOSE") != nullptr;
  return on;
}

void report(const std::string& what) {
  const std::string line = "skein fuzz: " + what;
  std::fprintf(stderr, "%s\n", line.c_str());
#ifdef SKEIN_FUZZ_HAVE_SANITIZER
  // libFuzzer's -close_fd_mask=2 sends stderr to /dev/null but keeps the sanitizers' report stream.
  __sanitizer_report_error_summary(line.c_str());
#endif
}

void finding(const std::string& what) {
  report("FINDING: " + what);
  std::abort();
}

}  // namespace skein::fuzz

// A rank that would end alone (engine::Context::abort_all after an error that was not agreed, or an
// internal error) is a finding: on one rank the fuzz targets must only ever see agreed errors. Open MPI's
// MPI_Abort is a weak symbol over PMPI_Abort (the profiling interface), so this definition replaces it and
// libFuzzer gets a crash with a stack instead of a silent exit.
extern "C" int MPI_Abort(MPI_Comm, int errorcode) {
  skein::fuzz::finding("MPI_Abort(" + std::to_string(errorcode) + "): a rank would have ended alone");
}
