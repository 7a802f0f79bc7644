#include "engine/signals.hpp"

#include <time.h>

#include <csignal>
#include <cstdlib>
#include <initializer_list>

namespace skein::engine {

namespace {
volatile std::sig_atomic_t g_stop_signal = 0;
// CLOCK_MONOTONIC seconds and nanoseconds of the first signal (clock_gettime is async-signal-safe).
volatile long g_stop_seconds = 0;
volatile long g_stop_nanoseconds = 0;

extern "C" void on_stop_signal(int signal_number) {
  // Only the first signal is recorded; a second one during a checkpoint changes nothing, except a second
  // Ctrl-C at a terminal, which ends the process at once (signal() and raise() are async-signal-safe).
  if (g_stop_signal != 0) {
    if (signal_number == SIGINT) {
      std::signal(SIGINT, SIG_DFL);
      std::raise(SIGINT);
    }
    return;
  }
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  g_stop_seconds = now.tv_sec;
  g_stop_nanoseconds = now.tv_nsec;
  g_stop_signal = signal_number;
}

double number_from_environment(const char* name, double fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  return end != text && *end == '\0' ? value : fallback;
}
}  // namespace

void install_stop_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // interrupted reads and writes resume instead of failing with EINTR
  for (const int signal_number : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) {
    sigaction(signal_number, &action, nullptr);
  }
  // A write past the shell's file-size limit (`ulimit -f`) would otherwise kill the rank with SIGXFSZ,
  // leaving the lock and .tmp files behind; ignored, the write fails with EFBIG and takes the usual
  // agreed I/O error path (exit 74).
  std::signal(SIGXFSZ, SIG_IGN);
}

int received_stop_signal() {
  return g_stop_signal;
}

double seconds_since_stop_signal() {
  if (g_stop_signal == 0) return 0;
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<double>(now.tv_sec - g_stop_seconds) +
         1e-9 * static_cast<double>(now.tv_nsec - g_stop_nanoseconds);
}

const char* signal_name(int signal_number) {
  switch (signal_number) {
    case SIGTERM:
      return "SIGTERM";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGUSR2:
      return "SIGUSR2";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "signal";
  }
}

double stop_grace_seconds(int signal_number) {
  const double explicit_grace = number_from_environment("SKEIN_STOP_GRACE_SECONDS", -1);
  if (explicit_grace >= 0) return explicit_grace;
  if (signal_number == SIGUSR1 || signal_number == SIGUSR2) return -1;
  if (std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr) {
    return number_from_environment("OMPI_MCA_odls_base_sigkill_timeout", 1);
  }
  if (std::getenv("SLURM_STEP_ID") != nullptr) return 30;
  return -1;
}

}  // namespace skein::engine
