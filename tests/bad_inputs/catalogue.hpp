// The catalogue of bad inputs: one Case per kind of bad input a reader of skein can meet, with the command
// that meets it, the exit code and the message fragments expected. test_bad_inputs.cpp runs every case at 1
// and 2 ranks; cases_*.cpp hold the tables.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace skein::bad_inputs {

// Where a case writes its files and runs.
struct Workspace {
  std::string in;   // a fresh folder for the case's input files
  std::string out;  // the run's --out: the harness put a previous run's outputs there (see `previous`)
  // What must be in `out`, byte for byte, after the run: the harness fills it with the outputs it put there;
  // a case that moves `out` elsewhere (a small disk) writes its own and records them here.
  std::map<std::string, std::string> previous;
  std::vector<std::pair<std::string, std::string>> env;  // extra environment for the run
  std::shared_ptr<void> keep;                            // resources the run needs (a mounted tmpfs)
};

// What a case needs from the machine; without it the case is skipped with a message.
enum class Needs {
  nothing,
  tmpfs,         // mounting a small tmpfs (root or CAP_SYS_ADMIN)
  unprivileged,  // permission bits that bind: not root, or root able to drop CAP_DAC_OVERRIDE (setpriv)
};

struct Case {
  std::string group;  // the ctest entry that runs it: config, dsir, poisson, hessian, cca, output
  std::string name;   // unique within the group, [a-z0-9_]
  // Writes the bad file(s) under ws.in (or changes ws.out, ws.env) and returns the arguments after
  // `skein run`: the job and its options; the harness adds `--out ws.out`.
  std::function<std::vector<std::string>(Workspace&)> make;
  int exit_code = 65;
  // Each must appear in the output; "{in}" and "{out}" stand for the workspace's folders.
  std::vector<std::string> expect;
  // Non-empty: the case fails today for this reason (a defect in skein, reported); the harness skips it
  // while it fails and fails once it passes, so the mark is removed with the fix.
  std::string known_failure;
  Needs needs = Needs::nothing;
  // Set: the harness first runs `make`'s command on the good inputs `make` wrote, stopped after a
  // checkpoint (SKEIN_FAULT), then calls this to damage the inputs, and runs again with --resume. The
  // checkpoint must then be intact.
  std::function<void(Workspace&)> damage_after_checkpoint;
  double timeout_seconds = 60;  // a run that takes longer counts as hung
};

std::vector<Case> config_cases();
std::vector<Case> dsir_cases();
std::vector<Case> poisson_cases();
std::vector<Case> hessian_cases();
std::vector<Case> cca_cases();
std::vector<Case> output_cases();

}  // namespace skein::bad_inputs
