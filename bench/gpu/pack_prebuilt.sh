#!/usr/bin/env bash
# Packs a CUDA build made on the project's machine (bench/gpu/build-cuda.sh: nvcc compiles and links without a
# GPU) for bench/gpu/run_on_h200.sh, so that a lease's minutes go to running rather than compiling (the build
# takes ~800 CPU-s here). Packs the skein binary, the unit and MPI test executables (stripped: symbols only,
# the CUDA fat binaries stay) and the CTest files that name them as .gpu/prebuilt.tar.xz, and the build
# folder's absolute path as .gpu/prebuilt-path: CTest files name absolute paths, so run_on_h200.sh links the
# checkout it runs in to the same place.
# Usage: bench/gpu/pack_prebuilt.sh [BUILD_DIR]   (default build-cuda)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-cuda}
[[ -x $build/bin/skein ]] || { echo "no $build/bin/skein: run bench/gpu/build-cuda.sh first" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p .gpu "$stage/bin" "$stage/tests"
strip --strip-unneeded -o "$stage/bin/skein" "$build/bin/skein"
# The unit and MPI tests' executables sit in BUILD/tests (the e2e ones, which need what the image lacks, in
# BUILD/tests/e2e and below).
for exe in "$build"/tests/test_*; do
  [[ -f $exe && -x $exe ]] && strip --strip-unneeded -o "$stage/tests/$(basename "$exe")" "$exe"
done
(cd "$build" && find . -name CTestTestfile.cmake -print0 | xargs -0 cp --parents -t "$stage")
tar -cJf .gpu/prebuilt.tar.xz -C "$stage" .
realpath "$build" >.gpu/prebuilt-path
echo "packed $(find "$stage" -type f | wc -l) files of $build: $(du -h .gpu/prebuilt.tar.xz | cut -f1) (.gpu/prebuilt.tar.xz)"
# With a carried build the device compiles nothing, so Kokkos' source and install (make_sysroot.sh) stay
# behind: the device call carries 64 MiB at most, the checkout included (sysroot ~41 MB + this ~15 MB).
rm -f .gpu/kokkos-4.6.01.tar.gz .gpu/kokkos-4.6.01-cuda-install.tar.gz
total=$(($(du -sb .gpu | cut -f1) + $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)))
echo "to carry: $((total / 1048576)) MiB of the device call's 64 (.gpu/ and the checkout)"
((total < 62 * 1048576)) || echo "warning: too close to the 64 MiB a device call carries" >&2
