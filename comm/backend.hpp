// Chooses how a Communicator moves device memory: the config keys comm.backend (mpi|nccl|auto) and
// comm.gpu_aware (auto|on|off), decided the same on every rank and attached to the communicator, so a job
// calls the same collectives whatever was chosen. Kokkos-free header (the CLI includes it).
#pragma once

#include "comm/communicator.hpp"
#include "engine/config.hpp"

#include <string>
#include <vector>

namespace skein::comm {

// The [comm] section's keys: in the INI file as `[comm]` `backend = nccl`, or `--comm.backend=nccl`.
std::vector<engine::ConfigKey> backend_keys();

// What this rank knows about its hardware and build; the decisions below agree over every rank.
struct DeviceFacts {
  bool nccl_compiled = false;  // SKEIN_HAVE_NCCL
  int visible_devices = 0;     // CUDA devices this process sees
  int ranks_on_node = 1;       // ranks of the communicator on this node (NCCL needs a device for each)
  bool device_memory = false;  // Kokkos' default memory space is not host-accessible (a CUDA build)
  bool mpi_gpu_aware = false;  // MPIX_Query_cuda_support() (Open MPI's mpi-ext.h), false when unknown
};

// "mpi" or "nccl", the same on every rank. auto = nccl when every rank has NCCL compiled in, a visible
// device of its own (no more ranks on its node than devices) and device memory; else mpi. nccl where a rank
// cannot have it is a UsageError agreed by all ranks, naming the rank and why. `requested` is checked against
// mpi|nccl|auto.
std::string choose_backend(const Communicator& comm, const std::string& requested, const DeviceFacts& facts);

// Whether MPI may be handed device pointers: on/off as given, auto = what MPI says it supports; agreed by
// the minimum over ranks (one rank without support makes every rank stage through host memory).
bool choose_gpu_aware(const Communicator& comm, const std::string& setting, const DeviceFacts& facts);

// This rank's facts (the Kokkos build, the devices visible, the ranks of `comm` on its node, the MPI
// library). Collective over `comm`.
DeviceFacts local_device_facts(const Communicator& comm);

// Collective: resolves `settings` (section "comm"), creates the NCCL communicator when chosen, attaches
// the result to `comm`, and returns a one-line description for the log ("mpi (host memory)",
// "nccl on device 0, GPU-aware MPI off", ...). Errors are agreed across ranks.
std::string configure_backend(Communicator& comm, const engine::Config& settings);

}  // namespace skein::comm
