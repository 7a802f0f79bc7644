#!/usr/bin/env bash
# One-shot GPU check for a session lent an H200 (issue 11): builds Kokkos 4.6 with CUDA (Kokkos_ARCH_HOPPER90)
# and skein with NCCL, runs the NCCL-vs-MPI tests, poisson, hessian and dcdm workloads at 1 rank and at 2 ranks
# sharing the GPU, with comm.backend=mpi and =nccl (NCCL refuses two ranks on one device, so the 2-rank nccl
# rows record skein's clean refusal, exit 2; the 2-rank mpi rows are the shared-GPU numbers), then builds the
# rest of the suite and runs its unit + mpi labels with the time left. Everything goes under
# bench/results/DATE-h200/ (and the summary files to $OUT when set).
#
# A device command may run 600 s at most, so the script watches a budget (SKEIN_GPU_BUDGET_S, default 570 s)
# and is resumable: every phase skips what is already done (Kokkos installed, skein configured, objects
# built, workloads with a row in runs.txt), so when a call ends with "rerun to resume" the same command in
# the next call (while the machine is still warm: 30 s) carries on. Estimated for 16 cores from the CPU time
# of the build on the project's machine (README "Building for GPUs"; not yet measured there): Kokkos 0 min
# when its install is carried (else ~3); skein and the NCCL tests ~4-5 min (cnn3d.cpp alone is the longest
# file); workloads ~3 min; the rest of the suite's build and run ~5 min more, i.e. a second call, which a
# 15-minute lease (machine start included) may not leave room for: the workloads come first.
#
# With .gpu/prebuilt.tar.xz (bench/gpu/pack_prebuilt.sh: the same CUDA build, compiled and linked on the
# project's machine) nothing is compiled here: the NCCL tests, then the unit + mpi suite (bounded by
# SKEIN_GPU_SUITE_S, 200 s), then the workloads, all in one call of ~6-8 minutes.
# Run from the repository root on the device machine, e.g. with the device tool:
#   run(command="bench/gpu/run_on_h200.sh", carry=[".gpu"], timeout_s=600)
# Inputs, carried in .gpu/ (ignored by .gitignore), made here by bench/gpu/make_sysroot.sh in the checkout
# the device tool sends (the session's own):
#   .gpu/kokkos-4.6.01-cuda-install.tar.gz  Kokkos CUDA as installed on the project's machine (used if there)
#   .gpu/kokkos-4.6.01.tar.gz  Kokkos' source (built here otherwise)
#   .gpu/sysroot.tar.gz        skein's Debian 12 libraries (Open MPI, parallel HDF5, Boost.Program_options,
#                              simdjson, spdlog, OpenBLAS, GTest, pkg-config, ...), which the image lacks.
# Environment: SKEIN_GPU_JOBS (16), SKEIN_GPU_BUDGET_S (570), SKEIN_GPU_RESULTS (bench/results/DATE-h200),
#   SKEIN_GPU_BUILD (build-h200), SKEIN_GPU_SKIP_SUITE=1 (no full suite), and for a dry run of the workloads
#   on a CPU build: SKEIN_GPU_NO_BUILD=1 SKEIN_GPU_BUILD=build-omp SKEIN_GPU_SMALL=1.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
start=$(date +%s)
jobs=${SKEIN_GPU_JOBS:-16}
budget=${SKEIN_GPU_BUDGET_S:-570}
build=${SKEIN_GPU_BUILD:-build-h200}
small=${SKEIN_GPU_SMALL:-}
python=${SKEIN_GPU_PYTHON:-python3}
results=${SKEIN_GPU_RESULTS:-bench/results/$(date -u +%Y-%m-%d)-h200}
mkdir -p "$results"
summary="$results/summary.txt"
touch "$summary"
say() { echo "[$(($(date +%s) - start))s] $*" | tee -a "$summary"; }
left() { echo $((budget - ($(date +%s) - start))); }
finish() {
  say "done (exit $1)"
  if [[ -n "${OUT:-}" ]]; then cp "$results"/*.txt "$results"/*.json "$OUT"/ 2>/dev/null; fi
  exit "$1"
}
# Ends the call when fewer than $1 seconds are left, so that a rerun resumes here.
need() {
  if (($(left) < $1)); then
    say "$(left) s left, $2 needs ~$1 s: rerun the same command to resume"
    finish 3
  fi
}

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export PATH=/usr/local/cuda/bin:$PATH
if [[ -f .gpu/sysroot.tar.gz ]] && { ! command -v mpicxx >/dev/null || [[ -f .gpu/prebuilt.tar.xz && -z ${SKEIN_GPU_NO_BUILD:-} ]]; }; then
  [[ -d /tmp/sysroot ]] || tar -xzf .gpu/sysroot.tar.gz -C /tmp
  # shellcheck source=bench/gpu/sysroot_env.sh
  source bench/gpu/sysroot_env.sh /tmp/sysroot
fi

if [[ ! -f $results/env.txt ]]; then
  {
    echo "date: $(date -u +%FT%TZ)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
    nvcc --version 2>&1 | tail -1
    mpirun --version 2>&1 | head -1
    cmake --version 2>&1 | head -1
    g++ --version 2>&1 | head -1
    echo "cores: $(nproc)"
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  } >"$results/env.txt"
fi
say "environment: $(tr '\n' ';' <"$results/env.txt")"
command -v mpirun >/dev/null || { say "no mpirun: carry .gpu/sysroot.tar.gz (bench/gpu/make_sysroot.sh)"; finish 1; }

# NCCL, to build against and to run with: the CUDA toolkit's, else the pip wheel the image's PyTorch uses
# (nccl_root: the wheel's folder with include/nccl.h and lib/libnccl.so.2).
nccl_root=""
if [[ ! -f /usr/local/cuda/include/nccl.h ]]; then
  header=$(env -u LD_LIBRARY_PATH python3 -c 'import nvidia, os; [print(os.path.join(r, "nccl.h")) for p in nvidia.__path__ for r, _, f in os.walk(p) if "nccl.h" in f]' 2>/dev/null | head -1)
  if [[ -n $header ]]; then
    nccl_root=$(dirname "$(dirname "$header")")
    export LD_LIBRARY_PATH=$nccl_root/lib:${LD_LIBRARY_PATH:-}
  fi
fi
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}

# 0. A build made on the project's machine (bench/gpu/pack_prebuilt.sh), carried in .gpu/: no compiling here.
#    Its CTest files name that machine's absolute paths, so this checkout is linked there.
prebuilt=""
if [[ -f .gpu/prebuilt.tar.xz && -z ${SKEIN_GPU_NO_BUILD:-} ]]; then
  prebuilt_path=$(cat .gpu/prebuilt-path)
  link=$(dirname "$prebuilt_path")
  if [[ ! -e $link ]]; then
    mkdir -p "$(dirname "$link")" && ln -s "$root" "$link"
  elif [[ $(realpath "$link") != "$(realpath "$root")" ]]; then
    say "$link exists and is not this checkout: cannot place the carried build"; finish 1
  fi
  build=$(basename "$prebuilt_path")
  if [[ ! -x $build/bin/skein ]]; then
    mkdir -p "$build"
    env -u LD_LIBRARY_PATH python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
      .gpu/prebuilt.tar.xz "$build" || { say "could not unpack .gpu/prebuilt.tar.xz"; finish 1; }
    chmod -R u+x "$build/bin" "$build/tests"
  fi
  # ctest's MPI entries name Debian's /usr/bin/mpiexec: the sysroot's instead (an image's own Open MPI there
  # would launch the sysroot's, mixing versions).
  find "$build" -name CTestTestfile.cmake -exec sed -i "s|\"/usr/bin/mpiexec\"|\"$(command -v mpiexec)\"|g" {} +
  say "carried build: $prebuilt_path ($(ls "$build/tests" | grep -c '^test_') test executables); missing libraries: $(ldd "$build/bin/skein" | grep -c 'not found')"
  ldd "$build/bin/skein" | grep 'not found' | tee -a "$summary"
  prebuilt=1
fi


if [[ -z ${SKEIN_GPU_NO_BUILD:-} && -z $prebuilt ]]; then
  # 1. Kokkos 4.6.01, CUDA + Serial, Hopper, with Kokkos' nvcc_wrapper; CUDA 13's nvcc refuses
  #    nvcc_wrapper's default sm_70, hence -arch=sm_90 for CMake's compiler check.
  kokkos=/tmp/kokkos-4.6.01-cuda
  if [[ ! -d $kokkos && -f .gpu/kokkos-4.6.01-cuda-install.tar.gz ]]; then
    # Built on the project's machine with the same CUDA 13.0 (make_sysroot.sh packs it).
    tar -xzf .gpu/kokkos-4.6.01-cuda-install.tar.gz -C /tmp && say "Kokkos CUDA: the carried install"
  fi
  if [[ ! -f $kokkos/lib/cmake/Kokkos/KokkosConfig.cmake && ! -f $kokkos/lib64/cmake/Kokkos/KokkosConfig.cmake ]]; then
    [[ -f .gpu/kokkos-4.6.01.tar.gz ]] || { say "missing .gpu/kokkos-4.6.01.tar.gz"; finish 1; }
    src=/tmp/kokkos-4.6.01
    [[ -d $src ]] || tar -xzf .gpu/kokkos-4.6.01.tar.gz -C /tmp
    bench/gpu/kokkos-cuda13-fix.sh $src >/dev/null # 4.6.01 predates CUDA 13's runtime API
    [[ -f /tmp/kokkos-build/build.ninja ]] ||
      cmake -S $src -B /tmp/kokkos-build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD=17 \
        -DKokkos_ENABLE_CUDA=ON -DKokkos_ARCH_HOPPER90=ON -DKokkos_ENABLE_SERIAL=ON \
        -DCMAKE_CXX_COMPILER=$src/bin/nvcc_wrapper -DCMAKE_CXX_FLAGS=-arch=sm_90 \
        -DCMAKE_INSTALL_PREFIX=$kokkos >"$results/kokkos-configure.txt" 2>&1 ||
      { say "Kokkos configure failed (kokkos-configure.txt)"; finish 1; }
    timeout $(($(left) - 30)) cmake --build /tmp/kokkos-build -j "$jobs" >>"$results/kokkos-build.txt" 2>&1
    code=$?
    ((code == 124)) && need 99999 "the Kokkos build"
    ((code == 0)) && cmake --install /tmp/kokkos-build >>"$results/kokkos-build.txt" 2>&1 ||
      { say "Kokkos CUDA build failed (kokkos-build.txt)"; tail -20 "$results/kokkos-build.txt"; finish 1; }
    say "Kokkos CUDA built"
  fi

  # 2. skein with NCCL (found above) against it.
  if [[ ! -f $build/build.ninja ]]; then
    if [[ -n $nccl_root && ! -e $nccl_root/lib/libnccl.so ]]; then ln -sf libnccl.so.2 "$nccl_root/lib/libnccl.so"; fi
    cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKokkos_ROOT=$kokkos -DSKEIN_ENABLE_NCCL=ON \
      ${nccl_root:+-DSKEIN_NCCL_ROOT=$nccl_root} >"$results/skein-configure.txt" 2>&1 ||
      { say "skein configure failed:"; tail -30 "$results/skein-configure.txt" | tee -a "$summary"; finish 1; }
    grep -- "-- skein" "$results/skein-configure.txt" | tee -a "$summary"
  fi
  first=(skein test_nccl_collectives test_comm_backend test_communicator test_view_collectives)
  timeout $(($(left) - 30)) cmake --build $build -j "$jobs" --target "${first[@]}" >>"$results/skein-build.txt" 2>&1
  code=$?
  ((code == 124)) && need 99999 "skein's build"
  ((code == 0)) || { say "skein build failed:"; grep -m 20 -B2 -A6 "error" "$results/skein-build.txt" | tee -a "$summary"; finish 1; }
  say "skein built"
fi
skein=$root/$build/bin/skein

# 3. The NCCL-vs-MPI comparison first (it is the point).
if ! grep -q "tests passed\|tests failed" "$results/tests-nccl.txt" 2>/dev/null; then
  need 160 "the NCCL tests"
  (cd $build && timeout 150 ctest -R "^(test_nccl_collectives|test_comm_backend|test_communicator|test_view_collectives)\.np" \
    --output-on-failure) >"$results/tests-nccl.txt" 2>&1
  say "NCCL tests: $(grep -E 'tests passed|tests failed' "$results/tests-nccl.txt")"
fi

# 5. The rest of the suite: build what is left, then the unit and mpi labels (the e2e, Slurm and Python
# tests measure nothing GPU-specific and need what the image lacks), each bounded by the time left.
# With a carried build (nothing to compile) it runs before the workloads, bounded by SKEIN_GPU_SUITE_S (200 s):
# a wrong result in a kernel matters more than a timing.
run_suite() {
  grep -q "tests passed\|tests failed" "$results/tests.txt" 2>/dev/null && return # done in an earlier call
  if [[ -z ${SKEIN_GPU_SKIP_SUITE:-} && -z ${SKEIN_GPU_NO_BUILD:-} ]]; then
    if [[ -z $prebuilt ]]; then
      need 120 "the rest of the suite's build"
      timeout $(($(left) - 90)) cmake --build $build -j "$jobs" >>"$results/skein-build.txt" 2>&1
      code=$?
      ((code == 124)) && need 99999 "the rest of the suite's build"
      ((code == 0)) || { say "suite build failed:"; grep -m 20 -B2 -A6 "error" "$results/skein-build.txt" | tee -a "$summary"; finish 1; }
      say "suite built"
    fi
    need 60 "the suite"
    (cd $build && timeout $(($(left) - 20 < suite_s ? $(left) - 20 : suite_s)) ctest -L "unit|mpi" -j 10 --timeout 120 --output-on-failure) \
      >"$results/tests.txt" 2>&1
    say "suite (unit + mpi labels): $(grep -E 'tests passed|tests failed' "$results/tests.txt" || echo 'cut short by the budget')"
    grep -E "^\s+[0-9]+ - .*(Failed|Timeout|Exception)" "$results/tests.txt" | tee -a "$summary"
  fi
}
suite_s=${SKEIN_GPU_SUITE_S:-200}
[[ -n $prebuilt ]] && run_suite

# 4. Workloads: one run each, wall seconds plus the job's own timings from its output file.
work=/tmp/skein-gpu-work
mkdir -p $work
runs=$results/runs.txt
touch "$runs"
run_job() { # NAME RANKS BACKEND -- skein run arguments
  local name=$1 ranks=$2 backend=$3
  shift 4
  local out=$work/$name-np$ranks-$backend t0 t1 code
  grep -q "^$name np=$ranks backend=$backend " "$runs" && return 0 # done in an earlier call
  need 100 "$name np=$ranks backend=$backend"
  rm -rf "$out"
  t0=$(date +%s.%N)
  timeout 90 mpirun -np "$ranks" --bind-to none "$skein" run "$@" --out "$out" --comm.backend="$backend" \
    >"$out.log" 2>&1
  code=$?
  t1=$(date +%s.%N)
  printf '%s np=%s backend=%s exit=%s wall=%.2fs\n' "$name" "$ranks" "$backend" "$code" \
    "$(awk "BEGIN { print $t1 - $t0 }")" | tee -a "$summary" >>"$runs"
  grep -h "communication:" "$out.log" | head -1 >>"$runs"
  local h5
  h5=$(ls "$out"/*.h5 2>/dev/null | grep -v checkpoint | head -1)
  if [[ -n $h5 ]]; then
    "$skein" inspect "$h5" 2>&1 | grep -E "seconds|iterations|residual|eigen|converged" | head -20 >>"$runs"
  else # skein's own first and last lines (a refusal, an error, the last progress line), else the log's end
    { grep "^skein: " "$out.log" | head -3 && grep "^skein: " "$out.log" | tail -n +4 | tail -2; } >>"$runs"
    grep -q "^skein: " "$out.log" || tail -5 "$out.log" >>"$runs"
  fi
}
grid=256 mlp=784,1024,512,10 samples=10000 dim=784 dcdm_grid=32
[[ -n $small ]] && grid=32 mlp=16,8,10 samples=200 dim=16 dcdm_grid=16
poisson=(poisson --poisson.problem=manufactured --poisson.grid=$grid --poisson.tol=1e-8)
for ranks in 1 2; do
  for backend in mpi nccl; do
    run_job poisson-mgpcg "$ranks" "$backend" -- "${poisson[@]}" --poisson.solver=mgpcg
  done
  run_job poisson-cg "$ranks" nccl -- "${poisson[@]}" --poisson.solver=cg
done
say "poisson done"

# dcdm: a short training (the CNN's gradient allreduce is the NCCL path at 2 ranks; 50 samples: on
# 2026-11-30 400 did not finish in 90 s, the CNN's kernels being a CPU design), then DCDM against CG on the
# smoke problem with that model. Its "s per sample" line is the figure to compare (0.23 s on one CPU core).
for ranks in 1 2; do
  for backend in mpi nccl; do
    run_job dcdm-train "$ranks" "$backend" -- dcdm-train --dcdm-train.problem=smoke \
      --dcdm-train.grid=$dcdm_grid --dcdm-train.epochs=1 --dcdm-train.ritz_vectors=200 \
      --dcdm-train.train_vectors=50
  done
done
model=$(ls $work/dcdm-train-np*/*.h5 2>/dev/null | grep -v checkpoint | head -1)
if [[ -n $model ]]; then
  smoke=(poisson --poisson.problem=smoke --poisson.grid=$dcdm_grid --poisson.tol=1e-4)
  run_job poisson-dcdm 1 nccl -- "${smoke[@]}" --poisson.solver=dcdm --poisson.model="$model"
  run_job poisson-dcdm 2 mpi -- "${smoke[@]}" --poisson.solver=dcdm --poisson.model="$model"
  run_job poisson-smoke-cg 1 nccl -- "${smoke[@]}" --poisson.solver=cg
fi
say "dcdm done"

# hessian: the bench's MLP shape (784-1024-512-10, tanh) on a 10,000-sample Gaussian mixture (numpy + h5py
# of the image's python3, run without the sysroot's libraries).
if [[ ! -f $work/model.h5 ]]; then
  env -u LD_LIBRARY_PATH "$python" tools/hessian/make_data.py mixture --dim $dim --n $samples --out $work/data.h5 \
    >"$work/make_data.log" 2>&1 &&
    env -u LD_LIBRARY_PATH "$python" tools/hessian/make_model.py --layers $mlp --out $work/model.h5 \
      >"$work/make_model.log" 2>&1
fi
if [[ -f $work/model.h5 ]]; then
  hessian=(hessian --hessian.model=$work/model.h5 --hessian.data=$work/data.h5 --hessian.top_k=5
    --hessian.trace_samples=10 --hessian.slq_vectors=1 --hessian.slq_steps=50)
  for ranks in 1 2; do
    for backend in mpi nccl; do
      run_job hessian-float32 "$ranks" "$backend" -- "${hessian[@]}" --hessian.precision=float32
    done
  done
  run_job hessian-float64 1 nccl -- "${hessian[@]}" --hessian.precision=float64
else
  say "hessian skipped: make_data.py / make_model.py failed: $(tail -2 $work/make_*.log | tr '\n' ' ')"
fi
say "hessian done"

[[ -z $prebuilt ]] && suite_s=99999 && run_suite
say "total $(($(date +%s) - start)) s"
finish 0
