#include "engine/context.hpp"

#include "engine/error.hpp"
#include "engine/watchdog.hpp"

#include <Kokkos_Core.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace skein::engine {

// Raw MPI here only: the runtime owns MPI's lifetime; everything else talks through comm::Communicator.
Context::Context(int& argc, char**& argv) {
  int provided = 0;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "skein: MPI_Init_thread failed\n");
    std::exit(static_cast<int>(ExitCode::internal));
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &node_rank_);
  MPI_Comm_size(node, &node_size_);
  MPI_Comm_free(&node);
  // After MPI so that Kokkos sees the process binding MPI set up. Kokkos gets only its own --kokkos-*
  // arguments: given `--help` it would print its 40-line option banner before skein's usage.
  std::vector<char*> kokkos_args{argv[0]};
  bool device_chosen = false;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--kokkos-", 9) == 0) {
      kokkos_args.push_back(argv[i]);
      device_chosen |= std::strstr(argv[i], "device") != nullptr;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  argv[argc] = nullptr;
#if defined(KOKKOS_ENABLE_CUDA)
  // One GPU per rank on a node, chosen from the node-local rank (MPI_COMM_TYPE_SHARED above), which does
  // not depend on the launcher's environment variables; --kokkos-device-id etc. on the command line win.
  static std::string device_argument;
  const int devices = Kokkos::Cuda::detect_device_count();
  if (!device_chosen && devices > 0) {
    device_argument = "--kokkos-device-id=" + std::to_string(node_rank_ % devices);
    kokkos_args.push_back(device_argument.data());
  }
#else
  (void)device_chosen;  // host backends have no device to choose
#endif
  int kokkos_argc = static_cast<int>(kokkos_args.size());
  kokkos_args.push_back(nullptr);
  char** kokkos_argv = kokkos_args.data();
  Kokkos::initialize(kokkos_argc, kokkos_argv);
}

Context::~Context() {
  Kokkos::finalize();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) {
    // MPI_Finalize synchronises with every rank: a peer that stopped responding would hold it forever.
    const BlockingScope blocking("MPI_Finalize");
    MPI_Finalize();
  }
  stop_watchdog();
}

void Context::abort_all(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

}  // namespace skein::engine
