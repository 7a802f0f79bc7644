#!/usr/bin/env bash
# The sanitizer build: configures build-asan with -DSKEIN_SANITIZE=ON (AddressSanitizer + UBSan), builds it
# and runs the whole test suite (MPI tests included) under the run-time options and leak suppressions of
# cluster/sanitizers/, printing how long the build and the tests took. Any sanitizer finding fails its test.
# Usage: cluster/sanitize.sh [extra ctest arguments, e.g. -LE asan-slow or -R test_hdf5]
# Environment: SKEIN_ASAN_BUILD_DIR (build-asan), SKEIN_JOBS (nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${SKEIN_ASAN_BUILD_DIR:-build-asan}
jobs=${SKEIN_JOBS:-$(nproc)}

if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

start=$(date +%s)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSKEIN_SANITIZE=ON "${launcher[@]}"
cmake --build "$build" -j "$jobs"
built=$(date +%s)
echo "sanitize: build took $((built - start)) s"

# The reports of this run only; the options are set for the tests, not for the compilers above.
reports=$(cd "$build" && pwd)/sanitizer-reports
rm -rf "$reports"
mkdir -p "$reports"
# shellcheck source=sanitizers/environment.sh
source cluster/sanitizers/environment.sh "$root" "$reports"
status=0
(cd "$build" && ctest --output-on-failure -j "$jobs" --timeout 900 "$@") || status=$?
done_at=$(date +%s)
if compgen -G "$reports/*" >/dev/null; then
  echo "sanitize: sanitizer reports (each fails the run):"
  for report in "$reports"/*; do
    echo "=== $report"
    cat "$report"
  done
  status=1
fi
echo "sanitize: build took $((built - start)) s, tests took $((done_at - built)) s"
exit "$status"
