// Stop requests by signal: SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 only set a flag; the job runner
// acts on it at the next step boundary (checkpoint, then exit 75).
#pragma once

namespace skein::engine {

// Installs the handlers (idempotent). Other signals keep their default behaviour.
void install_stop_signal_handlers();
// The first stop signal received since start (0 when none).
int received_stop_signal();
// Seconds since that signal arrived (0 when none).
double seconds_since_stop_signal();
// "SIGUSR1" etc.
const char* signal_name(int signal_number);

// How long after `signal_number` the launcher kills the ranks, in seconds (negative: no kill follows).
// SIGUSR1/SIGUSR2 (Slurm's --signal, a user's request) are not followed by a kill. SIGTERM, SIGINT and
// SIGHUP are what mpirun and srun send before SIGKILL: under Open MPI the wait is its MCA parameter
// odls_base_sigkill_timeout (1 s unless raised in the environment), under srun Slurm's KillWait (taken to
// be 30 s), elsewhere none. SKEIN_STOP_GRACE_SECONDS overrides all of them.
double stop_grace_seconds(int signal_number);

}  // namespace skein::engine
