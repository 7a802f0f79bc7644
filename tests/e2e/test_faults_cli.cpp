// Faults at scale for every job, at 2 ranks, one chain per job in one output folder: a checkpoint write
// that fails midway (exit 74; the previous checkpoint stays the valid one), then a resume whose rank 1
// stops responding (SIGSTOP: comm_timeout ends every rank, exit 69), then a resume whose rank 1 is killed
// (SIGKILL) while rank 0 waits for it in a collective (every process gone within seconds), then a resume
// to the end. Each resume starts from the newest good checkpoint, and the final output equals an
// uninterrupted run's bit for bit (run metadata such as timings aside).
#include "io/h5_reader.hpp"
#include "tests/e2e/cli_runner.hpp"
#include "tests/e2e/hessian_test_inputs.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

using namespace skein::test;

namespace {

const std::string kDsirData = std::string(SKEIN_TEST_DATA_DIR) + "/dsir";
constexpr double kRunTimeout = 120;    // a run still going after this long has hung: the test kills it
constexpr double kTimeoutSeconds = 2;  // comm_timeout of the run that gets a stopped rank

void info(const std::string& line) {
  std::cout << "[   info   ] " << line << std::endl;
}

// --- Comparing two HDF5 outputs ------------------------------------------------------------------------

// Run metadata that differs between any two runs: how long things took, when, and the run's id.
bool is_run_metadata(const std::string& name) {
  const std::string leaf = name.substr(name.find_last_of('/') + 1);
  for (const char* word : {"seconds", "_unix", "run_id", "timestamp"}) {
    if (leaf.find(word) != std::string::npos) return true;
  }
  return false;
}

// The bits of a dataset or attribute (variable-length strings as their text).
template <class Read>
std::string contents(hid_t type, hsize_t count, Read read) {
  if (H5Tis_variable_str(type) > 0) {
    std::vector<char*> strings(count, nullptr);
    if (read(type, strings.data()) < 0) return "(unreadable)";
    std::string text;
    for (char* s : strings) text += std::string(s ? s : "") + '\0';
    for (char* s : strings) std::free(s);
    return text;
  }
  std::string bytes(count * H5Tget_size(type), '\0');
  if (read(type, bytes.data()) < 0) return "(unreadable)";
  return bytes;
}

struct Items {
  std::map<std::string, std::string> by_name;  // "OBJECT" (dataset) or "OBJECT@ATTRIBUTE" -> bits
};

herr_t collect_attribute(hid_t object, const char* name, const H5A_info_t*, void* data) {
  auto& items = *static_cast<std::pair<Items*, std::string>*>(data);
  const std::string full = items.second + "@" + name;
  if (is_run_metadata(name)) return 0;
  const hid_t attribute = H5Aopen(object, name, H5P_DEFAULT);
  const hid_t type = H5Aget_type(attribute);
  const hid_t space = H5Aget_space(attribute);
  const hssize_t count = H5Sget_simple_extent_npoints(space);
  items.first->by_name[full] = contents(type, static_cast<hsize_t>(count),
                                        [&](hid_t t, void* buffer) { return H5Aread(attribute, t, buffer); });
  H5Sclose(space);
  H5Tclose(type);
  H5Aclose(attribute);
  return 0;
}

void collect_object(hid_t file, const std::string& name, Items& items) {
  const hid_t object = H5Oopen(file, name.c_str(), H5P_DEFAULT);
  if (object < 0) return;
  std::pair<Items*, std::string> context{&items, name};
  H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_attribute, &context);
  if (H5Iget_type(object) == H5I_DATASET && !is_run_metadata(name)) {
    const hid_t type = H5Dget_type(object);
    const hid_t space = H5Dget_space(object);
    const hssize_t count = H5Sget_simple_extent_npoints(space);
    items.by_name[name] = contents(type, static_cast<hsize_t>(count), [&](hid_t t, void* buffer) {
      return H5Dread(object, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer);
    });
    H5Sclose(space);
    H5Tclose(type);
  }
  H5Oclose(object);
}

herr_t collect_link(hid_t, const char* name, const H5L_info_t*, void* data) {
  auto& context = *static_cast<std::pair<hid_t, Items*>*>(data);
  collect_object(context.first, std::string("/") + name, *context.second);
  return 0;
}

Items h5_items(const std::string& path) {
  Items items;
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) {
    ADD_FAILURE() << "cannot open " << path;
    return items;
  }
  collect_object(file, "/", items);
  std::pair<hid_t, Items*> context{file, &items};
  H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, collect_link, &context);
  H5Fclose(file);
  return items;
}

// The names whose bits differ, or that only one file has ("" when the files are the same).
std::string differences(const std::string& a, const std::string& b) {
  const Items left = h5_items(a), right = h5_items(b);
  std::string found;
  for (const auto& [name, bits] : left.by_name) {
    const auto it = right.by_name.find(name);
    if (it == right.by_name.end()) {
      found += " " + name + " (only in the first)";
    } else if (it->second != bits) {
      found += " " + name;
    }
  }
  for (const auto& [name, bits] : right.by_name) {
    if (!left.by_name.count(name)) found += " " + name + " (only in the second)";
  }
  if (left.by_name.empty()) found += " (nothing read)";
  return found;
}

// --- The jobs --------------------------------------------------------------------------------------------

struct JobCase {
  std::string name;                 // the job, and its HDF5 output's stem
  std::vector<std::string> args;    // run JOB ... without --out
  std::int64_t cadence = 2;         // --checkpoint-steps
  std::vector<std::string> others;  // further output files compared byte for byte
};

std::int64_t checkpoint_step(const std::string& path) {
  try {
    return skein::io::read_int64_attribute(path, "/", "checkpoint_step");
  } catch (const std::exception&) {
    return -1;
  }
}

std::vector<std::string> plus(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// Whether `pid` is stopped (state T in /proc/PID/stat).
bool is_stopped(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  const auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'T';
}

// The uninterrupted run goes to ROOT/straight, the faulty ones to ROOT/faulty.
void run_fault_chain(const JobCase& job, const std::string& root) {
  const std::string straight = root + "/straight", out = root + "/faulty";
  const std::string h5 = "/" + job.name + ".h5";
  const std::string cadence = std::to_string(job.cadence);
  const auto with_out = [&](const std::string& dir, const std::vector<std::string>& more) {
    return plus(plus(job.args, {"--out", dir, "--checkpoint-steps", cadence}), more);
  };

  const RunResult reference = run_skein(2, plus(job.args, {"--out", straight}), kRunTimeout);
  ASSERT_EQ(reference.exit_code, 0) << reference.output;
  info(job.name + ": uninterrupted run " + std::to_string(reference.seconds) + " s");

  // 1. The second checkpoint write fails after writing part of its file.
  {
    auto run = start_skein(2, with_out(out, {}), {{"SKEIN_FAULT_INJECT", "checkpoint_write:2"}});
    const BackgroundResult ended = run.wait(kRunTimeout);
    ASSERT_EQ(ended.exit_code, 74) << ended.output;
    EXPECT_NE(ended.output.find("skein: error: rank 1: cannot write " + out + "/checkpoint.h5.tmp: injected"),
              std::string::npos)
        << ended.output;
    EXPECT_FALSE(has_tmp_file(out)) << join(dir_entries(out));
    EXPECT_FALSE(file_exists(out + h5));
  }
  const std::int64_t first = checkpoint_step(out + "/checkpoint.h5");
  ASSERT_GT(first, 0) << "the first checkpoint is not a valid one: " << join(dir_entries(out));

  // 2. Rank 1 stops (SIGSTOP) one step after the resume's first checkpoint; rank 0 waits in the step's
  //    first collective until comm_timeout aborts the run.
  const std::int64_t stop_at = first + job.cadence + 1;
  {
    auto run = start_skein(2,
                           with_out(out, {"--resume", "--" + job.name + ".comm_timeout=" +
                                                          std::to_string(static_cast<int>(kTimeoutSeconds))}),
                           {{"SKEIN_FAULT", "stop:1:" + std::to_string(stop_at)}});
    double stopped_at = -1;
    run.wait_until(
        [&] {
          for (const pid_t pid : run.ranks()) {
            if (is_stopped(pid)) {
              stopped_at = run.seconds();
              return true;
            }
          }
          return false;
        },
        kRunTimeout);
    const BackgroundResult ended = run.wait(kRunTimeout);
    ASSERT_FALSE(ended.timed_out) << "a stopped rank held the run: " << ended.output;
    ASSERT_GE(stopped_at, 0) << "rank 1 never stopped (did the run have " << stop_at << " steps?)\n"
                             << ended.output;
    const double to_end = ended.seconds - stopped_at;
    info(job.name + ": rank 1 stopped at step " + std::to_string(stop_at) + "; every process gone " +
         std::to_string(to_end) + " s later (comm_timeout " + std::to_string(kTimeoutSeconds) + " s)");
    EXPECT_GE(to_end, kTimeoutSeconds - 0.2);
    EXPECT_LT(to_end, kTimeoutSeconds + 15) << ended.output;
    EXPECT_EQ(ended.exit_code, 69) << ended.output;
    EXPECT_NE(ended.output.find("skein: error: rank 0: no response from the other ranks within 2 s in MPI_"),
              std::string::npos)
        << ended.output;
    EXPECT_NE(ended.output.find("resuming from " + out + "/checkpoint.h5 (step " + std::to_string(first)),
              std::string::npos)
        << ended.output;
  }
  const std::int64_t second = checkpoint_step(out + "/checkpoint.h5");
  EXPECT_EQ(second, first + job.cadence);

  // 3. Rank 1 dies by SIGKILL while rank 0 goes on into the step's collectives.
  const std::int64_t kill_at = second + job.cadence + 1;
  {
    auto run =
        start_skein(2, with_out(out, {"--resume"}), {{"SKEIN_FAULT", "kill:1:" + std::to_string(kill_at)}});
    const BackgroundResult ended = run.wait(kRunTimeout);
    ASSERT_FALSE(ended.timed_out) << "a killed rank held the run: " << ended.output;
    info(job.name + ": rank 1 killed at step " + std::to_string(kill_at) + "; exit " +
         std::to_string(ended.exit_code) + ", every process gone " + std::to_string(ended.all_gone_after) +
         " s after the first");
    EXPECT_LT(ended.all_gone_after, 10) << ended.output;
    EXPECT_EQ(ended.exit_code, 137) << ended.output;  // mpirun: 128 + SIGKILL, the failed rank's status
    EXPECT_NE(ended.output.find("exited on signal 9 (Killed)"), std::string::npos) << ended.output;
    EXPECT_FALSE(file_exists(out + h5));
  }
  const std::int64_t third = checkpoint_step(out + "/checkpoint.h5");
  EXPECT_EQ(third, second + job.cadence);

  // 4. The last resume finishes, from the newest checkpoint, to the uninterrupted run's output.
  const RunResult resumed = run_skein(2, with_out(out, {"--resume"}), kRunTimeout);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from " + out + "/checkpoint.h5 (step " + std::to_string(third)),
            std::string::npos)
      << resumed.output;
  EXPECT_EQ(differences(straight + h5, out + h5), "") << "datasets or attributes that differ";
  for (const auto& other : job.others) {
    EXPECT_EQ(read_file(straight + "/" + other), read_file(out + "/" + other)) << other;
  }
  EXPECT_FALSE(file_exists(out + "/checkpoint.h5"));
}

void run_fault_chain(const JobCase& job) {
  run_fault_chain(job, make_temp_dir("faults-" + job.name));
}

// --- Inputs ----------------------------------------------------------------------------------------------

// A 8-16-4 tanh MLP and 120 labelled rows of 8 features.
std::pair<std::string, std::string> hessian_inputs() {
  const auto made = write_tanh_mlp_inputs(make_temp_dir("faults-hessian-in"), {8, 16, 4}, 120);
  return {made.model, made.data};
}

}  // namespace

TEST(Faults, Dsir) {
  run_fault_chain({"dsir",
                   {"run", "dsir", "--dsir.raw=" + kDsirData + "/brown_raw.jsonl",
                    "--dsir.target=" + kDsirData + "/brown_target.jsonl", "--dsir.num_select=100",
                    "--dsir.piece_size=16k", "--dsir.seed=7"},
                   2,
                   {"selected.jsonl"}});
}

TEST(Faults, Poisson) {
  const std::vector<std::string> args = {"run",
                                         "poisson",
                                         "--poisson.grid=24,18,16",
                                         "--poisson.problem=smoke",
                                         "--poisson.solver=mgpcg",
                                         "--poisson.mg_levels=2"};
  const std::string root = make_temp_dir("faults-poisson"), straight = root + "/straight";
  run_fault_chain({"poisson", plus(args, {"--poisson.tol=1e-10"}), 2}, root);
  // The comparison sees a difference where there is one: a looser tolerance stops earlier.
  const std::string looser = make_temp_dir("faults-poisson-looser");
  const RunResult other = run_skein(2, plus(args, {"--poisson.tol=1e-6", "--out", looser}), kRunTimeout);
  ASSERT_EQ(other.exit_code, 0) << other.output;
  const std::string found = differences(straight + "/poisson.h5", looser + "/poisson.h5");
  EXPECT_NE(found.find("/solution"), std::string::npos) << found;
  EXPECT_NE(found.find("/@iterations"), std::string::npos) << found;
}

TEST(Faults, Hessian) {
  const auto [model, data] = hessian_inputs();
  run_fault_chain(
      {"hessian",
       {"run", "hessian", "--hessian.model=" + model, "--hessian.data=" + data, "--hessian.top_k=4",
        "--hessian.bottom_k=2", "--hessian.lanczos_steps=14", "--hessian.tol=1e-10",
        "--hessian.trace_samples=6", "--hessian.slq_vectors=2", "--hessian.slq_steps=10"},
       4});
}

TEST(Faults, Cca) {
  const std::string synth = make_temp_dir("faults-cca-in");
  const RunResult made =
      run_skein(1,
                {"run", "cca-synth", "--out", synth, "--cca-synth.samples=600", "--cca-synth.snps=300",
                 "--cca-synth.y_features=10", "--cca-synth.signal_fraction=0.3",
                 "--cca-synth.correlations=0.6,0.5,0.4"},
                kRunTimeout);
  ASSERT_EQ(made.exit_code, 0) << made.output;
  run_fault_chain({"cca",
                   {"run", "cca", "--cca.x=" + synth + "/synth", "--cca.y=" + synth + "/synth_y.h5:/Y",
                    "--cca.components=3", "--cca.epochs=4", "--cca.batch_size=100"},
                   3});
}

TEST(Faults, DcdmTrain) {
  run_fault_chain({"dcdm-train",
                   {"run", "dcdm-train", "--dcdm-train.grid=8", "--dcdm-train.ritz_vectors=40",
                    "--dcdm-train.train_vectors=20", "--dcdm-train.batch_size=5", "--dcdm-train.epochs=4",
                    "--dcdm-train.lr=1e-3", "--dcdm-train.channels=8", "--dcdm-train.seed=5"},
                   2});
}
