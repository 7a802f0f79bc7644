// The device-memory backend choice (comm.backend, comm.gpu_aware): the same decision on every rank from
// per-rank facts, agreed errors naming the rank, the config keys, and what derived communicators keep.
// skein-test-ranks: 1 2 3
#include "comm/backend.hpp"
#include "comm/cartesian.hpp"
#include "comm/view_collectives.hpp"
#include "engine/error.hpp"

#include <gtest/gtest.h>

#include <string>

using skein::comm::choose_backend;
using skein::comm::choose_gpu_aware;
using skein::comm::Communicator;
using skein::comm::DeviceFacts;
using skein::engine::ExitCode;
using skein::engine::UsageError;

namespace {

DeviceFacts capable() {
  DeviceFacts facts;
  facts.nccl_compiled = true;
  facts.visible_devices = 2;
  facts.device_memory = true;
  facts.mpi_gpu_aware = true;
  return facts;
}

// The message and code every rank threw, or "" when nothing was thrown.
template <class F>
std::string agreed_failure(F&& f, ExitCode* code = nullptr) {
  try {
    f();
  } catch (const skein::engine::Error& e) {
    EXPECT_TRUE(e.agreed()) << e.what();
    if (code) *code = e.code();
    return e.what();
  }
  return "";
}

// A stand-in device backend: records nothing, only identifies itself (derived communicators share it).
class FakeDevice final : public skein::comm::DeviceCollectives {
 public:
  const char* name() const override { return "fake"; }
  int device() const override { return 7; }
  void allreduce(void*, std::size_t, skein::comm::DeviceType, skein::comm::Op, void*) const override {}
  void bcast(void*, std::size_t, skein::comm::DeviceType, int, void*) const override {}
  void allgather(const void*, void*, std::size_t, skein::comm::DeviceType, void*) const override {}
};

}  // namespace

TEST(CommBackend, MpiIsAlwaysAvailable) {
  Communicator comm(MPI_COMM_WORLD);
  EXPECT_EQ(choose_backend(comm, "mpi", DeviceFacts{}), "mpi");
  EXPECT_EQ(choose_backend(comm, "mpi", capable()), "mpi");
}

TEST(CommBackend, AutoTakesNcclOnlyWhereEveryRankCan) {
  Communicator comm(MPI_COMM_WORLD);
  EXPECT_EQ(choose_backend(comm, "auto", capable()), "nccl");
  EXPECT_EQ(choose_backend(comm, "auto", DeviceFacts{}), "mpi");
  DeviceFacts host_kokkos = capable();
  host_kokkos.device_memory = false;  // GPUs and NCCL, but Kokkos on the host: nothing for NCCL to move
  EXPECT_EQ(choose_backend(comm, "auto", host_kokkos), "mpi");
  // The last rank sees no device: every rank falls back to MPI together (never a mix of backends).
  DeviceFacts facts = capable();
  if (comm.rank() == comm.size() - 1) facts.visible_devices = 0;
  EXPECT_EQ(choose_backend(comm, "auto", facts), "mpi");
  // Two ranks on one GPU: NCCL would refuse them ("Duplicate GPU detected"), so MPI it is.
  DeviceFacts shared = capable();
  shared.ranks_on_node = 3;
  EXPECT_EQ(choose_backend(comm, "auto", shared), "mpi");
  const std::string message = agreed_failure([&] { choose_backend(comm, "nccl", shared); });
  EXPECT_NE(message.find("3 ranks on this node share 2 CUDA device(s)"), std::string::npos) << message;
}

TEST(CommBackend, NcclWhereARankCannotIsAnAgreedUsageError) {
  Communicator comm(MPI_COMM_WORLD);
  EXPECT_EQ(choose_backend(comm, "nccl", capable()), "nccl");
  const int last = comm.size() - 1;
  DeviceFacts facts = capable();
  if (comm.rank() == last) facts.visible_devices = 0;
  ExitCode code = ExitCode::ok;
  const std::string message = agreed_failure([&] { choose_backend(comm, "nccl", facts); }, &code);
  EXPECT_EQ(code, ExitCode::usage);
  EXPECT_NE(message.find("comm.backend=nccl: no CUDA device is visible"), std::string::npos) << message;
  if (comm.size() > 1) EXPECT_EQ(message.rfind("rank " + std::to_string(last) + ": ", 0), 0u) << message;

  const std::string unbuilt = agreed_failure([&] { choose_backend(comm, "nccl", DeviceFacts{}); });
  EXPECT_NE(unbuilt.find("built without NCCL"), std::string::npos) << unbuilt;
  EXPECT_THROW(choose_backend(comm, "gloo", capable()), UsageError);
}

TEST(CommBackend, GpuAwareIsTheMinimumOverRanks) {
  Communicator comm(MPI_COMM_WORLD);
  EXPECT_TRUE(choose_gpu_aware(comm, "auto", capable()));
  EXPECT_FALSE(choose_gpu_aware(comm, "auto", DeviceFacts{}));
  EXPECT_FALSE(choose_gpu_aware(comm, "off", capable()));
  EXPECT_TRUE(choose_gpu_aware(comm, "on", DeviceFacts{}));  // the user's word wins over detection
  DeviceFacts facts = capable();
  if (comm.rank() == 0) facts.mpi_gpu_aware = false;  // one MPI without CUDA support: everyone stages
  EXPECT_FALSE(choose_gpu_aware(comm, "auto", facts));
  EXPECT_THROW(choose_gpu_aware(comm, "yes", capable()), UsageError);
}

TEST(CommBackend, ConfigureFromTheCommSection) {
  Communicator comm(MPI_COMM_WORLD);
  const auto keys = skein::comm::backend_keys();
  const std::string ini = "[poisson]\nsolver = cg\n[comm]\nbackend = mpi\ngpu_aware = off\n";
  const auto [comm_ini, job_ini] = skein::engine::split_ini_section(ini, "comm");
  EXPECT_EQ(comm_ini, "[comm]\nbackend = mpi\ngpu_aware = off\n");
  EXPECT_EQ(job_ini, "[poisson]\nsolver = cg\n");
  const auto settings = skein::engine::Config::resolve("comm", keys, comm_ini, "run.ini", {});
  const std::string described = skein::comm::configure_backend(comm, settings);
  EXPECT_EQ(described.rfind("mpi", 0), 0u) << described;
  EXPECT_EQ(comm.device_backend(), nullptr);
  EXPECT_FALSE(comm.gpu_aware());

  // A wrong value names the key and the choices, on every rank.
  const auto wrong = skein::engine::Config::resolve("comm", keys, "", "", {{"backend", "gpu"}});
  const std::string message = agreed_failure([&] { skein::comm::configure_backend(comm, wrong); });
  EXPECT_NE(message.find("comm.backend"), std::string::npos) << message;
  EXPECT_NE(message.find("mpi|nccl|auto"), std::string::npos) << message;

  // nccl: succeeds where this rank has NCCL, a GPU and device memory (the H200 run), else the clean error.
  const auto nccl = skein::engine::Config::resolve("comm", keys, "", "", {{"backend", "nccl"}});
  const DeviceFacts here = skein::comm::local_device_facts(comm);
  EXPECT_GE(here.ranks_on_node, 1);
  const bool can_here =
      here.nccl_compiled && here.visible_devices >= here.ranks_on_node && here.device_memory;
  const bool can = comm.allreduce(static_cast<int>(can_here), skein::comm::Op::min) == 1;
  const std::string outcome = agreed_failure([&] { skein::comm::configure_backend(comm, nccl); });
  if (can) {
    EXPECT_EQ(outcome, "");
    ASSERT_NE(comm.device_backend(), nullptr);
    EXPECT_STREQ(comm.device_backend()->name(), "nccl");
  } else {
    EXPECT_NE(outcome.find("comm.backend=nccl: "), std::string::npos) << outcome;
  }
}

TEST(CommBackend, DerivedCommunicatorsKeepWhatStillApplies) {
  Communicator comm(MPI_COMM_WORLD);
  auto fake = std::make_shared<const FakeDevice>();
  comm.set_device_backend(fake, true);
  // The Cartesian communicator has the same ranks in the same order: it shares the device backend.
  const skein::comm::CartDecomposition grid(comm, {6, 6, 6}, {0, 0, 0});
  EXPECT_EQ(grid.comm().device_backend(), fake);
  EXPECT_TRUE(grid.comm().gpu_aware());
  // A split has other ranks: MPI's setting stays, the device backend (fixed to its ranks) does not.
  const Communicator half = comm.split(comm.rank() % 2, comm.rank());
  EXPECT_EQ(half.device_backend(), nullptr);
  EXPECT_TRUE(half.gpu_aware());
  // A move carries both.
  Communicator moved(std::move(comm));
  EXPECT_EQ(moved.device_backend(), fake);
  EXPECT_EQ(comm.device_backend(), nullptr);
}

TEST(CommBackend, HostViewsIgnoreTheDeviceBackend) {
  // Host memory always goes through MPI: a backend that does nothing must not change the result.
  Communicator comm(MPI_COMM_WORLD);
  comm.set_device_backend(std::make_shared<const FakeDevice>(), true);
  Kokkos::View<double*, Kokkos::HostSpace> values("values", 3);
  for (int i = 0; i < 3; ++i) values(i) = comm.rank() + i;
  comm.allreduce(values, skein::comm::Op::sum);
  const int p = comm.size();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(values(i), p * (p - 1) / 2.0 + p * i);
}
