#include "io/checkpoint.hpp"

#include "comm/block_partition.hpp"
#include "engine/error.hpp"
#include "io/atomic_output.hpp"
#include "io/h5_parallel_reader.hpp"
#include "io/h5_reader.hpp"
#include "io/hdf5.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace skein::io {

namespace {

const std::string kState = "/state/";

// A checksum of an array that does not depend on how it is split over ranks: the sum (mod 2^64) of a
// mix of each element's global index and bits. Each rank adds up its part.
// An element's bits, zero-extended to 64 (float32 and 8-byte types).
template <class T>
std::uint64_t element_bits(const T& value) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "checkpoint arrays hold 4- or 8-byte elements");
  if constexpr (sizeof(T) == 4) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
  } else {
    std::uint64_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
  }
}

template <class T>
std::uint64_t partial_checksum(const std::vector<T>& local, std::uint64_t first_index) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < local.size(); ++i) {
    const std::uint64_t bits = element_bits(local[i]);
    std::uint64_t z = bits ^ ((first_index + i) * 0x9E3779B97F4A7C15ull);  // splitmix64 finaliser
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    sum += z ^ (z >> 31);
  }
  return sum;
}

// Element (local index) -> global row-major index of a block; the checksum of an N-D block is the 1-D one
// taken over the global indices, so it does not depend on the decomposition.
template <class T>
std::uint64_t block_checksum(const T* local, const std::vector<std::uint64_t>& shape,
                             const std::vector<std::uint64_t>& offset,
                             const std::vector<std::uint64_t>& extent) {
  std::uint64_t count = 1;
  for (const auto e : extent) count *= e;
  std::uint64_t sum = 0;
  std::vector<std::uint64_t> index(extent.size(), 0);
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t global = 0;
    for (std::size_t d = 0; d < shape.size(); ++d) global = global * shape[d] + offset[d] + index[d];
    sum += partial_checksum(std::vector<T>{local[i]}, global);
    for (std::size_t d = extent.size(); d-- > 0;) {  // row-major odometer
      if (++index[d] < extent[d]) break;
      index[d] = 0;
    }
  }
  return sum;
}

class CheckpointWriter : public engine::StateWriter {
 public:
  CheckpointWriter(const comm::Communicator& comm, H5Writer& h5) : comm_(comm), h5_(h5) {}
  void scalar(const std::string& name, std::int64_t value) override {
    h5_.set_attribute("/state", name, value);
  }
  void scalar(const std::string& name, double value) override { h5_.set_attribute("/state", name, value); }
  void replicated(const std::string& name, const std::vector<std::uint64_t>& v) override {
    write(name, v, true);
  }
  void replicated(const std::string& name, const std::vector<double>& v) override { write(name, v, true); }
  void distributed(const std::string& name, const std::vector<std::uint64_t>& v) override {
    write(name, v, false);
  }
  void distributed(const std::string& name, const std::vector<std::int64_t>& v) override {
    write(name, v, false);
  }
  void distributed(const std::string& name, const std::vector<double>& v) override { write(name, v, false); }
  void block(const std::string& name, const std::vector<std::uint64_t>& global_shape,
             const std::vector<std::uint64_t>& offset, const std::vector<std::uint64_t>& extent,
             const double* local) override {
    write_block(name, global_shape, offset, extent, local);
  }
  void block(const std::string& name, const std::vector<std::uint64_t>& global_shape,
             const std::vector<std::uint64_t>& offset, const std::vector<std::uint64_t>& extent,
             const float* local) override {
    write_block(name, global_shape, offset, extent, local);
  }
  void block(const std::string& name, const std::vector<std::uint64_t>& global_shape,
             const std::vector<std::uint64_t>& offset, const std::vector<std::uint64_t>& extent,
             const std::int64_t* local) override {
    write_block(name, global_shape, offset, extent, local);
  }

 private:
  template <class T>
  void write_block(const std::string& name, const std::vector<std::uint64_t>& global_shape,
                   const std::vector<std::uint64_t>& offset, const std::vector<std::uint64_t>& extent,
                   const T* local) {
    h5_.write_block(kState + name, global_shape, offset, extent, local);
    const std::uint64_t checksum =
        comm_.allreduce(block_checksum(local, global_shape, offset, extent), comm::Op::sum);
    h5_.set_attribute(kState + name, "checksum", static_cast<std::int64_t>(checksum));
  }

  // Every array carries a `checksum` attribute, verified before a checkpoint is used.
  template <class T>
  void write(const std::string& name, const std::vector<T>& values, bool replicated) {
    std::uint64_t checksum;
    if (replicated) {
      h5_.write_replicated(kState + name, values);
      checksum = partial_checksum(values, 0);
    } else {
      h5_.write_distributed(kState + name, values);
      const std::uint64_t first = comm_.exscan<std::uint64_t>(values.size());
      checksum = comm_.allreduce(partial_checksum(values, first), comm::Op::sum);
    }
    h5_.set_attribute(kState + name, "checksum", static_cast<std::int64_t>(checksum));  // bits, as int64
  }

  const comm::Communicator& comm_;
  H5Writer& h5_;
};

// This rank's even share (by the first dimension) of a /state array, checksummed by global index and
// read in the type it was written in, so the bits are the writer's.
std::uint64_t share_checksum(const comm::Communicator& comm, const std::string& path, const std::string& name,
                             const std::vector<std::uint64_t>& shape) {
  const auto rows = comm::BlockPartition(shape.empty() ? 0 : shape[0], comm.size()).range(comm.rank());
  std::uint64_t row_size = 1;
  for (std::size_t d = 1; d < shape.size(); ++d) row_size *= shape[d];
  std::vector<std::uint64_t> offset(shape.size(), 0), extent(shape);
  if (shape.empty()) return 0;
  offset[0] = rows.begin;
  extent[0] = rows.end - rows.begin;
  const std::uint64_t first = rows.begin * row_size;
  H5T_class_t type_class;
  std::size_t type_size;
  H5T_sign_t sign;
  {
    detail::QuietErrors quiet;
    detail::H5Handle file = detail::open_for_reading(path);
    detail::H5Handle dataset(
        detail::check_id(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), "H5Dopen2", path, name), H5Dclose);
    detail::H5Handle type(detail::check_id(H5Dget_type(dataset.get()), "H5Dget_type", path, name), H5Tclose);
    type_class = H5Tget_class(type.get());
    type_size = H5Tget_size(type.get());
    sign = H5Tget_sign(type.get());
  }
  if (type_class == H5T_FLOAT && type_size == 4) {
    return partial_checksum(read_block<float>(path, name, offset, extent), first);
  }
  if (type_class == H5T_FLOAT) return partial_checksum(read_block<double>(path, name, offset, extent), first);
  if (sign == H5T_SGN_2) return partial_checksum(read_block<std::int64_t>(path, name, offset, extent), first);
  return partial_checksum(read_block<std::uint64_t>(path, name, offset, extent), first);
}

// Test hook, inert unless set: SKEIN_FAULT_INJECT=checkpoint_write:N makes this process's Nth checkpoint
// write (counting from 1) fail on the last rank after the state went into the .tmp file and before the file
// is complete, as a full disk or a lost file server would: the error is agreed (exit 74), the .tmp removed,
// and the previous checkpoint must stay the valid one.
bool checkpoint_write_fault_due() {
  static const std::int64_t failing_write = [] {
    const char* text = std::getenv("SKEIN_FAULT_INJECT");
    const std::string prefix = "checkpoint_write:";
    if (text == nullptr || std::string(text).rfind(prefix, 0) != 0) return std::int64_t{0};
    return std::int64_t{std::atoll(text + prefix.size())};
  }();
  static std::int64_t writes = 0;
  return ++writes == failing_write;
}

}  // namespace

std::string checkpoint_path(const std::string& out_dir) {
  return out_dir + "/checkpoint.h5";
}
std::string previous_checkpoint_path(const std::string& out_dir) {
  return out_dir + "/checkpoint.prev.h5";
}

void write_checkpoint(const comm::Communicator& comm, const std::string& out_dir, const CheckpointInfo& info,
                      const std::function<void(engine::StateWriter&)>& save) {
  const std::string final_path = checkpoint_path(out_dir);
  AtomicOutput output(comm, final_path);
  {
    H5Writer h5(comm, output.tmp_path());
    h5.set_attribute("/", "checkpoint_schema_version", kCheckpointSchemaVersion);
    h5.set_attribute("/", "job", info.job);
    h5.set_attribute("/", "status", std::string("checkpoint"));
    h5.set_attribute("/", "checkpoint_step", info.step);
    h5.set_attribute("/", "ranks", info.ranks);
    h5.set_attribute("/", "config", info.config);
    h5.set_attribute("/", "config_hash", info.config_hash);
    h5.set_attribute("/", "skein_version", info.skein_version);
    h5.set_attribute("/", "seed", info.seed);
    h5.set_attribute("/", "written_unix", info.written_unix);
    h5.create_group("/state");
    CheckpointWriter writer(comm, h5);
    save(writer);
    const bool inject_fault = checkpoint_write_fault_due();
    comm.agree([&] {
      if (inject_fault && comm.rank() == comm.size() - 1) {
        throw engine::IoError("cannot write " + output.tmp_path() +
                              ": injected failure (SKEIN_FAULT_INJECT) " +
                              "after the state was written, before the checkpoint was complete");
      }
    });
    // Written last: a checkpoint without it was cut off before it was complete.
    h5.set_attribute("/", "checkpoint_complete", std::int64_t{1});
    h5.close();
  }
  // Keep the current checkpoint under the previous name (a hard link, so checkpoint.h5 never disappears)
  // before the new one replaces it.
  comm.agree([&] {
    if (comm.rank() != 0) return;
    // link to a temporary name, then rename over the previous one: some valid previous exists throughout.
    const std::string previous = previous_checkpoint_path(out_dir), linked = previous + ".tmp";
    ::unlink(linked.c_str());
    if (::link(final_path.c_str(), linked.c_str()) != 0) {
      if (errno == ENOENT) return;  // the first checkpoint
      throw engine::InternalError("cannot keep " + final_path + " as " + previous + ": " +
                                  std::strerror(errno));
    }
    if (::rename(linked.c_str(), previous.c_str()) != 0) {
      throw engine::InternalError("cannot rename " + linked + " to " + previous + ": " +
                                  std::strerror(errno));
    }
  });
  output.commit();
}

CheckpointInfo read_checkpoint_info(const std::string& path) {
  CheckpointInfo info;
  info.path = path;
  if (!h5_exists(path, "/", "checkpoint_schema_version")) {
    throw engine::DataError(path + " is not a skein checkpoint");
  }
  if (!h5_exists(path, "/", "checkpoint_complete")) {
    throw engine::DataError(path + " is incomplete (its writer was interrupted)");
  }
  info.schema_version = read_int64_attribute(path, "/", "checkpoint_schema_version");
  if (info.schema_version != kCheckpointSchemaVersion) {
    throw engine::DataError(path + " has checkpoint schema " + std::to_string(info.schema_version) +
                            "; this skein reads schema " + std::to_string(kCheckpointSchemaVersion));
  }
  info.job = read_string_attribute(path, "/", "job");
  info.step = read_int64_attribute(path, "/", "checkpoint_step");
  info.ranks = read_int64_attribute(path, "/", "ranks");
  info.config = read_string_attribute(path, "/", "config");
  info.config_hash = read_string_attribute(path, "/", "config_hash");
  info.skein_version = read_string_attribute(path, "/", "skein_version");
  info.seed = read_int64_attribute(path, "/", "seed");
  info.written_unix = read_double_attribute(path, "/", "written_unix");
  return info;
}

namespace {

// Collective: every rank checks its share of every /state array against its checksum. Returns "" when the
// file is intact, else why not (same on every rank).
std::string verify_state(const comm::Communicator& comm, const std::string& path) {
  std::string names;
  if (comm.rank() == 0) {
    try {
      for (const auto& name : list_datasets(path, "/state")) names += name + "\n";
    } catch (const std::exception& e) {
      names = std::string("!") + e.what();
    }
  }
  comm.bcast(names, 0);
  if (!names.empty() && names[0] == '!') return names.substr(1);
  std::istringstream list(names);
  std::string name;
  while (std::getline(list, name)) {
    int bad = 0;
    std::uint64_t checksum = 0, expected = 0;
    try {
      const auto shape = dataset_shape(path, name);
      checksum = share_checksum(comm, path, name, shape);
      expected = static_cast<std::uint64_t>(read_int64_attribute(path, name, "checksum"));
    } catch (const std::exception&) {
      bad = 1;
    }
    if (comm.allreduce(bad, comm::Op::max) != 0) return path + ": " + name + " cannot be read";
    if (comm.allreduce(checksum, comm::Op::sum) != expected)
      return path + ": " + name + " is corrupt (checksum mismatch)";
  }
  return "";
}

}  // namespace

std::optional<CheckpointInfo> find_checkpoint(const comm::Communicator& comm, const std::string& out_dir,
                                              std::vector<std::string>& warnings) {
  std::string found_path;
  std::string notes;
  for (const std::string& path : {checkpoint_path(out_dir), previous_checkpoint_path(out_dir)}) {
    std::string problem;
    if (comm.rank() == 0) {
      if (::access(path.c_str(), F_OK) != 0) {
        problem = "-";
      } else {
        try {
          read_checkpoint_info(path);
        } catch (const std::exception& e) {
          problem = e.what();
        }
      }
    }
    comm.bcast(problem, 0);
    if (problem.empty()) problem = verify_state(comm, path);
    if (problem.empty()) {
      found_path = path;
      break;
    }
    if (problem != "-") notes += problem + "\n";
  }
  for (std::size_t start = 0; start < notes.size();) {
    const std::size_t end = notes.find('\n', start);
    warnings.push_back(notes.substr(start, end - start));
    start = end + 1;
  }
  if (found_path.empty()) return std::nullopt;
  CheckpointInfo info;
  comm.agree([&] { info = read_checkpoint_info(found_path); });
  return info;
}

namespace {

// This rank's block of a /state array, read collectively: the ranks of a restore read their blocks of the
// global array together rather than each opening the file on its own.
template <class T>
std::vector<T> read_state_block(const comm::Communicator& comm, const std::string& path,
                                const std::string& name, const std::vector<std::uint64_t>& offset,
                                const std::vector<std::uint64_t>& extent) {
  H5ParallelReader reader(comm, path);
  auto values = reader.read_block<T>(name, offset, extent);
  reader.close();
  return values;
}

}  // namespace

CheckpointReader::CheckpointReader(const comm::Communicator& comm, std::string path)
    : comm_(comm), path_(std::move(path)) {}

std::int64_t CheckpointReader::int64_scalar(const std::string& name) {
  std::int64_t value = 0;
  comm_.agree([&] { value = read_int64_attribute(path_, "/state", name); });
  return value;
}

double CheckpointReader::double_scalar(const std::string& name) {
  double value = 0;
  comm_.agree([&] { value = read_double_attribute(path_, "/state", name); });
  return value;
}

std::vector<std::uint64_t> CheckpointReader::replicated_uint64(const std::string& name) {
  std::vector<std::uint64_t> values;
  comm_.agree([&] { values = read_dataset<std::uint64_t>(path_, kState + name); });
  return values;
}

std::vector<double> CheckpointReader::replicated_double(const std::string& name) {
  std::vector<double> values;
  comm_.agree([&] { values = read_dataset<double>(path_, kState + name); });
  return values;
}

template <class T>
std::vector<T> CheckpointReader::share(const std::string& name) {
  H5ParallelReader reader(comm_, path_);
  const auto shape = reader.shape(kState + name);
  const auto share = comm::BlockPartition(shape.empty() ? 0 : shape[0], comm_.size()).range(comm_.rank());
  auto values = reader.read_block<T>(kState + name, {share.begin}, {share.end - share.begin});
  reader.close();
  return values;
}

std::vector<std::uint64_t> CheckpointReader::distributed_uint64(const std::string& name) {
  return share<std::uint64_t>(name);
}
std::vector<std::int64_t> CheckpointReader::distributed_int64(const std::string& name) {
  return share<std::int64_t>(name);
}
std::vector<double> CheckpointReader::distributed_double(const std::string& name) {
  return share<double>(name);
}

std::vector<double> CheckpointReader::block_double(const std::string& name,
                                                   const std::vector<std::uint64_t>& offset,
                                                   const std::vector<std::uint64_t>& extent) {
  return read_state_block<double>(comm_, path_, kState + name, offset, extent);
}

std::vector<float> CheckpointReader::block_float(const std::string& name,
                                                 const std::vector<std::uint64_t>& offset,
                                                 const std::vector<std::uint64_t>& extent) {
  return read_state_block<float>(comm_, path_, kState + name, offset, extent);
}

std::vector<std::int64_t> CheckpointReader::block_int64(const std::string& name,
                                                        const std::vector<std::uint64_t>& offset,
                                                        const std::vector<std::uint64_t>& extent) {
  return read_state_block<std::int64_t>(comm_, path_, kState + name, offset, extent);
}

std::vector<std::uint64_t> CheckpointReader::shape(const std::string& name) {
  std::vector<std::uint64_t> dims;
  comm_.agree([&] { dims = dataset_shape(path_, kState + name); });
  return dims;
}

}  // namespace skein::io
