// The NCCL backend against MPI: the same allreduce (sum, min, max), broadcast and allgather results on
// device buffers, where a GPU is visible (the H200 script); without one, make_nccl_collectives must fail
// cleanly, agreed on every rank, with the message the CLI prints. Skipped in builds without NCCL.
// skein-test-ranks: 1 2 3
#include "comm/communicator.hpp"
#include "engine/error.hpp"

#include <gtest/gtest.h>

#if defined(SKEIN_HAVE_NCCL)
#include "comm/nccl.hpp"

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

using skein::comm::Communicator;
using skein::comm::Op;

namespace {

// A device copy of `host` that frees itself.
template <class T>
struct DeviceBuffer {
  explicit DeviceBuffer(const std::vector<T>& host) : count(host.size()) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&data), count * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(data, host.data(), count * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceBuffer() { cudaFree(data); }
  std::vector<T> to_host() const {
    std::vector<T> host(count);
    EXPECT_EQ(cudaMemcpy(host.data(), data, count * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }
  T* data = nullptr;
  std::size_t count;
};

// Rank-dependent values whose sums are not exact in floating point, so NCCL and MPI must add alike.
std::vector<double> doubles(int rank, std::size_t n) {
  std::vector<double> values(n);
  for (std::size_t i = 0; i < n; ++i)
    values[i] = 1.0 / (3.0 + rank) + static_cast<double>(i) * (rank % 2 ? -1 : 1);
  return values;
}

}  // namespace

TEST(NcclCollectives, MatchMpiOrFailCleanly) {
  Communicator comm(MPI_COMM_WORLD);
  const int devices = skein::comm::visible_cuda_devices();
  // The tests run every rank on one machine: NCCL needs a device for each.
  if (devices < comm.size()) {
    // The same error on every rank, exit code 2 (a config the machine cannot honour), before NCCL is asked.
    try {
      skein::comm::make_nccl_collectives(comm);
      FAIL() << "make_nccl_collectives succeeded with " << devices << " devices for " << comm.size()
             << " ranks";
    } catch (const skein::engine::Error& e) {
      EXPECT_TRUE(e.agreed());
      EXPECT_EQ(e.code(), skein::engine::ExitCode::usage);
      const std::string expected = devices == 0 ? "comm.backend=nccl: no CUDA device is visible"
                                                : "ranks on this node share " + std::to_string(devices);
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
    return;
  }
  const auto nccl = skein::comm::make_nccl_collectives(comm);
  ASSERT_NE(nccl, nullptr);
  const std::size_t n = 1000;
  for (const Op op : {Op::sum, Op::min, Op::max}) {
    const auto local = doubles(comm.rank(), n);
    std::vector<double> expected = local;
    comm.allreduce_inplace(expected.data(), n, op);
    DeviceBuffer<double> device(local);
    nccl->allreduce(device.data, n, skein::comm::device_type<double>(), op, nullptr);
    const auto got = device.to_host();
    // min and max are exact; a sum of 3 or more ranks may round differently in NCCL's order (DESIGN.md).
    for (std::size_t i = 0; i < n; ++i)
      ASSERT_NEAR(got[i], expected[i], op == Op::sum ? 1e-14 * (1 + std::abs(expected[i])) : 0.0)
          << "op " << static_cast<int>(op) << " i " << i;
  }
  {
    std::vector<std::int64_t> local(n, comm.rank() + 1), expected = local;
    comm.allreduce_inplace(expected.data(), n, Op::sum);
    DeviceBuffer<std::int64_t> device(local);
    nccl->allreduce(device.data, n, skein::comm::device_type<std::int64_t>(), Op::sum, nullptr);
    EXPECT_EQ(device.to_host(), expected);
  }
  {
    const int root = comm.size() - 1;
    std::vector<double> local = doubles(comm.rank(), n), expected = local;
    comm.bcast(expected.data(), n, root);
    DeviceBuffer<double> device(local);
    nccl->bcast(device.data, n * sizeof(double), skein::comm::DeviceType::u8, root, nullptr);
    EXPECT_EQ(device.to_host(), expected);
  }
  {
    const std::vector<float> local(5, static_cast<float>(comm.rank()) + 0.5f);
    std::vector<float> expected;
    for (const float v : comm.allgatherv(local)) expected.push_back(v);
    DeviceBuffer<float> send(local);
    DeviceBuffer<float> receive(std::vector<float>(5 * comm.size(), -1.0f));
    nccl->allgather(send.data, receive.data, 5, skein::comm::device_type<float>(), nullptr);
    EXPECT_EQ(receive.to_host(), expected);
  }
}

#else
TEST(NcclCollectives, MatchMpiOrFailCleanly) {
  GTEST_SKIP() << "built without NCCL (SKEIN_ENABLE_NCCL)";
}
#endif
