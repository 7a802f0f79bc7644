// How evenly the dsir job's read + featurise work on .jsonl.zst files spreads over R ranks (not a test):
// for each R, each rank's share of the 8 MB pieces is read and featurised in turn, timed by thread CPU
// seconds, so the figure does not depend on how loaded the machine is. The projected throughput at R ranks
// is the file's decompressed bytes / the busiest share's seconds. "before" reads the file unindexed (as skein
// did before files were indexed: the whole file goes to the rank holding its first byte); "after" indexes it
// (frames and decompressed size) and splits it in decompressed offsets, a rank decoding from the last frame
// start before its share.
//
//   mpicxx -std=c++17 -O2 -DNDEBUG -I. -I/usr/include/trilinos bench/dsir-scale/zst_shares.cpp \
//       build/jobs/dsir/libskein_job_dsir.a build/io/libskein_io_json.a build/comm/libskein_comm_core.a \
//       build/engine/libskein_engine_core.a -lsimdjson -lzstd -lxxhash -o /tmp/zst_shares
//   /tmp/zst_shares [--ranks 4] [--repeats 3] [--after-only] FILE.jsonl.zst ...   (median timing of each
//   share)
#include "comm/block_partition.hpp"
#include "io/input_files.hpp"
#include "io/jsonl_reader.hpp"
#include "io/zstd_index.hpp"
#include "jobs/dsir/featurizer.hpp"
#include "jobs/dsir/pieces.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

namespace {

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Thread CPU seconds to read and featurise rank `rank` of `size`'s share of the pieces, the job's way.
double share_seconds(const std::vector<skein::io::InputFile>& files, const skein::dsir::Settings& settings,
                     int rank, int size) {
  const skein::dsir::Pieces pieces(files, settings.piece_bytes);
  std::vector<std::uint64_t> all(pieces.count());
  for (std::uint64_t p = 0; p < all.size(); ++p) all[p] = p;
  const auto share = pieces.share(all, rank, size);
  skein::dsir::Featurizer featurizer(settings, files);
  skein::dsir::Tally tally;
  std::unique_ptr<skein::io::JsonlShard> reader;
  const double start = cpu_seconds();
  for (std::uint64_t p = share.begin; p < share.end; ++p) {
    if (!reader) {
      reader =
          std::make_unique<skein::io::JsonlShard>(files, std::vector<skein::io::ByteRange>{pieces.range(p)});
    } else {
      reader->retarget({pieces.range(p)});
    }
    while (reader->next_chunk(skein::io::JsonlShard::default_block_bytes, [&](const skein::io::Line& line) {
      featurizer.featurize(line, *reader, tally);
    })) {
    }
  }
  return cpu_seconds() - start;
}

}  // namespace

int main(int argc, char** argv) {
  int max_ranks = 4, repeats = 3;
  bool after_only = false;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--ranks" && i + 1 < argc) {
      max_ranks = std::atoi(argv[++i]);
    } else if (arg == "--repeats" && i + 1 < argc) {
      repeats = std::atoi(argv[++i]);
    } else if (arg == "--after-only") {
      after_only = true;
    } else {
      paths.push_back(arg);
    }
  }
  if (paths.empty() || max_ranks < 1 || repeats < 1) {
    std::fprintf(stderr, "usage: %s [--ranks 4] [--repeats 3] [--after-only] FILE.jsonl.zst ...\n", argv[0]);
    return 2;
  }
  std::vector<skein::io::InputFile> plain, indexed;
  double mb = 0, index_seconds = 0;
  std::size_t frames = 0;
  for (const auto& path : paths) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) return 1;
    skein::io::InputFile file{path, static_cast<std::uint64_t>(info.st_size), true};
    const double start = cpu_seconds();
    const auto index = skein::io::index_zstd_file(file.path, file.size);
    index_seconds += cpu_seconds() - start;
    plain.push_back(file);
    file.indexed = true;
    file.stream_size = index.stream_size;
    file.frames = index.frames;
    indexed.push_back(file);
    mb += static_cast<double>(index.stream_size) / 1e6;
    frames += index.frames.size();
  }
  skein::dsir::Settings settings;
  settings.text_field = "text";
  std::printf("%zu file(s), %.1f MB of text in %zu frame(s); indexing took %.3f s of CPU\n", paths.size(), mb,
              frames, index_seconds);
  for (const char* mode : {"before", "after"}) {
    if (after_only && std::string(mode) == "before") continue;
    const std::vector<skein::io::InputFile>& files = std::string(mode) == "before" ? plain : indexed;
    double one_rank = 0;
    for (int size = 1; size <= max_ranks; ++size) {
      double busiest = 0;
      std::string shares;
      for (int rank = 0; rank < size; ++rank) {
        std::vector<double> t(repeats);
        for (double& s : t) s = share_seconds(files, settings, rank, size);
        std::sort(t.begin(), t.end());
        busiest = std::max(busiest, t[t.size() / 2]);
        char text[32];
        std::snprintf(text, sizeof text, "%s%.2f", rank ? " " : "", t[t.size() / 2]);
        shares += text;
      }
      if (size == 1) one_rank = busiest;
      std::printf("%s, %d rank(s): shares take %s s; projected %.1f MB/s of text; efficiency %.3f\n", mode,
                  size, shares.c_str(), mb / busiest, one_rank / (size * busiest));
    }
  }
}
