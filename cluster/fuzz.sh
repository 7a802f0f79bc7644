#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang, ASan + UBSan, build folder build-fuzz) and runs each for
# SECONDS (default 60) from its seed corpus and saved regressions; fails on a crash, a sanitizer report, a
# leak or a hang (-timeout=10 s per input). Crash inputs land in build-fuzz/fuzz/findings/. Prints the time
# of each step. Usage: cluster/fuzz.sh [SECONDS | --build-only]
#
# fuzz_hdf5_raw (the input's bytes as an HDF5 file) runs for SECONDS/2 and fails only on a crash in skein's
# code: a corrupt file can crash or hang the HDF5 library itself, which skein cannot guard against, so it runs
# forked, logs such crashes (counted at the end) and goes on fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build_only=false
if [[ $seconds == --build-only ]]; then
  build_only=true
elif ! [[ $seconds =~ ^[0-9]+$ ]]; then
  echo "usage: $0 [SECONDS | --build-only]" >&2
  exit 2
fi
build=${SKEIN_FUZZ_BUILD_DIR:-build-fuzz}
jobs=$(nproc)
targets=(jsonl config plink hdf5 hdf5_raw)

# clang and its libFuzzer runtime, beside what cluster/quickstart.sh installs.
missing=()
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  echo "fuzz.sh: installing ${missing[*]}"
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# LeakSanitizer: third-party allocations only (fuzz/lsan.supp, fuzz/lsan_<target>.supp say which and why).
# intercept_tls_get_addr=0: clang 14's runtime can record a garbage dynamic-TLS range that crashes the leak
# check's tracer (see cluster/sanitizers/environment.sh).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1:intercept_tls_get_addr=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

step_start=$(date +%s)
step() {
  local now
  now=$(date +%s)
  printf 'fuzz.sh: %-40s %4d s\n' "$1" $((now - step_start))
  step_start=$now
}

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
CC=clang CXX=clang++ cmake -S . -B "$build" -DSKEIN_FUZZ=ON -DSKEIN_ENABLE_TESTS=OFF -DCMAKE_BUILD_TYPE=Debug \
  "-DCMAKE_C_FLAGS_DEBUG=-O1 -gline-tables-only" "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -gline-tables-only" \
  "${launcher[@]}" >/dev/null
step "configure $build"
cmake --build "$build" -j "$jobs" --target "${targets[@]/#/fuzz_}"
step "build the fuzz targets"
if $build_only; then
  exit 0
fi

# The first frame of each report in log $1 outside the sanitizer runtime, libc and libFuzzer (whose code
# crashed), one line per report; "?" for a report without one. Reports: the sanitizers' and, unless $2 is
# "sanitizers", libFuzzer's own (a timeout, an out-of-memory, a deadly signal).
report_first_frames() {
  local start='==[0-9]+== ?ERROR: |runtime error:'
  [[ ${2:-} == sanitizers ]] && start='==[0-9]+==ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:'
  awk -v start="$start" '$0 ~ start { if (open) print "?"; open = 1; next }
       open && /^ +#[0-9]+ / && !/libclang_rt|compiler-rt|__asan|__ubsan|__sanitizer|libc\.so|libstdc\+\+|__interceptor|abort|fuzzer::| in (malloc|calloc|realloc|free|operator new)/ { print; open = 0 }
       END { if (open) print "?" }' "$1"
}

findings=$build/fuzz/findings
mkdir -p "$findings"
failed=()
for target in "${targets[@]}"; do
  run_seconds=$seconds
  [[ $target == hdf5_raw ]] && run_seconds=$(((seconds + 1) / 2))
  # libFuzzer adds what it finds to the first corpus folder: a scratch copy, so the repository's stays small.
  corpus=$(mktemp -d)
  cp fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  cp fuzz/regressions/"$target"/* "$corpus"/ 2>/dev/null || true
  log=$findings/$target.log
  extra=()
  [[ -f fuzz/$target.dict ]] && extra+=(-dict="fuzz/$target.dict")
  # hdf5: a list of edits, so longer inputs from the start; hdf5_raw: forked, so that a hang or an
  # out-of-memory inside the HDF5 library (a corrupt global heap can make H5Aread loop) does not end the run.
  [[ $target == hdf5 ]] && extra+=(-max_len=512 -len_control=0)
  [[ $target == hdf5_raw ]] && extra+=(-fork=1 -ignore_timeouts=1 -ignore_ooms=1 -ignore_crashes=1)
  supp=fuzz/lsan.supp
  [[ -f fuzz/lsan_$target.supp ]] && supp=fuzz/lsan_$target.supp
  set +e
  LSAN_OPTIONS=${SKEIN_FUZZ_LSAN_OPTIONS:-suppressions=$PWD/$supp:print_suppressions=0} "$build/fuzz/fuzz_$target" "$corpus" "${extra[@]}" -max_total_time="$run_seconds" -timeout=10 -rss_limit_mb=4096 \
    -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$findings/$target-" >"$log" 2>&1
  code=$?
  set -e
  rm -rf "$corpus"
  summary=$(grep -E '^#[0-9]+[[:space:]]+DONE|^#[0-9]+: cov' "$log" | tail -1 || true)
  step "fuzz_$target ($run_seconds s): ${summary:-no summary}"
  if [[ $target == hdf5_raw ]]; then
    # Crashes were logged and fuzzing went on: each report's first frame says whose code it was (hangs and
    # out-of-memory are ignored, as libFuzzer was told).
    frames=$(report_first_frames "$log" sanitizers)
    inside_hdf5=$(grep -c libhdf5 <<<"$frames" || true)
    outside=$(grep -v libhdf5 <<<"$frames" | grep -v '^$' || true)
    if ((inside_hdf5)); then
      echo "fuzz.sh: fuzz_hdf5_raw: $inside_hdf5 crash(es) inside the HDF5 library (not skein's): not failing"
    fi
    if [[ -n $outside ]] || { ((code != 0)) && [[ -z $frames ]]; }; then
      echo "fuzz.sh: fuzz_hdf5_raw crashed outside the HDF5 library (exit $code); first frames:" >&2
      echo "${outside:-?}" >&2
      tail -n 60 "$log" >&2
      failed+=("$target")
    fi
  elif ((code != 0)); then
    frame=$(report_first_frames "$log" | head -1)
    echo "fuzz.sh: fuzz_$target crashed (exit $code); first frame: ${frame:-?}" >&2
    tail -n 60 "$log" >&2
    failed+=("$target")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz.sh: FAILED: ${failed[*]} (inputs and logs in $findings)" >&2
  exit 1
fi
echo "fuzz.sh: every target ran ${seconds} s without a crash"
