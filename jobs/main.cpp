// The `skein` executable.
#include "engine/context.hpp"
#include "engine/signals.hpp"
#include "jobs/cli.hpp"

#include <cstring>

int main(int argc, char** argv) {
  // A stop signal that arrives while a run is still starting (MPI, Kokkos, config) must not kill it: the
  // run loop acts on it at its first step boundary. Other commands keep the default signal behaviour.
  if (argc > 1 && std::strcmp(argv[1], "run") == 0) skein::engine::install_stop_signal_handlers();
  int code = 0;
  {
    skein::engine::Context context(argc, argv);
    code = skein::jobs::run_cli(argc, argv);
  }
  return code;
}
