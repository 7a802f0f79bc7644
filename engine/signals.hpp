// Stop requests by signal: SIGTERM, SIGUSR1 and SIGUSR2 only set a flag; the job runner acts on it at the
// next step boundary (checkpoint, then exit 75).
#pragma once

namespace skein::engine {

// Installs the handlers (idempotent). Other signals keep their default behaviour.
void install_stop_signal_handlers();
// The first stop signal received since start (0 when none).
int received_stop_signal();
// "SIGUSR1" etc.
const char* signal_name(int signal_number);

}  // namespace skein::engine
