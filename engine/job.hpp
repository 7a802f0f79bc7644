// The Job interface every skein job implements: load, step until done, finalize.
#pragma once

#include "engine/config.hpp"
#include "engine/state.hpp"

#include <string>
#include <vector>

namespace skein::engine {

// A job runs the same calls on every rank. Each call may do local work and collectives; local work that
// can fail runs inside Communicator::agree so that one rank's error ends every rank with its message.
// The constructor (in the job's factory) validates the config and must not communicate.
class Job {
 public:
  virtual ~Job() = default;
  // Opens inputs and prepares state.
  virtual void load() = 0;
  // One bounded unit of work (a chunk of input, an iteration). Returns true when no work is left.
  // Step boundaries are where the engine may checkpoint or stop.
  virtual bool step() = 0;
  // Writes the outputs (collectively) into the output directory.
  virtual void finalize() = 0;

  // Checkpointing. save_state is called between steps and must capture everything step() and finalize()
  // still need, in rank-count-independent form; restore_state is called after load() on a fresh job,
  // possibly on a different number of ranks, and must leave it as if it had run the saved steps.
  virtual void save_state(StateWriter& state) const = 0;
  virtual void restore_state(StateReader& state) = 0;
  // Called on every rank at each of the runner's agreements on stopping and checkpointing (about every
  // 0.2 s of steps, always before a checkpoint), in the same order everywhere: a job whose steps do no
  // communication of their own agrees on its progress here (errors, the end of a phase) and may do
  // collectives. step() must then stay consistent: the same return value on every rank.
  virtual void at_agreement() {}
  // True right after a step that ends a natural unit (an epoch) worth a checkpoint of its own, besides the
  // runner's cadence. Must be the same on every rank.
  virtual bool checkpoint_due() const { return false; }
  // The seed recorded in checkpoints (0 for jobs without randomness).
  virtual std::uint64_t seed() const { return 0; }
};

// What `skein jobs` and `skein run --help` show about a job, and what its config accepts.
struct JobSpec {
  std::string name;
  std::string summary;
  std::vector<ConfigKey> keys;
  // The files it writes into the output folder, the HDF5 result last (published last: see io::OutputSet).
  std::vector<std::string> outputs;
};

}  // namespace skein::engine
