#include "io/checkpoint.hpp"

#include "engine/error.hpp"
#include "io/atomic_output.hpp"
#include "io/h5_summary.hpp"
#include "io/hdf5.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace skein::io {

namespace {

const std::string kState = "/state/";

class CheckpointWriter : public engine::StateWriter {
 public:
  explicit CheckpointWriter(H5Writer& h5) : h5_(h5) {}
  void scalar(const std::string& name, std::int64_t value) override { h5_.set_attribute("/state", name, value); }
  void scalar(const std::string& name, double value) override { h5_.set_attribute("/state", name, value); }
  void replicated(const std::string& name, const std::vector<std::uint64_t>& v) override {
    h5_.write_replicated(kState + name, v);
  }
  void replicated(const std::string& name, const std::vector<double>& v) override {
    h5_.write_replicated(kState + name, v);
  }
  void distributed(const std::string& name, const std::vector<std::uint64_t>& v) override {
    h5_.write_distributed(kState + name, v);
  }
  void distributed(const std::string& name, const std::vector<std::int64_t>& v) override {
    h5_.write_distributed(kState + name, v);
  }
  void distributed(const std::string& name, const std::vector<double>& v) override {
    h5_.write_distributed(kState + name, v);
  }

 private:
  H5Writer& h5_;
};

// Elements [begin, begin + count) of a 1-D dataset, read serially.
template <class T>
std::vector<T> read_slice(const std::string& path, const std::string& name, std::uint64_t begin, std::uint64_t count) {
  using detail::check_id;
  using detail::check_status;
  using detail::H5Handle;
  detail::QuietErrors quiet;
  H5Handle file = detail::open_for_reading(path);
  H5Handle dataset(check_id(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), "H5Dopen2", path, name), H5Dclose);
  H5Handle file_space(check_id(H5Dget_space(dataset.get()), "H5Dget_space", path, name), H5Sclose);
  std::vector<T> values(static_cast<std::size_t>(count));
  if (count == 0) return values;
  const hsize_t start = begin, block = count;
  check_status(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &block, nullptr),
               "H5Sselect_hyperslab", path, name);
  H5Handle memory_space(check_id(H5Screate_simple(1, &block, nullptr), "H5Screate_simple", path, name), H5Sclose);
  check_status(H5Dread(dataset.get(), detail::native_type(detail::scalar_type_of<T>()), memory_space.get(),
                       file_space.get(), H5P_DEFAULT, values.data()),
               "H5Dread", path, name);
  return values;
}

}  // namespace

std::string checkpoint_path(const std::string& out_dir) { return out_dir + "/checkpoint.h5"; }
std::string previous_checkpoint_path(const std::string& out_dir) { return out_dir + "/checkpoint.prev.h5"; }

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
    CheckpointWriter writer(h5);
    save(writer);
    // Written last: a checkpoint without it was cut off before it was complete.
    h5.set_attribute("/", "checkpoint_complete", std::int64_t{1});
    h5.close();
  }
  // Keep the current checkpoint under the previous name (a hard link, so checkpoint.h5 never disappears)
  // before the new one replaces it.
  comm.agree([&] {
    if (comm.rank() != 0) return;
    const std::string previous = previous_checkpoint_path(out_dir);
    if (::unlink(previous.c_str()) != 0 && errno != ENOENT) {
      throw engine::InternalError("cannot remove " + previous + ": " + std::strerror(errno));
    }
    if (::link(final_path.c_str(), previous.c_str()) != 0 && errno != ENOENT) {
      throw engine::InternalError("cannot keep " + final_path + " as " + previous + ": " + std::strerror(errno));
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

std::optional<CheckpointInfo> find_checkpoint(const comm::Communicator& comm, const std::string& out_dir,
                                              std::vector<std::string>& warnings) {
  std::string found_path;
  std::string notes;
  if (comm.rank() == 0) {
    for (const std::string& path : {checkpoint_path(out_dir), previous_checkpoint_path(out_dir)}) {
      if (::access(path.c_str(), F_OK) != 0) continue;
      try {
        read_checkpoint_info(path);
        found_path = path;
        break;
      } catch (const std::exception& e) {
        notes += std::string(e.what()) + "\n";
      }
    }
  }
  comm.bcast(found_path, 0);
  comm.bcast(notes, 0);
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
  std::vector<T> values;
  comm_.agree([&] {
    const auto shape = dataset_shape(path_, kState + name);
    const std::uint64_t total = shape.empty() ? 0 : shape[0];
    using wide = unsigned __int128;
    const auto p = static_cast<unsigned>(comm_.size()), r = static_cast<unsigned>(comm_.rank());
    const auto begin = static_cast<std::uint64_t>(wide{total} * r / p);
    const auto end = static_cast<std::uint64_t>(wide{total} * (r + 1) / p);
    values = read_slice<T>(path_, kState + name, begin, end - begin);
  });
  return values;
}

std::vector<std::uint64_t> CheckpointReader::distributed_uint64(const std::string& name) {
  return share<std::uint64_t>(name);
}
std::vector<std::int64_t> CheckpointReader::distributed_int64(const std::string& name) {
  return share<std::int64_t>(name);
}
std::vector<double> CheckpointReader::distributed_double(const std::string& name) { return share<double>(name); }

}  // namespace skein::io
