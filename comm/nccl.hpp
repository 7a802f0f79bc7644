// The NCCL backend: a DeviceCollectives over the ranks of an MPI Communicator, on one CUDA device per rank.
// Host code against the CUDA runtime and NCCL headers, compiled only when CMake found NCCL
// (SKEIN_HAVE_NCCL); this header itself needs neither.
#pragma once

#include "comm/communicator.hpp"
#include "comm/device_collectives.hpp"

#include <memory>

namespace skein::comm {

// A CUDA or NCCL call failed; carries the library's own error text.
class DeviceError : public engine::InternalError {
 public:
  using engine::InternalError::InternalError;
};

// CUDA devices this process sees (0 when there is no driver or no device; never throws).
int visible_cuda_devices();

// Collective over `comm`: picks the device (`device` >= 0, e.g. the one Kokkos runs on, else the node-local
// rank modulo the devices on the node, from MPI_Comm_split_type), broadcasts rank 0's ncclUniqueId over
// MPI and calls ncclCommInitRank. Any rank's failure (no device, a CUDA or NCCL error) is agreed: every
// rank throws the same typed error. The result uses the same rank numbers as `comm`.
std::shared_ptr<const DeviceCollectives> make_nccl_collectives(const Communicator& comm, int device = -1);

}  // namespace skein::comm
