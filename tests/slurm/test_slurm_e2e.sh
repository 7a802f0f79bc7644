#!/usr/bin/env bash
# `skein submit` end to end on a real single-node Slurm, started here by cluster/local-slurm.sh (which
# installs slurm-wlm and munge with apt when they are missing).
#   1. a dsir job with 2 tasks (srun, then --launcher mpirun): completes, its output is what
#      `mpirun -np 2 skein run` writes;
#   2. preemption: a longer dsir job gets `scancel --signal=USR2 --batch` while it runs; it must checkpoint,
#      exit 75, be requeued by its batch script, resume, and end with the same selection as an uninterrupted
#      mpirun run;
#   3. a staged dsir run: fit, then scoring as a 3-task array (dsir.shard=array), then the merge, each waiting
#      for the one before (--dependency=afterok): the selection of test 1's one run, byte for byte.
# Exit 77 (ctest SKIP_RETURN_CODE) only when Slurm cannot be installed or started here.
# Usage: test_slurm_e2e.sh SKEIN REPO_ROOT TEST_DATA_DIR
set -euo pipefail

skein=$1
root=$2
data=$3
state=${SKEIN_SLURM_DIR:-/var/tmp/skein-slurm}
export SLURM_CONF=$state/slurm.conf
if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1

say() { echo "slurm-e2e: $*"; }
skip() {
  echo "slurm-e2e: SKIPPED: $*" >&2
  exit 77
}

work=$(mktemp -d /tmp/skein-slurm-e2e-XXXXXX)
chmod 755 "$work"
jobs_submitted=()
started_here=0
passed=0
cleanup() {
  for id in "${jobs_submitted[@]}"; do scancel "$id" >/dev/null 2>&1 || true; done
  if ((started_here)); then "$root/cluster/local-slurm.sh" stop >/dev/null 2>&1 || true; fi
  if ((passed)); then rm -rf "$work"; else echo "slurm-e2e: files kept in $work" >&2; fi
}
trap cleanup EXIT

fail() {
  echo "slurm-e2e: FAIL: $*" >&2
  for log in "$work"/*/slurm-*.log; do
    [[ -e $log ]] || continue
    echo "---- $log" >&2
    tail -n 40 "$log" >&2
  done
  for id in "${jobs_submitted[@]}"; do scontrol show job "$id" >&2 2>/dev/null || true; done
  exit 1
}

# ---- Slurm ----
"$skein" submit --help >/dev/null 2>&1 || fail "$skein has no working 'submit' command"
if [[ $(id -u) -ne 0 ]] && ! sudo -n true 2>/dev/null; then
  skip "installing and starting Slurm needs root or passwordless sudo"
fi
if "$root/cluster/local-slurm.sh" status >/dev/null 2>&1; then
  say "using the local Slurm that is already running"
else
  set +e
  "$root/cluster/local-slurm.sh" start
  rc=$?
  set -e
  case $rc in
    0) started_here=1 ;;
    3) skip "Slurm could not be installed (cluster/local-slurm.sh start exited 3; see above)" ;;
    4)
      started_here=1
      skip "Slurm could not be started on this machine (cluster/local-slurm.sh start exited 4; see above)"
      ;;
    *) fail "cluster/local-slurm.sh start exited $rc" ;;
  esac
fi

# Prints the job's field (JobState, ExitCode, Restarts, Reason) from `scontrol show job`.
job_field() { scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }

# Waits until job $1 is in a final state (deadline $2 seconds); prints it.
wait_done() {
  local id=$1 deadline=$((SECONDS + $2)) job_state=""
  while ((SECONDS < deadline)); do
    job_state=$(job_field "$id" JobState)
    case "$job_state" in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
        echo "$job_state"
        return 0
        ;;
    esac
    sleep 1
  done
  fail "job $id did not finish within $2 s (state '$job_state')"
}

# Waits until file $1 contains the fixed string $2 (deadline $3 seconds).
wait_for_line() {
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  fail "'$2' did not appear in $1 within $3 s"
}

# Submits; sets job_id (not in a subshell, so that cleanup knows the job).
submit() {
  job_id=$("$skein" submit "$@") || fail "skein submit $* failed"
  [[ $job_id =~ ^[0-9]+$ ]] || fail "skein submit printed '$job_id', not a job id"
  jobs_submitted+=("$job_id")
}

# ---- 1. a dsir job with 2 tasks ----
cat >"$work/small.ini" <<EOF
[dsir]
target = $data/brown_target.jsonl
raw = $data/brown_raw.jsonl
num_select = 100
EOF
say "1. dsir with 2 tasks"
submit dsir --config "$work/small.ini" --nodes 1 --ntasks-per-node 2 --time 00:05:00 --out "$work/small"
id=$job_id
log=$work/small/slurm-$id.log
[[ -s $work/small/submit.sbatch ]] || fail "no $work/small/submit.sbatch"
job_state=$(wait_done "$id" 240)
[[ $job_state == COMPLETED ]] || fail "job $id ended $job_state"
[[ $(job_field "$id" ExitCode) == 0:0 ]] || fail "job $id exit code $(job_field "$id" ExitCode)"
grep -qF "dsir on 2 ranks" "$log" || fail "the log does not show 2 ranks"
grep -qF "slurm job $id" "$log" || fail "skein's banner does not show the Slurm job"
"$skein" inspect "$work/small/dsir.h5" >"$work/small-inspect.txt" || fail "skein inspect failed"
grep -qE '^ +status +complete' "$work/small-inspect.txt" || fail "dsir.h5 status is not complete"
grep -qE '^ +ranks +2$' "$work/small-inspect.txt" || fail "dsir.h5 was not written by 2 ranks"
grep -qF "/selected/byte_offset  uint64  [100]" "$work/small-inspect.txt" || fail "dsir.h5 has no 100 selections"
[[ $(wc -l <"$work/small/selected.jsonl") -eq 100 ]] || fail "selected.jsonl does not have 100 lines"
mpirun -np 2 "$skein" run dsir --config "$work/small.ini" --out "$work/small-ref" >"$work/small-ref.log" 2>&1 ||
  fail "the mpirun reference run failed: $(tail -n 5 "$work/small-ref.log")"
cmp -s "$work/small/selected.jsonl" "$work/small-ref/selected.jsonl" ||
  fail "selected.jsonl from Slurm differs from mpirun's"
say "1. passed (job $id)"

# The same job with --launcher mpirun (Open MPI's mpirun inside the allocation).
submit dsir --config "$work/small.ini" --nodes 1 --ntasks-per-node 2 --time 00:05:00 --launcher mpirun \
  --out "$work/small-mpirun"
id=$job_id
job_state=$(wait_done "$id" 240)
[[ $job_state == COMPLETED ]] || fail "job $id (--launcher mpirun) ended $job_state"
cmp -s "$work/small-mpirun/selected.jsonl" "$work/small-ref/selected.jsonl" ||
  fail "selected.jsonl from Slurm with --launcher mpirun differs from mpirun's"
say "1. passed with --launcher mpirun too (job $id)"

# ---- 2. preemption: signal, checkpoint, requeue, resume ----
# The committed raw file 40 times over (38 MB) in 64 KiB pieces: thousands of steps, some seconds of work.
for _ in $(seq 40); do cat "$data/brown_raw.jsonl"; done >"$work/big.jsonl"
cat >"$work/big.ini" <<EOF
[dsir]
target = $data/brown_target.jsonl
raw = $work/big.jsonl
num_select = 100
piece_size = 64K
EOF
say "2. preemption"
mpirun -np 2 "$skein" run dsir --config "$work/big.ini" --out "$work/big-ref" >"$work/big-ref.log" 2>&1 ||
  fail "the mpirun reference run failed: $(tail -n 5 "$work/big-ref.log")"
# Each step slowed to 10 ms (a test hook of the runner) so the signal finds the run at work on any machine.
SKEIN_TEST_STEP_DELAY=0.01 submit dsir --config "$work/big.ini" --nodes 1 --ntasks-per-node 2 --time 00:10:00 \
  --max-requeues 2 --out "$work/big"
id=$job_id
log=$work/big/slurm-$id.log
# Signal once the ranks are at work (their stop-signal handlers are installed by then).
wait_for_line "$log" "fitting target model: done" 180
sleep 1
say "sending SIGUSR2 to the batch shell of job $id"
scancel --signal=USR2 --batch "$id" || fail "scancel --signal=USR2 --batch $id failed"
wait_for_line "$log" "requeueing job $id" 120
# Slurm holds a requeued job back for about two minutes (BeginTime); release it sooner to keep the test
# short, but not too soon: a restart within the second of the requeue finds its job credential revoked
# ("Killing non-startable batch job"), and a new step beside the first run's step daemons finds their PMIx
# socket still bound and fails to launch. So wait a few seconds and until those daemons are gone.
sleep 5
deadline=$((SECONDS + 120))
while ((SECONDS < deadline)); do
  job_state=$(job_field "$id" JobState)
  if [[ $job_state == PENDING ]] && ! grep -qs "slurmstepd: \[$id\." /proc/[0-9]*/cmdline; then
    scontrol update jobid="$id" starttime=now >/dev/null 2>&1 || true
  fi
  [[ $job_state == RUNNING || $job_state == COMPLETED ]] && break
  [[ $job_state == PENDING || $job_state == REQUEUED || $job_state == COMPLETING ]] ||
    fail "job $id is $job_state after its requeue"
  sleep 1
done
job_state=$(wait_done "$id" 300)
[[ $job_state == COMPLETED ]] || fail "job $id ended $job_state after its requeue"
[[ $(job_field "$id" Restarts) == 1 ]] || fail "job $id restarted $(job_field "$id" Restarts) times, expected 1"
grep -qF "skein-submit: SIGUSR2" "$log" || fail "the batch shell did not report the signal"
grep -qF "stopped by SIGUSR2" "$log" || fail "the ranks did not stop on SIGUSR2"
grep -qF "checkpoint written to $work/big/checkpoint.h5" "$log" || fail "no checkpoint was reported"
grep -qF "checkpointed (exit 75)" "$log" || fail "the launcher did not exit 75"
grep -qF "(restart 1)" "$log" || fail "the requeued run did not start"
grep -qF "resuming from $work/big/checkpoint.h5" "$log" || fail "the requeued run did not resume from the checkpoint"
grep -qF "skein ended with exit code 0" "$log" || fail "the requeued run did not finish"
[[ ! -e $work/big/checkpoint.h5 ]] || fail "the checkpoint is still there after a complete run"
cmp -s "$work/big/selected.jsonl" "$work/big-ref/selected.jsonl" ||
  fail "selected.jsonl after preemption differs from the uninterrupted run's"
if command -v h5diff >/dev/null; then
  h5diff -p 1e-9 "$work/big-ref/dsir.h5" "$work/big/dsir.h5" /selected >/dev/null ||
    fail "dsir.h5 /selected after preemption differs from the uninterrupted run's"
fi
say "2. passed (job $id: signalled, checkpointed, requeued, resumed, same selection)"

# ---- 3. a staged run: fit, array of shard scorings, merge ----
say "3. staged dsir: fit, a 3-task scoring array, merge"
staged=(--dsir.piece_size=64K --nodes 1 --time 00:05:00)
submit dsir --config "$work/small.ini" --dsir.stage=fit "${staged[@]}" --ntasks-per-node 2 --out "$work/staged-fit"
fit_id=$job_id
submit dsir --config "$work/small.ini" --dsir.stage=score --dsir.model="$work/staged-fit/dsir.h5" --dsir.shard=array \
  --array 0-2 "${staged[@]}" --ntasks-per-node 1 --sbatch-arg=--dependency=afterok:"$fit_id" --out "$work/staged-score"
score_id=$job_id
submit dsir --config "$work/small.ini" --dsir.stage=merge --dsir.shards="$work/staged-score/task-*/dsir.h5" \
  "${staged[@]}" --ntasks-per-node 2 --sbatch-arg=--dependency=afterok:"$score_id" --out "$work/staged-merge"
merge_id=$job_id
job_state=$(wait_done "$merge_id" 300)
[[ $job_state == COMPLETED ]] || fail "the merge job $merge_id ended $job_state"
for task in 0 1 2; do
  grep -qF "shard $task of 3" "$work/staged-score/slurm-${score_id}_$task.log" ||
    fail "array task $task did not score shard $task of 3"
done
cmp -s "$work/staged-merge/selected.jsonl" "$work/small-ref/selected.jsonl" ||
  fail "selected.jsonl of the staged run differs from one run's"
say "3. passed (jobs $fit_id, $score_id, $merge_id: the selection of one run)"
passed=1
