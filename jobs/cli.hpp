// The `skein` command line: run, inspect, jobs.
#pragma once

namespace skein::jobs {

// Runs the CLI on an initialised engine::Context; returns the process exit code on every rank.
int run_cli(int argc, char** argv);

}  // namespace skein::jobs
