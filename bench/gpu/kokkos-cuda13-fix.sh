#!/usr/bin/env bash
# Kokkos 4.6.01 predates CUDA 13, whose runtime changed three signatures Kokkos calls:
# cudaGraphAddDependencies (an edge-data argument), cudaMemAdvise and cudaMemPrefetchAsync (a cudaMemLocation
# instead of a device number; the prefetch also takes flags). This edits an extracted Kokkos 4.6.01 source
# tree in place so that it builds with CUDA 12 or 13 (each call guarded by CUDART_VERSION). Later Kokkos
# releases that support CUDA 13 need none of it (the script then changes nothing).
# Usage: bench/gpu/kokkos-cuda13-fix.sh KOKKOS_SOURCE_DIR
set -euo pipefail
file=$1/core/src/Cuda/Kokkos_Cuda_Instance.hpp
grep -q "skein: CUDA 13" "$file" && exit 0
python3 - "$file" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
fixes = {
    "    return cudaGraphAddDependencies(graph, from, to, numDependencies);\n":
    "#if CUDART_VERSION >= 13000  // skein: CUDA 13 added the edge data\n"
    "    return cudaGraphAddDependencies(graph, from, to, nullptr, numDependencies);\n"
    "#else\n"
    "    return cudaGraphAddDependencies(graph, from, to, numDependencies);\n"
    "#endif\n",
    "    return cudaMemAdvise(devPtr, count, advice, device);\n":
    "#if CUDART_VERSION >= 13000  // skein: CUDA 13 takes a cudaMemLocation\n"
    "    cudaMemLocation location{};\n"
    "    location.type = device == cudaCpuDeviceId ? cudaMemLocationTypeHost : cudaMemLocationTypeDevice;\n"
    "    location.id = device;\n"
    "    return cudaMemAdvise(devPtr, count, advice, location);\n"
    "#else\n"
    "    return cudaMemAdvise(devPtr, count, advice, device);\n"
    "#endif\n",
    "    return cudaMemPrefetchAsync(devPtr, count, dstDevice,\n                                get_input_stream(stream));\n":
    "#if CUDART_VERSION >= 13000  // skein: CUDA 13 takes a cudaMemLocation and flags\n"
    "    cudaMemLocation location{};\n"
    "    location.type = dstDevice == cudaCpuDeviceId ? cudaMemLocationTypeHost : cudaMemLocationTypeDevice;\n"
    "    location.id = dstDevice;\n"
    "    return cudaMemPrefetchAsync(devPtr, count, location, 0, get_input_stream(stream));\n"
    "#else\n"
    "    return cudaMemPrefetchAsync(devPtr, count, dstDevice,\n                                get_input_stream(stream));\n"
    "#endif\n",
}
for old, new in fixes.items():
    if old not in text:
        sys.exit(f"kokkos-cuda13-fix: {path} does not hold the expected call:\n{old}")
    text = text.replace(old, new)
open(path, "w").write(text)
PY
echo "kokkos-cuda13-fix: patched $file"
