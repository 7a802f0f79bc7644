// H5Writer, AtomicOutput, write_concatenated and summarize_h5: what the files hold after a parallel write,
// whatever the rank count.
#include "comm/communicator.hpp"
#include "engine/error.hpp"
#include "io/atomic_output.hpp"
#include "io/h5_summary.hpp"
#include "io/hdf5.hpp"
#include "io/text_output.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using skein::comm::Communicator;
namespace io = skein::io;
namespace fs = std::filesystem;

class SharedDir {
 public:
  explicit SharedDir(const Communicator& comm) : comm_(comm) {
    if (comm_.rank() == 0) {
      std::string name = (fs::temp_directory_path() / "skein-h5-XXXXXX").string();
      if (::mkdtemp(name.data()) == nullptr) name.clear();
      path_ = name;
    }
    comm_.bcast(path_, 0);
    if (path_.empty()) throw std::runtime_error("mkdtemp failed");
  }
  ~SharedDir() {
    comm_.barrier();
    if (comm_.rank() == 0) fs::remove_all(path_);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  const Communicator& comm_;
  std::string path_;
};

// This rank's [begin, end) of n items, deliberately uneven: rank 1 gets nothing when there are 2+ ranks,
// and the last rank gets the remainder.
std::pair<std::size_t, std::size_t> uneven_part(std::size_t n, int rank, int size) {
  if (size == 1) return {0, n};
  std::vector<std::size_t> counts(static_cast<std::size_t>(size), 0);
  const std::size_t others = static_cast<std::size_t>(size - 1);  // everyone but rank 1
  for (int r = 0; r < size; ++r) {
    if (r != 1) counts[static_cast<std::size_t>(r)] = n / others;
  }
  counts.back() += n - (n / others) * others;
  std::size_t begin = 0;
  for (int r = 0; r < rank; ++r) begin += counts[static_cast<std::size_t>(r)];
  return {begin, begin + counts[static_cast<std::size_t>(rank)]};
}

template <class T>
std::vector<T> global_values(std::size_t n, double scale) {
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<T>(static_cast<double>(i) * scale + 1);
  return v;
}

template <class T>
std::vector<T> slice(const std::vector<T>& v, std::pair<std::size_t, std::size_t> part) {
  return std::vector<T>(v.begin() + static_cast<std::ptrdiff_t>(part.first),
                        v.begin() + static_cast<std::ptrdiff_t>(part.second));
}

TEST(Hdf5Io, DistributedWritesReadBackAsTheGlobalArray) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm);
  const std::size_t n = 23;
  const auto part = uneven_part(n, comm.rank(), comm.size());
  const auto doubles = global_values<double>(n, 0.5);
  const auto floats = global_values<float>(n, 0.25);
  const auto i32 = global_values<std::int32_t>(n, -3);
  const auto u32 = global_values<std::uint32_t>(n, 1e8);
  const auto i64 = global_values<std::int64_t>(n, -4e15);
  const auto u64 = global_values<std::uint64_t>(n, 7e17);
  const auto u8 = global_values<std::uint8_t>(n, 11);
  // 2-D: 17 rows of 3 columns, row r = {10r, 10r+1, 10r+2}.
  const std::size_t rows = 17;
  const std::size_t cols = 3;
  std::vector<double> matrix(rows * cols);
  for (std::size_t i = 0; i < matrix.size(); ++i) matrix[i] = static_cast<double>(10 * (i / cols) + i % cols);
  const auto row_part = uneven_part(rows, comm.rank(), comm.size());

  io::AtomicOutput out(comm, dir.file("arrays.h5"));
  {
    io::H5Writer h5(comm, out.tmp_path());
    h5.write_distributed("/values/f64", slice(doubles, part));
    h5.write_distributed("/values/f32", slice(floats, part));
    h5.write_distributed("/values/i32", slice(i32, part));
    h5.write_distributed("/values/u32", slice(u32, part));
    h5.write_distributed("/values/i64", slice(i64, part));
    h5.write_distributed("/values/u64", slice(u64, part));
    h5.write_distributed("/values/u8", slice(u8, part));
    h5.write_distributed("/selected/file_index", std::vector<std::int32_t>{});  // empty everywhere
    // Only the last rank has data.
    std::vector<std::int64_t> last_only;
    if (comm.rank() == comm.size() - 1) last_only = {5, 6, 7};
    h5.write_distributed("deep/er/last_only", last_only);
    h5.write_distributed_rows("/matrix", matrix.data() + row_part.first * cols,
                              row_part.second - row_part.first, cols);
    h5.write_replicated("/model/weights", std::vector<double>{1.5, -2.25, 1e-300});
    h5.write_replicated_rows("/model/table", matrix.data(), 2, cols);
    h5.close();
  }
  out.commit();

  const std::string path = dir.file("arrays.h5");
  EXPECT_EQ(io::read_dataset<double>(path, "/values/f64"), doubles);
  EXPECT_EQ(io::read_dataset<float>(path, "/values/f32"), floats);
  EXPECT_EQ(io::read_dataset<std::int32_t>(path, "/values/i32"), i32);
  EXPECT_EQ(io::read_dataset<std::uint32_t>(path, "/values/u32"), u32);
  EXPECT_EQ(io::read_dataset<std::int64_t>(path, "/values/i64"), i64);
  EXPECT_EQ(io::read_dataset<std::uint64_t>(path, "/values/u64"), u64);
  EXPECT_EQ(io::read_dataset<std::uint8_t>(path, "/values/u8"), u8);
  EXPECT_EQ(io::dataset_shape(path, "/values/f64"), std::vector<std::uint64_t>{n});
  EXPECT_EQ(io::dataset_shape(path, "/selected/file_index"), std::vector<std::uint64_t>{0});
  EXPECT_TRUE(io::read_dataset<std::int32_t>(path, "/selected/file_index").empty());
  EXPECT_EQ(io::read_dataset<std::int64_t>(path, "/deep/er/last_only"), (std::vector<std::int64_t>{5, 6, 7}));
  EXPECT_EQ(io::dataset_shape(path, "/matrix"), (std::vector<std::uint64_t>{rows, cols}));
  EXPECT_EQ(io::read_dataset<double>(path, "/matrix"), matrix);
  EXPECT_EQ(io::read_dataset<double>(path, "/model/weights"), (std::vector<double>{1.5, -2.25, 1e-300}));
  EXPECT_EQ(io::read_dataset<double>(path, "/model/table"),
            std::vector<double>(matrix.begin(), matrix.begin() + 6));
  // Conversion on read works too (the file stores int32).
  EXPECT_EQ(io::read_dataset<double>(path, "/values/i32")[2], static_cast<double>(i32[2]));
}

TEST(Hdf5Io, StringsAndAttributes) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm);
  const std::vector<std::string> names = {"alpha",
                                          "\xce\xb2-\xc3\xbcnic\xc3\xb6"
                                          "de",
                                          "", "with \"quotes\""};
  std::string config = "[dsir]\n";
  for (int i = 0; i < 6000; ++i) config += "key" + std::to_string(i) + " = value " + std::to_string(i) + "\n";
  ASSERT_GT(config.size(), 64u * 1024u);  // past HDF5's compact attribute limit

  io::AtomicOutput out(comm, dir.file("attrs.h5"));
  {
    io::H5Writer h5(comm, out.tmp_path());
    h5.set_attribute("/", "job", "test");
    h5.set_attribute("/", "status", "running");
    h5.set_attribute("/", "status", std::string("done"));  // replaced
    h5.set_attribute("/", "ranks", comm.size());
    h5.set_attribute("/", "seed", std::uint64_t{1} << 63);
    h5.set_attribute("/", "wall_seconds", 1.25);
    h5.set_attribute("/", "config", config);
    h5.write_strings("/inputs/files", names);
    h5.set_attribute("/inputs/files", "note", "attribute on a string dataset");
    h5.set_attribute("/metrics", "selected_fraction", 0.125);  // creates the group
    h5.set_attribute("/metrics", "documents", std::int64_t{-42});
    h5.write_strings("/empty_list", {});
    h5.create_group("/a/b/c");
    h5.close();  // collective: also writes the strings
  }
  out.commit();

  const std::string path = dir.file("attrs.h5");
  EXPECT_EQ(io::read_strings(path, "/inputs/files"), names);
  EXPECT_TRUE(io::read_strings(path, "/empty_list").empty());
  EXPECT_EQ(io::read_string_attribute(path, "/", "job"), "test");
  EXPECT_EQ(io::read_string_attribute(path, "/", "status"), "done");
  EXPECT_EQ(io::read_string_attribute(path, "/", "config"), config);
  EXPECT_EQ(io::read_int64_attribute(path, "/", "ranks"), comm.size());
  EXPECT_EQ(io::read_double_attribute(path, "/", "wall_seconds"), 1.25);
  EXPECT_EQ(io::read_double_attribute(path, "/metrics", "selected_fraction"), 0.125);
  EXPECT_EQ(io::read_int64_attribute(path, "/metrics", "documents"), -42);
  EXPECT_EQ(io::read_string_attribute(path, "/inputs/files", "note"), "attribute on a string dataset");
  EXPECT_TRUE(io::h5_exists(path, "/a/b/c"));
  EXPECT_TRUE(io::h5_exists(path, "/", "seed"));
  EXPECT_FALSE(io::h5_exists(path, "/nope/deeper"));
  EXPECT_FALSE(io::h5_exists(path, "/", "nope"));
  EXPECT_THROW(io::read_string_attribute(path, "/", "nope"), skein::engine::DataError);
  EXPECT_THROW(io::read_dataset<double>(path, "/nope"), skein::engine::DataError);
}

TEST(Hdf5Io, FileAppearsOnlyAfterCommit) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm);
  const std::string final_path = dir.file("sub/dir/out.h5");  // parent directories are created
  {
    io::AtomicOutput out(comm, final_path);
    EXPECT_EQ(out.tmp_path(), final_path + ".tmp");
    {
      io::H5Writer h5(comm, out.tmp_path());
      h5.write_distributed("/x", std::vector<double>{static_cast<double>(comm.rank())});
      h5.close();
    }
    comm.barrier();
    EXPECT_TRUE(fs::exists(out.tmp_path()));
    EXPECT_FALSE(fs::exists(final_path));
    out.commit();
    EXPECT_TRUE(out.committed());
    EXPECT_TRUE(fs::exists(final_path));
    EXPECT_FALSE(fs::exists(out.tmp_path()));
  }
  comm.barrier();
  EXPECT_TRUE(fs::exists(final_path));  // the destructor leaves a committed file alone
  EXPECT_FALSE(fs::exists(final_path + ".tmp"));
  std::vector<double> expected;
  for (int r = 0; r < comm.size(); ++r) expected.push_back(r);
  EXPECT_EQ(io::read_dataset<double>(final_path, "/x"), expected);
}

TEST(Hdf5Io, UncommittedOutputLeavesNothing) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm);
  const std::string final_path = dir.file("failed.h5");
  try {
    io::AtomicOutput out(comm, final_path);
    io::H5Writer h5(comm, out.tmp_path());
    h5.write_distributed("/x", std::vector<int>{1, 2, 3});
    comm.agree([&] {
      if (comm.rank() == comm.size() - 1) throw skein::engine::DataError("bad input on the last rank");
    });
    ADD_FAILURE() << "agree() did not throw";
  } catch (const skein::engine::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("bad input on the last rank"), std::string::npos);
  }
  // The writer's destructor did not communicate; its file is closed collectively now that all agreed.
  EXPECT_EQ(io::close_abandoned_files(), 1);
  comm.barrier();
  EXPECT_FALSE(fs::exists(final_path));
  EXPECT_FALSE(fs::exists(final_path + ".tmp"));
  comm.barrier();  // every rank looked before rank 0 writes the files below

  // A stale tmp from a crashed run is cleared, and a commit replaces an older final file.
  if (comm.rank() == 0) {
    std::ofstream(final_path + ".tmp") << "stale";
    std::ofstream(final_path) << "old";
  }
  comm.barrier();
  {
    io::AtomicOutput out(comm, final_path);
    io::H5Writer h5(comm, out.tmp_path());
    h5.write_replicated("/y", std::vector<int>{4});
    h5.close();
    out.commit();
  }
  EXPECT_EQ(io::read_dataset<int>(final_path, "/y"), std::vector<int>{4});
}

TEST(Hdf5Io, MismatchedShapesAreAnErrorOnEveryRank) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm);
  io::AtomicOutput out(comm, dir.file("bad.h5"));
  io::H5Writer h5(comm, out.tmp_path());
  std::vector<double> data(static_cast<std::size_t>(2 * (comm.rank() + 1)), 1.0);
  if (comm.size() > 1) {
    EXPECT_THROW(h5.write_distributed_rows("/m", data.data(), 1, data.size()), skein::engine::InternalError);
    EXPECT_THROW(h5.write_replicated("/r", data), skein::engine::InternalError);
  }
  h5.write_distributed("/ok", data);
  // The same dataset twice is an error, agreed by every rank.
  EXPECT_THROW(h5.write_distributed("/ok", data), skein::engine::InternalError);
  h5.close();
}

TEST(Hdf5Io, SummaryShowsAttributesDatasetsAndValues) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm);
  const auto part = uneven_part(10, comm.rank(), comm.size());
  const auto values = global_values<double>(10, 0.5);
  io::AtomicOutput out(comm, dir.file("dsir.h5"));
  {
    io::H5Writer h5(comm, out.tmp_path());
    h5.set_attribute("/", "wall_seconds", 2.5);
    h5.set_attribute("/", "job", "dsir");
    h5.set_attribute("/", "status", "done");
    h5.set_attribute("/", "skein_version", "0.1.0");
    h5.set_attribute("/", "ranks", comm.size());
    h5.set_attribute("/", "seed", 42);
    h5.set_attribute("/", "config", "[dsir]\nnum_to_sample = 10\n");
    h5.write_distributed("/selected/log_weight", slice(values, part));
    h5.write_strings("/inputs/files", {"raw.jsonl", "more.jsonl"});
    std::vector<std::int32_t> m = {1, 2, 3, 4, 5, 6, 7, 8};
    h5.write_replicated_rows("/matrix", m.data(), 2, 4);
    h5.set_attribute("/metrics", "target_genre_precision", 0.875);
    h5.set_attribute("/selected/log_weight", "units", "nats");
    h5.close();
  }
  out.commit();
  const std::string text = io::summarize_h5(dir.file("dsir.h5"), 4);
  if (comm.rank() == 0) std::printf("%s", text.c_str());
  auto has = [&](const std::string& needle) { return text.find(needle) != std::string::npos; };
  EXPECT_TRUE(has("job            dsir\n")) << text;
  EXPECT_LT(text.find("job"), text.find("wall_seconds"));  // fixed order, not alphabetical
  EXPECT_TRUE(has("ranks          " + std::to_string(comm.size()) + "\n")) << text;
  EXPECT_TRUE(has("config:\n  [dsir]\n  num_to_sample = 10\n")) << text;
  EXPECT_TRUE(has("/selected/log_weight  float64  [10]  = 1, 1.5, 2, 2.5, ...")) << text;
  EXPECT_TRUE(has("@units = \"nats\"")) << text;
  EXPECT_TRUE(has("/inputs/files  string  [2]  = \"raw.jsonl\", \"more.jsonl\"\n")) << text;
  EXPECT_TRUE(has("/matrix  int32  [2, 4]  = 1, 2, 3, 4, ...")) << text;
  EXPECT_TRUE(has("/metrics\n    target_genre_precision  0.875")) << text;

  EXPECT_THROW(io::summarize_h5(dir.file("missing.h5")), skein::engine::DataError);
  if (comm.rank() == 0) std::ofstream(dir.file("text.h5")) << "not hdf5\n";
  comm.barrier();
  try {
    io::summarize_h5(dir.file("text.h5"));
    ADD_FAILURE() << "a text file was summarized";
  } catch (const skein::engine::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("text.h5"), std::string::npos) << e.what();
  }
}

TEST(TextOutput, ConcatenatesInRankOrder) {
  Communicator comm(MPI_COMM_WORLD);
  SharedDir dir(comm);
  auto bytes_of = [](int rank) {
    if (rank == 1) return std::string();  // an empty part in the middle
    std::string s;
    for (int i = 0; i <= rank; ++i) s += "rank " + std::to_string(rank) + " line " + std::to_string(i) + "\n";
    return s;
  };
  const std::string path = dir.file("out/selected.jsonl");
  io::write_concatenated(comm, path, bytes_of(comm.rank()));
  std::string expected;
  for (int r = 0; r < comm.size(); ++r) expected += bytes_of(r);
  std::ifstream in(path, std::ios::binary);
  std::stringstream got;
  got << in.rdbuf();
  EXPECT_EQ(got.str(), expected);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  // Rewriting a shorter file leaves no tail of the old one.
  io::write_concatenated(comm, path, comm.rank() == 0 ? "x" : "");
  std::ifstream again(path, std::ios::binary);
  std::stringstream got2;
  got2 << again.rdbuf();
  EXPECT_EQ(got2.str(), "x");
}

}  // namespace
