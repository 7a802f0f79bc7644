#!/usr/bin/env bash
# Builds the NCCL configuration (SKEIN_ENABLE_NCCL=ON) in build-nccl/: configure, then only the comm
# libraries and the skein executable (no tests), to prove the NCCL backend compiles and links with the host
# compiler against the CUDA runtime and NCCL, with whatever Kokkos is installed (Debian's host-only one on
# CI). Fails at configure when CUDA or NCCL is missing. Prints how long it took.
# Usage: cluster/build-nccl.sh [extra cmake -D options...]   (SKEIN_NCCL_BUILD_DIR overrides build-nccl)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SKEIN_NCCL_BUILD_DIR:-build-nccl}
jobs=${SKEIN_BUILD_JOBS:-2}
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
# The Release build of cluster/quickstart.sh (AUTO) already is this configuration where CUDA and NCCL are
# installed: then check its products instead of compiling every library a second time.
release=${SKEIN_BUILD_DIR:-build}
if [[ -z ${SKEIN_NCCL_BUILD_DIR:-} && -f $release/comm/libskein_comm_nccl.a && -x $release/bin/skein ]] &&
  nm -C "$release/comm/libskein_comm_nccl.a" | grep make_nccl_collectives >/dev/null &&
  ldd "$release/bin/skein" | grep libnccl >/dev/null; then
  echo "build-nccl: the Release build ($release) has the NCCL backend compiled and linked; nothing to rebuild"
  exit 0
fi
start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSKEIN_ENABLE_NCCL=ON -DSKEIN_ENABLE_TESTS=OFF \
  "${launcher[@]}" "$@" >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
grep -E "^-- skein: NCCL" "$log"
cmake --build "$build" -j "$jobs" --target skein_comm_nccl skein_comm skein
nm -C "$build/comm/libskein_comm_nccl.a" | grep "make_nccl_collectives" >/dev/null || {
  echo "build-nccl: skein_comm_nccl lacks make_nccl_collectives" >&2
  exit 1
}
ldd "$build/bin/skein" | grep libnccl >/dev/null || {
  echo "build-nccl: bin/skein is not linked against libnccl" >&2
  exit 1
}
echo "build-nccl: NCCL configuration built and linked in $(($(date +%s) - start)) s ($build/bin/skein)"
