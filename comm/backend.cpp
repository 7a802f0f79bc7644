#include "comm/backend.hpp"

#include "engine/error.hpp"

#if defined(SKEIN_HAVE_NCCL)
#include "comm/nccl.hpp"
#endif

#include <mpi.h>
#include <Kokkos_Core.hpp>
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>  // Open MPI's extensions: MPIX_Query_cuda_support
#endif

namespace skein::comm {

std::vector<engine::ConfigKey> backend_keys() {
  return {
      {"backend", "auto",
       "mpi|nccl|auto: who reduces and broadcasts Views in device memory (auto: nccl when it is built in, "
       "a GPU is visible and Kokkos runs on it)",
       false, false},
      {"gpu_aware", "auto",
       "auto|on|off: hand device pointers to MPI (auto: when MPI reports CUDA support); off stages through "
       "pinned host buffers",
       false, false},
      {"reproducible", "false",
       "true|false: sums over ranks (dot products of the Krylov and Lanczos solvers, gradients over samples) "
       "in exact fixed point (comm/exact_sum.hpp), so results are the same bits at any rank count and a "
       "checkpoint resumes on another rank count to the uninterrupted output; costs 30-60% of a CG "
       "iteration (bench/README.md, faults)",
       false, false},
  };
}

DeviceFacts local_device_facts(const Communicator& comm) {
  DeviceFacts facts;
  MPI_Comm node = MPI_COMM_NULL;
  detail::check("MPI_Comm_split_type",
                MPI_Comm_split_type(comm.native(), MPI_COMM_TYPE_SHARED, comm.rank(), MPI_INFO_NULL, &node));
  const int code = MPI_Comm_size(node, &facts.ranks_on_node);
  MPI_Comm_free(&node);
  detail::check("MPI_Comm_size", code);
#if defined(SKEIN_HAVE_NCCL)
  facts.nccl_compiled = true;
  facts.visible_devices = visible_cuda_devices();
#endif
  facts.device_memory =
      !Kokkos::SpaceAccessibility<Kokkos::HostSpace, Kokkos::DefaultExecutionSpace::memory_space>::accessible;
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
  // The compile-time macro says Open MPI was built with CUDA; the query says the loaded library supports it.
  facts.mpi_gpu_aware = MPIX_Query_cuda_support() == 1;
#endif
  return facts;
}

std::string choose_backend(const Communicator& comm, const std::string& requested, const DeviceFacts& facts) {
  if (requested != "mpi" && requested != "nccl" && requested != "auto") {
    throw engine::UsageError("config key 'comm.backend': '" + requested + "' is not one of mpi|nccl|auto");
  }
  if (requested == "mpi") return "mpi";
  std::string why_not;
  if (!facts.nccl_compiled) {
    why_not =
        "this skein was built without NCCL (configure with -DSKEIN_ENABLE_NCCL=ON and the CUDA toolkit)";
  } else if (facts.visible_devices == 0) {
    why_not =
        "no CUDA device is visible to this process (no GPU, no driver, or CUDA_VISIBLE_DEVICES is empty)";
  } else if (facts.ranks_on_node > facts.visible_devices) {
    why_not = std::to_string(facts.ranks_on_node) + " ranks on this node share " +
              std::to_string(facts.visible_devices) +
              " CUDA device(s), and NCCL needs one device per rank (run at most " +
              std::to_string(facts.visible_devices) + " ranks per node)";
  } else if (!facts.device_memory) {
    why_not =
        "Kokkos runs on the host here (build Kokkos with Kokkos_ENABLE_CUDA=ON), so no View is in "
        "device memory";
  }
  const bool usable = comm.allreduce(static_cast<int>(why_not.empty()), Op::min) == 1;
  if (requested == "auto") return usable ? "nccl" : "mpi";
  comm.agree([&] {
    if (!why_not.empty())
      throw engine::UsageError("comm.backend=nccl: " + why_not + "; use comm.backend=mpi or auto");
  });
  return "nccl";
}

bool choose_gpu_aware(const Communicator& comm, const std::string& setting, const DeviceFacts& facts) {
  if (setting != "auto" && setting != "on" && setting != "off") {
    throw engine::UsageError("config key 'comm.gpu_aware': '" + setting + "' is not one of auto|on|off");
  }
  const bool local = setting == "on" || (setting == "auto" && facts.mpi_gpu_aware);
  return comm.allreduce(static_cast<int>(local), Op::min) == 1;
}

std::string configure_backend(Communicator& comm, const engine::Config& settings) {
  const DeviceFacts facts = local_device_facts(comm);
  std::string backend, gpu_aware_setting;
  bool reproducible = false;
  comm.agree([&] {
    backend = settings.get_choice("backend", {"mpi", "nccl", "auto"});
    gpu_aware_setting = settings.get_choice("gpu_aware", {"auto", "on", "off"});
    reproducible = settings.get_bool("reproducible");
  });
  comm.set_exact_sums(reproducible);
  const std::string chosen = choose_backend(comm, backend, facts);
  const bool gpu_aware = choose_gpu_aware(comm, gpu_aware_setting, facts);
  std::shared_ptr<const DeviceCollectives> device;
#if defined(SKEIN_HAVE_NCCL)
  if (chosen == "nccl") {
    int kokkos_device = -1;
#if defined(KOKKOS_ENABLE_CUDA)
    if constexpr (std::is_same_v<Kokkos::DefaultExecutionSpace, Kokkos::Cuda>) {
      kokkos_device = Kokkos::Cuda().cuda_device();  // NCCL must use the device Kokkos runs on
    }
#endif
    device = make_nccl_collectives(comm, kokkos_device);
  }
#endif
  comm.set_device_backend(device, gpu_aware);
  std::string text = chosen;
  if (reproducible) text += ", exact (rank-count independent) sums";
  if (device) text += " on device " + std::to_string(device->device());
  if (!facts.device_memory) return text + " (Kokkos memory is host memory: MPI on host buffers)";
  return text + ", GPU-aware MPI " +
         (gpu_aware ? "on" : "off (device Views staged through pinned host memory)");
}

}  // namespace skein::comm
