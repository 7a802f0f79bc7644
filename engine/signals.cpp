#include "engine/signals.hpp"

#include <csignal>
#include <initializer_list>

namespace skein::engine {

namespace {
volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int signal_number) {
  // Only the first signal is recorded; a second one during a checkpoint changes nothing.
  if (g_stop_signal == 0) g_stop_signal = signal_number;
}
}  // namespace

void install_stop_signal_handlers() {
  struct sigaction action{};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // interrupted reads and writes resume instead of failing with EINTR
  for (const int signal_number : {SIGTERM, SIGUSR1, SIGUSR2}) sigaction(signal_number, &action, nullptr);
}

int received_stop_signal() { return g_stop_signal; }

const char* signal_name(int signal_number) {
  switch (signal_number) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    case SIGINT: return "SIGINT";
    default: return "signal";
  }
}

}  // namespace skein::engine
