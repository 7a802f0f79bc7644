// comm.backend and comm.gpu_aware through the `skein` executable: the [comm] section of a job's INI file and
// --comm.* options, the chosen backend in the log, and comm.backend=nccl on a machine that cannot honour it
// (no NCCL built in, no GPU, or host-only Kokkos) ending every rank at start with exit 2 and the reason.
#if defined(SKEIN_HAVE_NCCL)
#include "comm/nccl.hpp"
#endif
#include "tests/e2e/cli_runner.hpp"

#include <gtest/gtest.h>
#include <Kokkos_Core.hpp>

#include <string>
#include <vector>

using namespace skein::test;

namespace {

std::vector<std::string> poisson_args(const std::string& out) {
  return {"run", "poisson", "--out", out, "--poisson.grid=8,8,8", "--poisson.solver=cg"};
}

// Whether `ranks` ranks on this machine could use NCCL (this process sees what the ranks would see; it has no
// MPI, so the facts are gathered without comm::local_device_facts).
bool nccl_possible_here(int ranks) {
#if defined(SKEIN_HAVE_NCCL)
  const bool device_memory =
      !Kokkos::SpaceAccessibility<Kokkos::HostSpace, Kokkos::DefaultExecutionSpace::memory_space>::accessible;
  return device_memory && skein::comm::visible_cuda_devices() >= ranks;
#else
  (void)ranks;
  return false;
#endif
}

}  // namespace

TEST(CommBackendCli, CommSectionInTheJobsIniFile) {
  const std::string out = make_temp_dir("comm-ini");
  write_file(out + "/run.ini", "[poisson]\ngrid = 8,8,8\n\n[comm]\nbackend = mpi\ngpu_aware = off\n");
  const RunResult r = run_skein(2, {"run", "poisson", "--out", out, "--config", out + "/run.ini"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("communication: mpi"), std::string::npos) << r.output;
  EXPECT_TRUE(file_exists(out + "/poisson.h5"));
}

TEST(CommBackendCli, BadCommKeysAndValuesAreUsageErrors) {
  {
    const std::string out = make_temp_dir("comm-key");
    write_file(out + "/run.ini", "[poisson]\ngrid = 8,8,8\n[comm]\nbacknd = mpi\n");
    const RunResult r = run_skein(2, {"run", "poisson", "--out", out, "--config", out + "/run.ini"});
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("unknown config key 'comm.backnd'"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("did you mean 'comm.backend'"), std::string::npos) << r.output;
  }
  for (const std::string option :
       {"--comm.backend=gpu", "--comm.gpu_aware=maybe", "--comm.reproducible=maybe"}) {
    auto args = poisson_args(make_temp_dir("comm-value"));
    args.push_back(option);
    const RunResult r = run_skein(2, args);
    EXPECT_EQ(r.exit_code, 2) << option << "\n" << r.output;
    EXPECT_NE(r.output.find("config key '" + option.substr(2, option.find('=') - 2) + "'"), std::string::npos)
        << r.output;
  }
  const RunResult help = run_skein(0, {"run", "poisson", "--help"});
  EXPECT_NE(help.output.find("--comm.backend"), std::string::npos) << help.output;
  EXPECT_NE(help.output.find("--comm.gpu_aware"), std::string::npos) << help.output;
  EXPECT_NE(help.output.find("--comm.reproducible"), std::string::npos) << help.output;
}

TEST(CommBackendCli, NcclWithoutAGpuFailsCleanlyAtStart) {
  for (const int ranks : {1, 2}) {
    if (nccl_possible_here(ranks)) continue;  // a GPU per rank and device memory: the run would succeed
    const std::string out = make_temp_dir("comm-nccl");
    auto args = poisson_args(out);
    args.push_back("--comm.backend=nccl");
    const RunResult r = run_skein(ranks, args, 60);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("comm.backend=nccl: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("use comm.backend=mpi or auto"), std::string::npos) << r.output;
    EXPECT_FALSE(file_exists(out + "/poisson.h5"));
  }
  // auto on the same machine falls back to MPI and runs.
  const std::string out = make_temp_dir("comm-auto");
  auto args = poisson_args(out);
  args.push_back("--comm.backend=auto");
  const RunResult r = run_skein(2, args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("communication: mpi"), std::string::npos) << r.output;
}
