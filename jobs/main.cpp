// The `skein` executable.
#include "engine/context.hpp"
#include "jobs/cli.hpp"

int main(int argc, char** argv) {
  int code = 0;
  {
    skein::engine::Context context(argc, argv);
    code = skein::jobs::run_cli(argc, argv);
  }
  return code;
}
