#!/usr/bin/env bash
# A single-node Slurm on this machine, for tests and for trying `skein submit` on a laptop or a VM.
#
#   cluster/local-slurm.sh start    install slurm-wlm + munge if missing (apt), write the config, start munged,
#                                   slurmctld and slurmd, wait until the node is idle; idempotent
#   cluster/local-slurm.sh stop     stop the daemons this script started (slurmctld, slurmd, munged)
#   cluster/local-slurm.sh status   exit 0 when the node answers, and print sinfo
#
# The node is this host with CPUs = nproc, in a partition `debug` (the default). The config and the state
# live under $SKEIN_SLURM_DIR (default /var/tmp/skein-slurm). The config is also installed as
# /etc/slurm/slurm.conf unless that file exists and was not written by this script; then export
# SLURM_CONF=$SKEIN_SLURM_DIR/slurm.conf to use this Slurm. Needs root (uses sudo otherwise).
#
# Why these settings: ProctrackType=proctrack/linuxproc and TaskPlugin=task/none need no cgroups, so it runs
# in containers and VMs; SlurmUser=root keeps the state directory simple; there is no accounting database
# (sacct does not work; use squeue and `scontrol show job`, which remembers jobs for MinJobAge seconds).
# Exit codes: 0 ok, 1 failed, 3 Slurm could not be installed (no apt, no network), 4 could not be started.
set -euo pipefail

state=${SKEIN_SLURM_DIR:-/var/tmp/skein-slurm}
conf=$state/slurm.conf
marker="# written by skein cluster/local-slurm.sh"
prog=local-slurm

say() { echo "$prog: $*" >&2; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    say "needs root (or sudo) for: $*"
    return 1
  fi
}

# Re-run the whole script as root: the daemons, apt and the files under /etc need it.
if [[ $(id -u) -ne 0 && "${1:-}" != status ]]; then
  if command -v sudo >/dev/null; then
    exec sudo SKEIN_SLURM_DIR="$state" "$0" "$@"
  fi
  say "needs root (or sudo)"
  exit 1
fi

slurm_env() { SLURM_CONF=$conf "$@"; }

installed() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null &&
    command -v munged >/dev/null && [[ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/proctrack_linuxproc.so ||
      -n $(find /usr/lib* -name proctrack_linuxproc.so -print -quit 2>/dev/null) ]]
}

install_packages() {
  installed && return 0
  if ! command -v apt-get >/dev/null; then
    say "slurm-wlm and munge are not installed and there is no apt-get to install them"
    return 3
  fi
  say "installing slurm-wlm and munge (apt)"
  # Package scripts may try to start the services; without a config they fail harmlessly, and in a container
  # there is no init to start them. Either way this script starts the daemons itself.
  if ! { apt-get update -q >&2 &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge >&2; }; then
    installed && return 0
    say "could not install slurm-wlm and munge with apt"
    return 3
  fi
  installed || { say "slurm-wlm is installed but its programs are missing"; return 3; }
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  munge_ok && return 0
  if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile=/etc/munge/munge.key >&2
    else
      dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
  fi
  local owner=root
  id munge >/dev/null 2>&1 && owner=munge
  chown "$owner:$owner" /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown "$owner:$owner" /run/munge /var/lib/munge /var/log/munge
  chmod 0755 /run/munge
  # --force: start despite a stale socket or lax directory permissions (common in containers).
  if [[ $owner == munge ]]; then
    runuser -u munge -- munged --force >&2 || munged --force >&2
  else
    munged --force >&2
  fi
  touch "$state/started-munged"
  for _ in $(seq 50); do
    munge_ok && return 0
    sleep 0.2
  done
  say "munged does not answer (see /var/log/munge/munged.log)"
  return 4
}

# The CPUs this process may use. nproc alone answers OMP_NUM_THREADS when it is set: a test suite run with
# OMP_NUM_THREADS=1 made a 1-CPU node, on which no 2-task job ever started.
host_cpus() { env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc; }

write_config() {
  local host cpus memory
  host=$(hostname -s)
  cpus=$(host_cpus)
  # Slurm wants MB; leave some for the system. Memory is not a consumable here (CR_CPU), so this only informs.
  memory=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
  mkdir -p "$state/ctld" "$state/d" "$state/log"
  cat >"$conf.new" <<EOF
$marker; state in $state
ClusterName=skein-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SwitchType=switch/none
MpiDefault=none
LaunchParameters=use_interactive_step
ReturnToService=2
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Finished jobs stay visible to "scontrol show job" for 10 minutes.
MinJobAge=600
KillWait=30
InactiveLimit=0
Waittime=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  mv "$conf.new" "$conf"
  mkdir -p /etc/slurm
  if [[ ! -e /etc/slurm/slurm.conf ]] || grep -qF "$marker" /etc/slurm/slurm.conf; then
    cp "$conf" /etc/slurm/slurm.conf
    : >"$state/installed-etc-conf"
  else
    rm -f "$state/installed-etc-conf"
    say "/etc/slurm/slurm.conf exists and is not ours: left alone; export SLURM_CONF=$conf to use this Slurm"
  fi
}

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() { slurm_env sinfo -h -N -o '%t' 2>/dev/null | head -n 1; }

daemons_up() { pid_alive "$state/slurmctld.pid" && pid_alive "$state/slurmd.pid" && slurm_env scontrol ping 2>/dev/null | grep -q UP; }

usage_hint() {
  local env=""
  [[ -e "$state/installed-etc-conf" ]] || env="SLURM_CONF=$conf "
  cat >&2 <<EOF
$prog: Slurm is up: node $(hostname -s), $(host_cpus) CPUs, partition debug (default)
  ${env}sinfo; ${env}squeue
  ${env}skein submit dsir --config my.ini --nodes 1 --ntasks-per-node 2 --time 00:10:00 --out runs/x
  logs: $state/log/   stop: $0 stop
EOF
}

start() {
  mkdir -p "$state"
  install_packages || return $?
  start_munge || return $?
  if daemons_up; then
    say "already running (config $conf)"
  else
    # A daemon of an earlier start may be half up; start from a clean slate but keep the saved jobs.
    stop_daemons quiet
    write_config
    say "starting slurmctld and slurmd (config $conf, logs $state/log/)"
    slurm_env slurmctld || { say "slurmctld did not start; $state/log/slurmctld.log says:"; tail -n 20 "$state/log/slurmctld.log" >&2 || true; return 4; }
    slurm_env slurmd || { say "slurmd did not start; $state/log/slurmd.log says:"; tail -n 20 "$state/log/slurmd.log" >&2 || true; return 4; }
  fi
  local deadline=$((SECONDS + ${SKEIN_SLURM_START_TIMEOUT:-90})) node=""
  while ((SECONDS < deadline)); do
    node=$(node_state)
    case "$node" in
      idle* | mix* | alloc* | comp*) usage_hint; return 0 ;;
      down* | drain* | drng* | fail*)
        slurm_env scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  say "the node did not become idle within ${SKEIN_SLURM_START_TIMEOUT:-90} s (state '${node:-no answer}')"
  tail -n 20 "$state/log/slurmctld.log" "$state/log/slurmd.log" >&2 2>/dev/null || true
  return 4
}

stop_daemons() {
  local quiet=${1:-}
  if [[ -e $conf ]]; then slurm_env scontrol shutdown >/dev/null 2>&1 || true; fi
  local daemon pidfile
  for daemon in slurmd slurmctld; do
    pidfile=$state/$daemon.pid
    [[ -s $pidfile ]] || continue
    local pid
    pid=$(cat "$pidfile")
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      [[ -n $quiet ]] || say "stopping $daemon ($pid)"
      kill "$pid" 2>/dev/null || true
      sleep 1
    fi
    rm -f "$pidfile"
  done
}

stop() {
  stop_daemons
  if [[ -e "$state/started-munged" ]]; then
    local pid
    pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
    if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
    rm -f "$state/started-munged"
  fi
  say "stopped"
}

status() {
  if [[ -e $conf ]] && slurm_env scontrol ping 2>/dev/null | grep -q UP; then
    slurm_env sinfo
    return 0
  fi
  say "not running"
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status   (state in \$SKEIN_SLURM_DIR, default /var/tmp/skein-slurm)" >&2
    exit 2
    ;;
esac
