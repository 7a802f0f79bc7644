#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for skein (apt packages), builds it (Release), then runs the demo or the
# whole test suite. Usage: cluster/quickstart.sh demo|test   (as root, or a user with sudo)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-}
if [[ "$what" != demo && "$what" != test ]]; then
  echo "usage: $0 demo|test" >&2
  exit 2
fi

packages=(build-essential cmake pkg-config python3 openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools
  libboost-program-options-dev libtrilinos-kokkos-dev libopenblas-dev liblapacke-dev libgtest-dev
  libsimdjson-dev libxxhash-dev libzstd-dev zstd libspdlog-dev libfmt-dev fortunes fortunes-min
  python3-numpy python3-h5py python3-sklearn python3-matplotlib)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  echo "quickstart: installing ${missing[*]}"
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Open MPI refuses to run as root unless told; more ranks than cores need oversubscription.
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1

jobs=$(nproc)
build=${SKEIN_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$jobs"

if [[ "$what" == demo ]]; then
  exec cluster/demo.sh "$build/bin/skein"
else
  cd "$build"
  exec ctest --output-on-failure -j "$jobs" --timeout 600
fi
