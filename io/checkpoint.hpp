// Checkpoint files: OUT/checkpoint.h5 (previous one kept as checkpoint.prev.h5 until the new one is
// complete), a job's state in global index space under /state, and finding the newest valid one on resume.
#pragma once

#include "comm/communicator.hpp"
#include "engine/state.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace skein::io {

constexpr std::int64_t kCheckpointSchemaVersion = 1;

// What a checkpoint's root attributes say about it.
struct CheckpointInfo {
  std::string path;
  std::int64_t schema_version = 0;
  std::string job;
  std::int64_t step = 0;
  std::int64_t ranks = 0;   // at write time
  std::string config;       // resolved INI text
  std::string config_hash;  // hex of engine::Config::results_hash()
  std::string skein_version;
  std::int64_t seed = 0;
  double written_unix = 0;  // seconds since the epoch
};

std::string checkpoint_path(const std::string& out_dir);
std::string previous_checkpoint_path(const std::string& out_dir);

// Collective. Writes `info` (path ignored) and the state `save` writes into out_dir/checkpoint.h5: to a
// .tmp first; once every rank closed it, rank 0 keeps the old checkpoint as checkpoint.prev.h5 and renames
// the new one into place, so a valid checkpoint exists at every moment.
void write_checkpoint(const comm::Communicator& comm, const std::string& out_dir, const CheckpointInfo& info,
                      const std::function<void(engine::StateWriter&)>& save);

// Collective. Rank 0 tries checkpoint.h5, then checkpoint.prev.h5, and returns the first that opens and
// carries complete metadata (nullopt when there is none). Each one skipped adds a line to `warnings`
// saying why (same on every rank).
std::optional<CheckpointInfo> find_checkpoint(const comm::Communicator& comm, const std::string& out_dir,
                                              std::vector<std::string>& warnings);

// Reads the metadata of one checkpoint file (serial); DataError naming the file if it is not one.
CheckpointInfo read_checkpoint_info(const std::string& path);

// Collective reader of a checkpoint's /state; distributed arrays come back as this rank's even share.
class CheckpointReader : public engine::StateReader {
 public:
  CheckpointReader(const comm::Communicator& comm, std::string path);
  std::int64_t int64_scalar(const std::string& name) override;
  double double_scalar(const std::string& name) override;
  std::vector<std::uint64_t> replicated_uint64(const std::string& name) override;
  std::vector<double> replicated_double(const std::string& name) override;
  std::vector<std::uint64_t> distributed_uint64(const std::string& name) override;
  std::vector<std::int64_t> distributed_int64(const std::string& name) override;
  std::vector<double> distributed_double(const std::string& name) override;
  std::vector<double> block_double(const std::string& name, const std::vector<std::uint64_t>& offset,
                                   const std::vector<std::uint64_t>& extent) override;
  std::vector<float> block_float(const std::string& name, const std::vector<std::uint64_t>& offset,
                                 const std::vector<std::uint64_t>& extent) override;
  std::vector<std::int64_t> block_int64(const std::string& name, const std::vector<std::uint64_t>& offset,
                                        const std::vector<std::uint64_t>& extent) override;
  std::vector<std::uint64_t> shape(const std::string& name) override;

 private:
  template <class T>
  std::vector<T> share(const std::string& name);
  const comm::Communicator& comm_;
  std::string path_;
};

}  // namespace skein::io
