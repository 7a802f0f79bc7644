#include "comm/nccl.hpp"

#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>

namespace skein::comm {

namespace {

void check_cuda(const char* call, cudaError_t code) {
  if (code != cudaSuccess) {
    throw DeviceError(std::string(call) + " failed: " + cudaGetErrorName(code) + " (" +
                      cudaGetErrorString(code) + ")");
  }
}

std::string nccl_text(const char* call, ncclResult_t code, ncclComm_t comm) {
  std::string text = std::string(call) + " failed: " + ncclGetErrorString(code);
  // NCCL >= 2.13 keeps a sentence about the last failure (which peer, which transport).
  const char* last = comm ? ncclGetLastError(comm) : ncclGetLastError(nullptr);
  if (last && *last) text += std::string(" (") + last + ")";
  return text;
}

void check_nccl(const char* call, ncclResult_t code, ncclComm_t comm = nullptr) {
  if (code != ncclSuccess) throw DeviceError(nccl_text(call, code, comm));
}

ncclDataType_t nccl_type(DeviceType type) {
  switch (type) {
    case DeviceType::i8:
      return ncclInt8;
    case DeviceType::u8:
      return ncclUint8;
    case DeviceType::i32:
      return ncclInt32;
    case DeviceType::u32:
      return ncclUint32;
    case DeviceType::i64:
      return ncclInt64;
    case DeviceType::u64:
      return ncclUint64;
    case DeviceType::f32:
      return ncclFloat32;
    case DeviceType::f64:
      return ncclFloat64;
  }
  return ncclUint8;
}

ncclRedOp_t nccl_op(Op op) {
  switch (op) {
    case Op::sum:
      return ncclSum;
    case Op::min:
      return ncclMin;
    case Op::max:
      return ncclMax;
  }
  return ncclSum;
}

// This rank's place among the ranks of `comm` that share its node: {rank, size} (raw MPI is allowed in
// comm/).
std::pair<int, int> node_share(const Communicator& comm) {
  MPI_Comm node = MPI_COMM_NULL;
  detail::check("MPI_Comm_split_type",
                MPI_Comm_split_type(comm.native(), MPI_COMM_TYPE_SHARED, comm.rank(), MPI_INFO_NULL, &node));
  int rank = 0, size = 1;
  int code = MPI_Comm_rank(node, &rank);
  if (code == MPI_SUCCESS) code = MPI_Comm_size(node, &size);
  MPI_Comm_free(&node);
  detail::check("MPI_Comm_rank", code);
  return {rank, size};
}

class NcclCollectives final : public DeviceCollectives {
 public:
  NcclCollectives(ncclComm_t comm, int device) : comm_(comm), device_(device) {}
  ~NcclCollectives() override {
    // Destroy waits for outstanding work; after an abort there is nothing left to free.
    if (comm_ != nullptr) ncclCommDestroy(comm_);
  }
  NcclCollectives(const NcclCollectives&) = delete;
  NcclCollectives& operator=(const NcclCollectives&) = delete;

  const char* name() const override { return "nccl"; }
  int device() const override { return device_; }

  void allreduce(void* data, std::size_t count, DeviceType type, Op op, void* stream) const override {
    const auto s = static_cast<cudaStream_t>(stream);
    check_nccl("ncclAllReduce",
               ncclAllReduce(data, data, count, nccl_type(type), nccl_op(op), live("ncclAllReduce"), s),
               comm_);
    wait("ncclAllReduce", s);
  }

  void bcast(void* data, std::size_t count, DeviceType type, int root, void* stream) const override {
    const auto s = static_cast<cudaStream_t>(stream);
    check_nccl("ncclBroadcast",
               ncclBroadcast(data, data, count, nccl_type(type), root, live("ncclBroadcast"), s), comm_);
    wait("ncclBroadcast", s);
  }

  void allgather(const void* send, void* receive, std::size_t count, DeviceType type,
                 void* stream) const override {
    const auto s = static_cast<cudaStream_t>(stream);
    check_nccl("ncclAllGather",
               ncclAllGather(send, receive, count, nccl_type(type), live("ncclAllGather"), s), comm_);
    wait("ncclAllGather", s);
  }

 private:
  ncclComm_t live(const char* call) const {
    if (comm_ == nullptr) {
      throw DeviceError(std::string(call) + ": the NCCL communicator was aborted after an earlier error");
    }
    return comm_;
  }

  // Waits for the collective by polling the stream and NCCL's asynchronous error, so that a peer that
  // failed (or left) ends this rank with an error instead of a hang: the communicator is aborted and the
  // error thrown, for the caller's agree() to spread like an MPI failure.
  void wait(const char* call, cudaStream_t stream) const {
    for (int spins = 0;; ++spins) {
      const cudaError_t state = cudaStreamQuery(stream);
      if (state == cudaSuccess) return;
      if (state != cudaErrorNotReady) {
        abort();
        check_cuda((std::string("cudaStreamQuery after ") + call).c_str(), state);
      }
      ncclResult_t async = ncclSuccess;
      check_nccl("ncclCommGetAsyncError", ncclCommGetAsyncError(comm_, &async), comm_);
      if (async != ncclSuccess && async != ncclInProgress) {
        const std::string text = nccl_text(call, async, comm_);
        abort();
        throw DeviceError(text);
      }
      if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  void abort() const {
    if (comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
  }

  mutable ncclComm_t comm_;
  int device_;
};

}  // namespace

int visible_cuda_devices() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error for later callers
    return 0;
  }
  return count;
}

std::shared_ptr<const DeviceCollectives> make_nccl_collectives(const Communicator& comm, int device) {
  // Not a structured binding: C++17 does not let a lambda capture one (clang refuses it).
  const std::pair<int, int> share = node_share(comm);
  const int local_rank = share.first;
  const int local_size = share.second;
  comm.agree([&] {
    const int devices = visible_cuda_devices();
    if (devices == 0) {
      throw engine::UsageError(
          "comm.backend=nccl: no CUDA device is visible to this process (no GPU, no driver, or "
          "CUDA_VISIBLE_DEVICES is empty); use comm.backend=mpi or auto");
    }
    // NCCL refuses two ranks of one communicator on the same device ("Duplicate GPU detected").
    if (local_size > devices) {
      throw engine::UsageError("comm.backend=nccl: " + std::to_string(local_size) +
                               " ranks on this node share " + std::to_string(devices) +
                               " CUDA device(s), and NCCL needs one device per rank; run at most " +
                               std::to_string(devices) + " ranks per node, or use comm.backend=mpi or auto");
    }
    if (device < 0) device = local_rank % devices;
    check_cuda("cudaSetDevice", cudaSetDevice(device));
  });
  ncclUniqueId id{};
  comm.agree([&] {
    if (comm.rank() == 0) check_nccl("ncclGetUniqueId", ncclGetUniqueId(&id));
  });
  comm.bcast(&id, 1, 0);
  // Every rank reaches ncclCommInitRank (the agreements above), so none waits there for a rank that failed
  // before it; a failure inside it is agreed afterwards, and the ranks that did get a communicator free it.
  ncclComm_t nccl = nullptr;
  std::string failure;
  const ncclResult_t code = ncclCommInitRank(&nccl, comm.size(), id, comm.rank());
  if (code != ncclSuccess) failure = nccl_text("ncclCommInitRank", code, nullptr);
  try {
    comm.settle(failure.empty() ? 0 : static_cast<int>(engine::ExitCode::internal), failure);
  } catch (...) {
    if (nccl != nullptr) ncclCommAbort(nccl);
    throw;
  }
  return std::make_shared<const NcclCollectives>(nccl, device);
}

}  // namespace skein::comm
