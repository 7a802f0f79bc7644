// How evenly the dsir job's read + featurise work on ONE .jsonl.zst file spreads over R ranks (not a test):
// for each R, each rank's share of the 8 MB pieces is read and featurised in turn, timed by thread CPU
// seconds, so the figure does not depend on how loaded the machine is. The projected throughput at R ranks
// is the file's decompressed bytes / the busiest share's seconds. "before" reads the file unindexed (as skein
// did before files were indexed: the whole file goes to the rank holding its first byte); "after" indexes it
// (frames and decompressed size) and splits it in decompressed offsets, a rank decoding from the last frame
// start before its share.
//
//   mpicxx -std=c++17 -O2 -DNDEBUG -I. -I/usr/include/trilinos bench/dsir_zst_shares.cpp \
//       build/jobs/dsir/libskein_job_dsir.a build/io/libskein_io_json.a build/comm/libskein_comm_core.a \
//       build/engine/libskein_engine_core.a -lsimdjson -lzstd -lxxhash -lcrypto -o /tmp/dsir_zst_shares
//   /tmp/dsir_zst_shares FILE.jsonl.zst [MAX_RANKS]          (median of 3 timings of each share)
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
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE.jsonl.zst [MAX_RANKS]\n", argv[0]);
    return 2;
  }
  const int max_ranks = argc > 2 ? std::atoi(argv[2]) : 4;
  struct stat info {};
  if (::stat(argv[1], &info) != 0) return 1;
  skein::io::InputFile file{argv[1], static_cast<std::uint64_t>(info.st_size), true};
  const auto index = skein::io::index_zstd_file(file.path, file.size);
  double index_seconds = cpu_seconds();
  skein::io::index_zstd_file(file.path, file.size);
  index_seconds = cpu_seconds() - index_seconds;
  skein::io::InputFile indexed = file;
  indexed.indexed = true;
  indexed.stream_size = index.stream_size;
  indexed.frames = index.frames;
  skein::dsir::Settings settings;
  settings.text_field = "text";
  const double mb = static_cast<double>(index.stream_size) / 1e6;
  std::printf("%s: %.1f MB of text in %zu frame(s); indexing took %.3f s of CPU\n", argv[1], mb,
              index.frames.size(), index_seconds);
  for (const char* mode : {"before", "after"}) {
    const std::vector<skein::io::InputFile> files = {std::string(mode) == "before" ? file : indexed};
    for (int size = 1; size <= max_ranks; ++size) {
      double busiest = 0;
      std::string shares;
      for (int rank = 0; rank < size; ++rank) {
        double t[3];
        for (double& s : t) s = share_seconds(files, settings, rank, size);
        std::sort(t, t + 3);
        busiest = std::max(busiest, t[1]);
        char text[32];
        std::snprintf(text, sizeof text, "%s%.2f", rank ? " " : "", t[1]);
        shares += text;
      }
      std::printf("%s, %d rank(s): shares take %s s; projected %.1f MB/s of text\n", mode, size,
                  shares.c_str(), mb / busiest);
    }
  }
}
