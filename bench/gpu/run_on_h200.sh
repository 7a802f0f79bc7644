#!/usr/bin/env bash
# One-shot GPU check for a session lent an H200 for 15 minutes (issue 11): builds Kokkos 4.6 with CUDA
# (Kokkos_ARCH_HOPPER90) and skein with NCCL, runs the test suite, then poisson, hessian and dcdm workloads
# at 1 rank and at 2 ranks sharing the GPU, with comm.backend=mpi and =nccl (NCCL refuses two ranks on one
# device, so the 2-rank nccl rows record skein's clean refusal, exit 2; the 2-rank mpi rows are the
# shared-GPU numbers; NCCL between ranks needs a second GPU), and writes
# everything under bench/results/DATE-h200/ (and copies the summary files to $OUT when set).
#
# Sized for ~12 minutes on 16 cores: Kokkos ~3 min, skein ~4 min, tests <= 3 min (unit + mpi labels; the e2e,
# Slurm and Python-reference tests are cut: they measure nothing GPU-specific and need packages the image
# lacks), workloads <= 2.5 min (one run each, mid-size grids; the CPU references hypre, pyamg and PyHessian
# are cut: nothing can be fetched there, and their numbers are in bench/README.md).
#
# Run from the repository root on the device machine, e.g. with the device tool:
#   run(command="bench/gpu/run_on_h200.sh", carry=[".gpu"], timeout_s=780)
# Inputs, carried in .gpu/ (ignored by .gitignore), made by bench/gpu/make_sysroot.sh:
#   .gpu/kokkos-4.6.01.tar.gz  Kokkos' source (git -C KOKKOS_REPO archive --prefix=kokkos-4.6.01/ 4.6.01 | gzip)
#   .gpu/sysroot.tar.gz        skein's Debian 12 libraries (Open MPI, parallel HDF5, Boost.Program_options,
#                              simdjson, spdlog, OpenBLAS, GTest, ...), which the image lacks.
# Environment: SKEIN_GPU_JOBS (16), SKEIN_GPU_SKIP_TESTS=1, SKEIN_GPU_RESULTS (bench/results/DATE-h200).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
start=$(date +%s)
jobs=${SKEIN_GPU_JOBS:-16}
results=${SKEIN_GPU_RESULTS:-bench/results/$(date -u +%Y-%m-%d)-h200}
mkdir -p "$results"
summary="$results/summary.txt"
: >"$summary"
say() { echo "[$(($(date +%s) - start))s] $*" | tee -a "$summary"; }
finish() {
  say "done (exit $1)"
  if [[ -n "${OUT:-}" ]]; then cp "$results"/*.txt "$results"/*.json "$OUT"/ 2>/dev/null; fi
  exit "$1"
}

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export PATH=/usr/local/cuda/bin:$PATH
if [[ -f .gpu/sysroot.tar.gz ]] && ! command -v mpicxx >/dev/null; then
  # Debian 12 libraries unpacked by make_sysroot.sh: headers, libraries, Open MPI's runtime and mpirun.
  tar -xzf .gpu/sysroot.tar.gz -C /tmp
  sys=/tmp/sysroot
  # Debian names mpirun, mpicxx, h5pcc through update-alternatives, which dpkg -x does not run.
  for f in $sys/usr/bin/*.openmpi; do ln -sf "$(basename "$f")" "${f%.openmpi}"; done
  export PATH=$sys/usr/bin:$PATH
  export LD_LIBRARY_PATH=$sys/usr/lib/x86_64-linux-gnu:$sys/usr/lib/x86_64-linux-gnu/openmpi/lib:${LD_LIBRARY_PATH:-}
  export OPAL_PREFIX=$sys/usr CMAKE_PREFIX_PATH=$sys/usr:$sys/usr/lib/x86_64-linux-gnu/cmake
  export CPATH=$sys/usr/include:$sys/usr/include/x86_64-linux-gnu:${CPATH:-}
fi

{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  nvcc --version 2>&1 | tail -1
  mpirun --version 2>&1 | head -1
  cmake --version 2>&1 | head -1
  echo "cores: $(nproc)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
} >"$results/env.txt"
say "environment: $(tr '\n' ';' <"$results/env.txt")"
command -v mpirun >/dev/null || { say "no mpirun: carry .gpu/sysroot.tar.gz (bench/gpu/make_sysroot.sh)"; finish 1; }

# 1. Kokkos 4.6.01, CUDA + Serial, Hopper.
kokkos=/tmp/kokkos-4.6.01-cuda
if [[ ! -f $kokkos/lib/cmake/Kokkos/KokkosConfig.cmake && ! -f $kokkos/lib64/cmake/Kokkos/KokkosConfig.cmake ]]; then
  [[ -f .gpu/kokkos-4.6.01.tar.gz ]] || { say "missing .gpu/kokkos-4.6.01.tar.gz"; finish 1; }
  tar -xzf .gpu/kokkos-4.6.01.tar.gz -C /tmp
  src=/tmp/kokkos-4.6.01
  bench/gpu/kokkos-cuda13-fix.sh $src >/dev/null  # 4.6.01 predates CUDA 13's runtime API
  cmake -S $src -B /tmp/kokkos-build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD=17 \
    -DKokkos_ENABLE_CUDA=ON -DKokkos_ARCH_HOPPER90=ON -DKokkos_ENABLE_SERIAL=ON \
    -DCMAKE_CXX_COMPILER=$src/bin/nvcc_wrapper -DCMAKE_CXX_FLAGS=-arch=sm_90 \
    -DCMAKE_INSTALL_PREFIX=$kokkos >"$results/kokkos-configure.txt" 2>&1 &&
    cmake --build /tmp/kokkos-build -j "$jobs" >"$results/kokkos-build.txt" 2>&1 &&
    cmake --install /tmp/kokkos-build >>"$results/kokkos-build.txt" 2>&1 ||
    { say "Kokkos CUDA build failed (kokkos-*.txt)"; tail -20 "$results/kokkos-build.txt"; finish 1; }
fi
say "Kokkos CUDA ready"

# 2. skein with NCCL against it. NCCL: the CUDA toolkit's, else the pip wheel the image's PyTorch uses.
nccl_root=""
if [[ ! -f /usr/local/cuda/include/nccl.h ]]; then
  nccl_root=$(python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)
  [[ -n $nccl_root && ! -e $nccl_root/lib/libnccl.so ]] && ln -sf libnccl.so.2 "$nccl_root/lib/libnccl.so"
fi
build=build-h200
cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release -DKokkos_ROOT=$kokkos -DSKEIN_ENABLE_NCCL=ON ${nccl_root:+-DSKEIN_NCCL_ROOT=$nccl_root} >"$results/skein-configure.txt" 2>&1 ||
  { say "skein configure failed:"; tail -30 "$results/skein-configure.txt" | tee -a "$summary"; finish 1; }
grep -- "-- skein" "$results/skein-configure.txt" | tee -a "$summary"
targets=(skein test_nccl_collectives test_comm_backend test_communicator test_view_collectives)
if [[ -z "${SKEIN_GPU_SKIP_TESTS:-}" ]]; then targets=(all); fi
cmake --build $build -j "$jobs" --target "${targets[@]}" >"$results/skein-build.txt" 2>&1 ||
  { say "skein build failed:"; grep -m 20 -B2 -A6 "error" "$results/skein-build.txt" | tee -a "$summary"; finish 1; }
say "skein built"
skein=$root/$build/bin/skein

# 3. Tests: the NCCL-vs-MPI comparison first (it is the point), then the unit and MPI labels, time-boxed.
(cd $build && timeout 60 ctest -R "test_nccl_collectives|test_comm_backend" --output-on-failure) \
  >"$results/tests-nccl.txt" 2>&1
say "NCCL tests: $(grep -E 'tests passed|tests failed' "$results/tests-nccl.txt")"
if [[ -z "${SKEIN_GPU_SKIP_TESTS:-}" ]]; then
  (cd $build && timeout 180 ctest -L "unit|mpi" -j 8 --timeout 120 --output-on-failure) >"$results/tests.txt" 2>&1
  say "suite (unit + mpi labels): $(grep -E 'tests passed|tests failed' "$results/tests.txt")"
  grep -E "^\s+[0-9]+ - .*(Failed|Timeout|Exception)" "$results/tests.txt" | tee -a "$summary"
fi

# 4. Workloads: one run each, wall seconds plus the job's own timings from its output file.
work=/tmp/skein-gpu-work
rm -rf $work && mkdir -p $work
runs=$results/runs.txt
: >"$runs"
run_job() {  # NAME RANKS BACKEND -- skein run arguments
  local name=$1 ranks=$2 backend=$3
  shift 4
  local out=$work/$name-np$ranks-$backend t0 t1 code
  t0=$(date +%s.%N)
  timeout 120 mpirun -np "$ranks" --bind-to none "$skein" run "$@" --out "$out" --comm.backend="$backend" \
    >"$out.log" 2>&1
  code=$?
  t1=$(date +%s.%N)
  printf '%s np=%s backend=%s exit=%s wall=%.2fs\n' "$name" "$ranks" "$backend" "$code" \
    "$(awk "BEGIN { print $t1 - $t0 }")" | tee -a "$summary" >>"$runs"
  grep -h "communication:" "$out.log" | head -1 >>"$runs"
  local h5
  h5=$(ls "$out"/*.h5 2>/dev/null | grep -v checkpoint | head -1)
  if [[ -n $h5 ]]; then "$skein" inspect "$h5" 2>&1 | grep -E "seconds|iterations|residual|eigen|converged" |
    head -20 >>"$runs"; else tail -5 "$out.log" >>"$runs"; fi
}
poisson=(poisson --poisson.problem=manufactured --poisson.grid=256 --poisson.tol=1e-8)
for ranks in 1 2; do
  for backend in mpi nccl; do
    run_job poisson-mgpcg "$ranks" "$backend" -- "${poisson[@]}" --poisson.solver=mgpcg
  done
  run_job poisson-cg "$ranks" nccl -- "${poisson[@]}" --poisson.solver=cg
done
say "poisson done"

# hessian: the bench's MLP shape (784-1024-512-10, tanh) on a 10,000-sample Gaussian mixture (numpy + h5py).
python3 tools/hessian/make_data.py mixture --dim 784 --n 10000 --out $work/data.h5 >/dev/null 2>&1 &&
  python3 tools/hessian/make_model.py --layers 784,1024,512,10 --out $work/model.h5 >/dev/null 2>&1
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
  say "hessian skipped: make_data.py / make_model.py failed (numpy, h5py?)"
fi
say "hessian done"

# dcdm: a short training at 32^3 (the CNN's gradient allreduce is the NCCL path at 2 ranks), then DCDM
# against CG on the smoke problem with that model.
for ranks in 1 2; do
  for backend in mpi nccl; do
    run_job dcdm-train "$ranks" "$backend" -- dcdm-train --dcdm-train.problem=smoke --dcdm-train.grid=32 \
      --dcdm-train.epochs=2 --dcdm-train.ritz_vectors=200 --dcdm-train.train_vectors=200
  done
done
model=$(ls $work/dcdm-train-np1-nccl/*.h5 2>/dev/null | grep -v checkpoint | head -1)
if [[ -n $model ]]; then
  run_job poisson-dcdm 1 nccl -- poisson --poisson.problem=smoke --poisson.grid=32 --poisson.tol=1e-4 \
    --poisson.solver=dcdm --poisson.model="$model"
  run_job poisson-dcdm 2 nccl -- poisson --poisson.problem=smoke --poisson.grid=32 --poisson.tol=1e-4 \
    --poisson.solver=dcdm --poisson.model="$model"
  run_job poisson-smoke-cg 1 nccl -- poisson --poisson.problem=smoke --poisson.grid=32 --poisson.tol=1e-4 \
    --poisson.solver=cg
fi
say "dcdm done; total $(($(date +%s) - start)) s"
finish 0
