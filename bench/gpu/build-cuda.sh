#!/usr/bin/env bash
# Builds skein against a CUDA build of Kokkos with the NCCL backend (issue 11): compile and link only, so it
# runs on a machine without a GPU (the CUDA 13 toolkit and NCCL installed). The host compiler stays g++;
# Kokkos' CMake package (find_package(Kokkos), kokkos_launch_compiler) sends the files of targets that link
# Kokkos through its nvcc_wrapper, so the host-only targets never see nvcc. Builds the libraries with
# kernels first (nvcc's errors come early), then skein, then everything (the test executables).
# Writes BUILD/build-times.txt (wall and CPU seconds per step).
# Usage: bench/gpu/build-cuda.sh [KOKKOS_ROOT] [BUILD_DIR] [JOBS] [TARGET...]
#   defaults: /opt/kokkos-4.6.01-cuda (see README "Building for GPUs" for building it), build-cuda, 2, all
set -euo pipefail
cd "$(dirname "$0")/../.."
kokkos=${1:-/opt/kokkos-4.6.01-cuda}
build=${2:-build-cuda}
jobs=${3:-2}
shift $(($# < 3 ? $# : 3))
targets=("$@")
export PATH=/usr/local/cuda/bin:$PATH
times=$build/build-times.txt
mkdir -p "$build"
: >"$times"
step() { # NAME COMMAND...: runs it, appends wall and CPU seconds (children's user + system) to $times
  local name=$1 t0 c0 t1 c1
  shift
  t0=$(date +%s.%N)
  c0=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
  "$@"
  t1=$(date +%s.%N)
  c1=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
  awk -v n="$name" -v w="$(awk "BEGIN { print $t1 - $t0 }")" -v c="$(((c1 - c0) / $(getconf CLK_TCK)))" \
    'BEGIN { printf "%-40s wall %7.1f s  cpu %6d s\n", n, w, c }' | tee -a "$times"
}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
[[ -f $build/CMakeCache.txt ]] ||
  step configure cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DKokkos_ROOT="$kokkos" \
    -DSKEIN_ENABLE_NCCL=ON
if ((${#targets[@]})); then
  step "build ${targets[*]}" cmake --build "$build" -j "$jobs" --target "${targets[@]}"
else
  step "build skein_solvers" cmake --build "$build" -j "$jobs" --target skein_solvers
  step "build skein" cmake --build "$build" -j "$jobs" --target skein
  step "build all" cmake --build "$build" -j "$jobs"
fi
