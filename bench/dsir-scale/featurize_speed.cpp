// CPU-time speed of dsir's whole featurisation (not a test): read a JSONL or .jsonl.zst file in 8 MB pieces
// the job's way (JsonlShard), parse each line's text field, lowercase + tokenize, hash 1- and 2-grams into
// buckets, and count them into a model (the raw fit pass without MPI, the feature cache or scoring), with
// hash=xxh3 and hash=sha256. Timed in thread CPU seconds, so the figure does not depend on machine load.
// Each pass uses a fresh Featurizer (a cold sha256 bucket cache, as a job's pass starts with).
//
//   mpicxx -std=c++17 -O2 -DNDEBUG -I. -I/usr/include/trilinos bench/dsir-scale/featurize_speed.cpp \
//       build/jobs/dsir/libskein_job_dsir.a build/io/libskein_io_json.a build/comm/libskein_comm_core.a \
//       build/engine/libskein_engine_core.a -lsimdjson -lzstd -lxxhash -o /tmp/featurize_speed
//   /tmp/featurize_speed [FILE] [PASSES] [xxh3|sha256|both]   (default brown.jsonl, 7 passes each, both)
#include "io/input_files.hpp"
#include "io/jsonl_reader.hpp"
#include "io/zstd_index.hpp"
#include "jobs/dsir/featurizer.hpp"
#include "jobs/dsir/pieces.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>

namespace {

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Thread CPU seconds of one featurisation pass over all pieces; `ngrams` gets the n-gram count.
double pass_seconds(const std::vector<skein::io::InputFile>& files, const skein::dsir::Settings& settings,
                    std::uint64_t& ngrams) {
  const double start = cpu_seconds();
  const skein::dsir::Pieces pieces(files, settings.piece_bytes);
  skein::dsir::Featurizer featurizer(settings, files);
  skein::dsir::Tally tally;
  std::vector<std::uint64_t> counts(settings.num_buckets);
  std::unique_ptr<skein::io::JsonlShard> reader;
  ngrams = 0;
  for (std::uint64_t p = 0; p < pieces.count(); ++p) {
    if (!reader) {
      reader =
          std::make_unique<skein::io::JsonlShard>(files, std::vector<skein::io::ByteRange>{pieces.range(p)});
    } else {
      reader->retarget({pieces.range(p)});
    }
    while (reader->next_chunk(skein::io::JsonlShard::default_block_bytes, [&](const skein::io::Line& line) {
      if (!featurizer.featurize(line, *reader, tally)) return;
      for (std::uint32_t b : featurizer.buckets()) ++counts[b];
      ngrams += featurizer.buckets().size();
    })) {
    }
  }
  return cpu_seconds() - start;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "/work/shared/data/brown/brown.jsonl";
  const int passes = argc > 2 ? std::atoi(argv[2]) : 7;
  const std::string which = argc > 3 ? argv[3] : "both";  // xxh3, sha256 or both
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    std::fprintf(stderr, "cannot stat %s\n", path.c_str());
    return 1;
  }
  skein::io::InputFile file{path, static_cast<std::uint64_t>(info.st_size), false};
  std::uint64_t bytes = file.size;
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".zst") == 0) {
    const auto index = skein::io::index_zstd_file(file.path, file.size);
    file.zstd = true;
    file.indexed = true;
    file.stream_size = index.stream_size;
    file.frames = index.frames;
    bytes = index.stream_size;
  }
  const std::vector<skein::io::InputFile> files = {file};
  std::printf("%s: %.2f MB of JSONL; %d passes each, thread CPU seconds\n", path.c_str(), bytes / 1e6,
              passes);
  for (auto hash : {skein::dsir::HashKind::xxh3, skein::dsir::HashKind::sha256}) {
    if (which != "both" && which != skein::dsir::to_string(hash)) continue;
    skein::dsir::Settings settings;
    settings.text_field = "text";
    settings.hash = hash;
    std::vector<double> seconds;
    std::uint64_t ngrams = 0;
    for (int i = 0; i < passes; ++i) seconds.push_back(pass_seconds(files, settings, ngrams));
    std::sort(seconds.begin(), seconds.end());
    const double median = seconds[seconds.size() / 2];
    std::printf(
        "hash=%-6s featurise + count: %7.1f MB per CPU-s median, %7.1f best, %5.1f ns per n-gram "
        "(%.1f M n-grams)\n",
        skein::dsir::to_string(hash), bytes / median / 1e6, bytes / seconds.front() / 1e6,
        median / static_cast<double>(ngrams) * 1e9, ngrams / 1e6);
  }
}
