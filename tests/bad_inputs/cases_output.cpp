// Outputs that cannot be written: an output folder without write permission, a path through a file, a full
// disk (a small tmpfs) and a file-size limit (`ulimit -f`), for the jobs test_failures_cli does not cover
// (it covers dsir's outputs and checkpoints on a full disk and a read-only file system).
#include "tests/bad_inputs/catalogue.hpp"
#include "tests/bad_inputs/good_inputs.hpp"
#include "tests/e2e/cli_runner.hpp"

#include <sys/mount.h>
#include <sys/stat.h>

#include <filesystem>

namespace skein::bad_inputs {

namespace {

namespace fs = std::filesystem;

// A tmpfs of `kilobytes` on a fresh folder, unmounted when the case's workspace lets go of it.
struct SmallDisk {
  std::string path;
  bool mounted = false;
  explicit SmallDisk(int kilobytes) : path(test::make_temp_dir("bad-inputs-disk")) {
    const std::string options = "size=" + std::to_string(kilobytes) + "k";
    mounted = ::mount("tmpfs", path.c_str(), "tmpfs", 0, options.c_str()) == 0;
  }
  ~SmallDisk() {
    if (mounted) ::umount2(path.c_str(), MNT_DETACH);
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

// Moves the run's output folder to a small disk holding a previous output, filled up to `free_kilobytes`.
void full_disk(Workspace& ws, int free_kilobytes) {
  auto disk = std::make_shared<SmallDisk>(512);
  if (!disk->mounted) throw std::runtime_error("cannot mount a tmpfs on " + disk->path);
  ws.keep = disk;
  ws.out = disk->path + "/out";
  fs::create_directories(ws.out);
  test::write_file(ws.out + "/poisson.h5", "previous poisson.h5\n");
  test::write_file(ws.out + "/cca.h5", "previous cca.h5\n");
  ws.previous = {{"poisson.h5", "previous poisson.h5\n"}, {"cca.h5", "previous cca.h5\n"}};
  const auto space = fs::space(disk->path);
  const std::uintmax_t keep = static_cast<std::uintmax_t>(free_kilobytes) * 1024;
  if (space.available > keep)
    test::write_file(disk->path + "/filler", std::string(space.available - keep, 'x'));
}

}  // namespace

std::vector<Case> output_cases() {
  return {
      {"output",
       "folder_not_writable",
       [](Workspace& ws) {
         auto args = hessian_good(ws);
         ::chmod(ws.out.c_str(), 0555);
         ws.env.emplace_back("SKEIN_CATALOGUE_UNPRIVILEGED", "1");
         return args;
       },
       74,
       {"{out}/.skein.lock: permission denied (cannot create a file in the output folder)"},
       "",
       Needs::unprivileged},
      {"output",
       "folder_under_a_file",
       [](Workspace& ws) {
         auto args = cca_good(ws);
         test::write_file(ws.in + "/plain-file", "x");
         ws.out = ws.in + "/plain-file/out";
         ws.previous.clear();
         return args;
       },
       74,
       {"{in}/plain-file", "not a directory"}},
      {"output",
       "full_disk_poisson",
       [](Workspace& ws) {
         auto args = poisson_good(ws);
         full_disk(ws, 4);
         return args;
       },
       74,
       {"{out}/poisson.h5: no space left on device"},
       "",
       Needs::tmpfs,
       nullptr,
       10},
      {"output",
       "full_disk_cca",
       [](Workspace& ws) {
         auto args = cca_good(ws);
         full_disk(ws, 4);
         return args;
       },
       74,
       {"{out}/cca.h5: no space left on device"},
       "",
       Needs::tmpfs,
       nullptr,
       10},
      {"output",
       "file_size_limit",
       [](Workspace& ws) {
         ws.env.emplace_back("SKEIN_CATALOGUE_FSIZE", "4096");
         return hessian_good(ws);
       },
       74,
       {"{out}/hessian.h5", "File too large"}},
  };
}

}  // namespace skein::bad_inputs
