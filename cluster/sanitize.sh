#!/usr/bin/env bash
# The sanitizer build: configures build-asan with -DSKEIN_SANITIZE=ON (AddressSanitizer + UBSan), builds it
# and runs the whole test suite (MPI tests included) under the run-time options and leak suppressions of
# cluster/sanitizers/, printing how long the build and the tests took (wall and CPU seconds: on a shared
# machine the CPU seconds / cores estimate the quiet wall time). Any sanitizer finding fails the run.
# The suite runs in two phases: the unit and MPI tests (labels unit, mpi) with LeakSanitizer on, then the
# rest (e2e, slurm: hundreds of skein processes) with ASan and UBSan but without the leak check, whose exit
# scan with the slow unwinder the Open MPI suppressions need costs ~1.5 CPU s per process (see README
# "Testing"); the leak check still covers the library code through the in-process unit and MPI tests.
# Usage: cluster/sanitize.sh [extra ctest arguments for both phases, e.g. -R test_hdf5]
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

# CPU seconds (user + sys) of this script's finished children so far, into the variable named $1: bash's
# `times`, run in this shell (a subshell's children start from zero), its second line.
times_file=$(mktemp)
trap 'rm -f "$times_file"' EXIT
cpu_seconds() {
  times >"$times_file"
  printf -v "$1" '%s' "$(awk 'function sec(t, m) { m = t; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", t); sub(/s$/, "", t); return m * 60 + t }
    NR == 2 { printf "%d", sec($1) + sec($2) }' "$times_file")"
}

start=$(date +%s)
cpu_seconds cpu_start
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSKEIN_SANITIZE=ON "${launcher[@]}"
cmake --build "$build" -j "$jobs"
built=$(date +%s)
cpu_seconds cpu_built
echo "sanitize: build took $((built - start)) s ($((cpu_built - cpu_start)) CPU s)"

# The reports of this run only; the options are set for the tests, not for the compilers above.
reports=$(cd "$build" && pwd)/sanitizer-reports
rm -rf "$reports"
mkdir -p "$reports"
# shellcheck source=sanitizers/environment.sh
source cluster/sanitizers/environment.sh "$root" "$reports"
status=0
(cd "$build" && ctest --output-on-failure -j "$jobs" --timeout 900 -L 'unit|mpi' "$@") || status=$?
leak_checked_at=$(date +%s)
cpu_seconds cpu_leak_checked
echo "sanitize: unit and MPI tests (leak check on) took $((leak_checked_at - built)) s" \
  "($((cpu_leak_checked - cpu_built)) CPU s)"
# fast_unwind_on_malloc: without the leak check no stack needs a module name, so the default fast unwinder.
(
  export ASAN_OPTIONS="${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0}"
  unset LSAN_OPTIONS
  cd "$build" && ctest --output-on-failure -j "$jobs" --timeout 900 -LE 'unit|mpi' "$@"
) || status=$?
done_at=$(date +%s)
cpu_seconds cpu_done
echo "sanitize: e2e and slurm tests (no leak check) took $((done_at - leak_checked_at)) s" \
  "($((cpu_done - cpu_leak_checked)) CPU s)"
if compgen -G "$reports/*" >/dev/null; then
  echo "sanitize: sanitizer reports (each fails the run):"
  for report in "$reports"/*; do
    echo "=== $report"
    cat "$report"
  done
  status=1
fi
echo "sanitize: build took $((built - start)) s ($((cpu_built - cpu_start)) CPU s), tests took" \
  "$((done_at - built)) s ($((cpu_done - cpu_built)) CPU s) on $jobs cores"
exit "$status"
