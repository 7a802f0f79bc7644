// Generator of a Pile-like corpus for bench/dsir-scale (not a test): many `.jsonl.zst` shards of
// {"text": ..., "meta": {"pile_set_name": ...}} lines, seeded, sized by decompressed bytes.
//
//   g++ -std=c++17 -O2 -DNDEBUG bench/dsir-scale/gen_pile.cpp -o /tmp/gen_pile -lzstd -pthread
//   /tmp/gen_pile --out DIR [--gb 12] [--shards 3] [--seed 1] [--jobs 2] [--level 3] [--frame-mb 0]
//                 [--median-bytes 1500] [--sigma 1.4] [--brown FILE.jsonl] [--fortunes DIR]
//
// What makes it Pile-like:
// - Each shard is ONE zstd frame written by a streaming compressor (no content size in the frame header),
//   as the Pile's `NN.jsonl.zst` files are; `--frame-mb M` instead ends a frame every ~M MB of text
//   (multi-frame, as `zstd -T` or pzstd-style writers make).
// - Document lengths are lognormal in bytes (median 1.5 KB, sigma 1.4: mean ~4 KB, like the Pile's 825 GB
//   over ~211 M documents), capped at 4 MB.
// - Text is spans of real English (Brown corpus sentences, whole `fortunes`) mixed with runs of generated
//   words drawn log-uniformly (Zipf exponent 1) from a 10 M-word synthetic vocabulary, so the vocabulary
//   keeps growing with corpus size as web text does, and a hash cache cannot learn it all.
// - A "meta" object with a pile_set_name drawn with the Pile's document shares.
// Why C++: 12 GB must be made in minutes; generating is memcpy-bound and zstd -3 is the rest.
#include <zstd.h>

#include <dirent.h>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
  std::string out;
  double gb = 12;
  int shards = 3;
  std::uint64_t seed = 1;
  int jobs = 2;
  int level = 3;
  double frame_mb = 0;  // 0: one frame per shard
  double median_bytes = 1500;
  double sigma = 1.4;
  std::string brown = "/work/shared/data/brown/brown.jsonl";
  std::string fortunes = "/usr/share/games/fortunes";
};

// xoshiro256** seeded by splitmix64: fast and reproducible across platforms (std distributions are not).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    for (auto& s : state_) s = splitmix(seed);
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  std::uint64_t below(std::uint64_t n) {
    return static_cast<std::uint64_t>(uniform() * static_cast<double>(n));
  }
  double normal() {  // Box-Muller; one of the pair is enough here
    const double u1 = std::max(uniform(), 1e-300);
    return std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * uniform());
  }
  static std::uint64_t splitmix(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t state_[4];
};

// JSON-escapes `in` (valid UTF-8 passes through; control characters become escapes).
void append_escaped(std::string& out, const std::string& in) {
  for (unsigned char c : in) {
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
}

bool valid_utf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (n < 0) return false;
    for (int k = 1; k <= n; ++k) {
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    }
    i += n + 1;
  }
  return true;
}

// Text sources, stored JSON-escaped so that spans can be copied into the output unchanged. A span is cut
// only at spaces, which never fall inside an escape sequence.
struct Sources {
  std::vector<std::string> brown;     // each document's "text" value, as escaped in brown.jsonl
  std::vector<std::string> fortunes;  // each fortune, escaped here
};

Sources load_sources(const Options& options) {
  Sources sources;
  std::ifstream brown(options.brown);
  if (!brown) throw std::runtime_error("cannot open --brown " + options.brown);
  std::string line;
  const std::string key = "\"text\": \"";
  while (std::getline(brown, line)) {
    const auto at = line.find(key);
    if (at == std::string::npos) continue;
    std::size_t i = at + key.size();
    std::size_t end = i;
    while (end < line.size() && line[end] != '"') end += line[end] == '\\' ? 2 : 1;
    if (end > i) sources.brown.push_back(line.substr(i, end - i));
  }
  if (sources.brown.empty()) throw std::runtime_error("no \"text\" values in --brown " + options.brown);
  if (DIR* dir = ::opendir(options.fortunes.c_str())) {
    std::vector<std::string> names;
    while (dirent* entry = ::readdir(dir)) {
      const std::string name = entry->d_name;
      if (name[0] == '.' || name.find('.') != std::string::npos) continue;  // skip .dat/.u8 and offensive/
      names.push_back(name);
    }
    ::closedir(dir);
    std::sort(names.begin(), names.end());  // reproducible order
    for (const auto& name : names) {
      std::ifstream file(options.fortunes + "/" + name);
      std::stringstream text;
      text << file.rdbuf();
      std::string all = text.str();
      std::size_t start = 0;
      while (start < all.size()) {
        std::size_t stop = all.find("\n%\n", start);
        if (stop == std::string::npos) stop = all.size();
        std::string fortune = all.substr(start, stop - start);
        start = stop + 3;
        if (fortune.size() < 20 || !valid_utf8(fortune)) continue;
        std::string escaped;
        append_escaped(escaped, fortune);
        sources.fortunes.push_back(std::move(escaped));
      }
    }
  }
  return sources;
}

// The Pile's subsets with rough shares of its documents (Gao et al. 2020, table 1: documents per subset).
const char* const kSetNames[] = {"Pile-CC",
                                 "PubMed Central",
                                 "Books3",
                                 "OpenWebText2",
                                 "ArXiv",
                                 "Github",
                                 "FreeLaw",
                                 "StackExchange",
                                 "USPTO Backgrounds",
                                 "PubMed Abstracts",
                                 "Gutenberg (PG-19)",
                                 "OpenSubtitles",
                                 "Wikipedia (en)",
                                 "DM Mathematics",
                                 "Ubuntu IRC",
                                 "EuroParl",
                                 "HackerNews",
                                 "YoutubeSubtitles",
                                 "PhilPapers",
                                 "NIH ExPorter",
                                 "Enron Emails",
                                 "BookCorpus2"};
const double kSetShares[] = {25.0, 1.5, 0.1, 8.5,  0.6,  9.0, 1.8, 7.6,  2.9, 7.5,  0.01,
                             0.2,  3.0, 0.5, 0.01, 0.04, 0.4, 0.1, 0.02, 0.4, 0.25, 0.01};

class DocumentMaker {
 public:
  DocumentMaker(const Sources& sources, const Options& options, std::uint64_t seed)
      : sources_(sources), options_(options), rng_(seed) {
    double total = 0;
    for (double s : kSetShares) total += s;
    double sum = 0;
    for (double s : kSetShares) set_cdf_.push_back((sum += s) / total);
  }

  // Appends one JSONL line; returns its size in bytes.
  std::size_t append(std::string& out) {
    const std::size_t start = out.size();
    const double length = options_.median_bytes * std::exp(options_.sigma * rng_.normal());
    const std::size_t target = static_cast<std::size_t>(std::clamp(length, 20.0, 4e6));
    out += "{\"text\": \"";
    const std::size_t text_start = out.size();
    while (out.size() - text_start < target) {
      if (out.size() > text_start) out += rng_.uniform() < 0.15 ? "\\n\\n" : " ";
      const double kind = rng_.uniform();
      if (kind < 0.55) {
        brown_span(out, std::min<std::size_t>(target - (out.size() - text_start), 200 + rng_.below(1400)));
      } else if (kind < 0.70 && !sources_.fortunes.empty()) {
        out += sources_.fortunes[rng_.below(sources_.fortunes.size())];
      } else {
        generated_words(out, 5 + rng_.below(60));
      }
    }
    out += "\", \"meta\": {\"pile_set_name\": \"";
    const double u = rng_.uniform();
    std::size_t set = std::lower_bound(set_cdf_.begin(), set_cdf_.end(), u) - set_cdf_.begin();
    out += kSetNames[std::min(set, set_cdf_.size() - 1)];
    out += "\"}}\n";
    return out.size() - start;
  }

 private:
  // A run of about `bytes` bytes of a random Brown document, starting and ending at spaces.
  void brown_span(std::string& out, std::size_t bytes) {
    const std::string& doc = sources_.brown[rng_.below(sources_.brown.size())];
    std::size_t begin = doc.size() > bytes ? rng_.below(doc.size() - bytes) : 0;
    if (begin > 0) {
      const std::size_t space = doc.find(' ', begin);
      begin = space == std::string::npos ? doc.size() : space + 1;
    }
    std::size_t end = std::min(doc.size(), begin + bytes);
    if (end < doc.size()) {
      const std::size_t space = doc.rfind(' ', end);
      end = space == std::string::npos || space < begin ? begin : space;
    }
    out.append(doc, begin, end - begin);
  }

  // `count` synthetic words: word rank r = floor(V^u) (log-uniform, i.e. Zipf exponent 1 over V = 10 M
  // words), each rank spelled by a hash of r with English letter frequencies; some commas and full stops.
  void generated_words(std::string& out, std::uint64_t count) {
    static const char kLetters[] =
        "eeeeeeeeeeeetttttttttaaaaaaaaoooooooiiiiiiinnnnnnnsssssshhhhhhrrrrrrdddd"
        "lllluuucccmmmwwffggyyppbbvkjxqz";
    constexpr double kLogVocabulary = 16.11809565095832;  // ln(1e7)
    for (std::uint64_t w = 0; w < count; ++w) {
      if (w) out += ' ';
      std::uint64_t rank = static_cast<std::uint64_t>(std::exp(kLogVocabulary * rng_.uniform()));
      std::uint64_t h = Rng::splitmix(rank);
      const int letters = 2 + static_cast<int>(h % 7) + static_cast<int>((h >> 3) % 5);
      for (int k = 0; k < letters; ++k) {
        h = h * 6364136223846793005ULL + 1442695040888963407ULL;
        out += kLetters[(h >> 33) % (sizeof kLetters - 1)];
      }
      const double p = rng_.uniform();
      if (p < 0.06) {
        out += ',';
      } else if (p < 0.10) {
        out += '.';
      }
    }
  }

  const Sources& sources_;
  const Options& options_;
  Rng rng_;
  std::vector<double> set_cdf_;
};

struct ShardResult {
  std::uint64_t text_bytes = 0, compressed_bytes = 0, documents = 0, frames = 0;
};

ShardResult write_shard(const Sources& sources, const Options& options, int shard, std::uint64_t bytes) {
  char name[32];
  std::snprintf(name, sizeof name, "/%02d.jsonl.zst", shard);
  const std::string path = options.out + name;
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) throw std::runtime_error("cannot write " + path);
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, options.level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  std::vector<char> out_buffer(ZSTD_CStreamOutSize());
  DocumentMaker maker(sources, options, options.seed * 1000003 + static_cast<std::uint64_t>(shard));
  ShardResult result;
  const std::uint64_t frame_bytes =
      options.frame_mb > 0 ? static_cast<std::uint64_t>(options.frame_mb * 1e6) : UINT64_MAX;
  std::uint64_t in_frame = 0;
  std::string text;
  auto compress = [&](ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{text.data(), text.size(), 0};
    bool done = false;
    while (!done) {
      ZSTD_outBuffer out{out_buffer.data(), out_buffer.size(), 0};
      const std::size_t left = ZSTD_compressStream2(cctx, &out, &in, mode);
      if (ZSTD_isError(left)) throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(left));
      std::fwrite(out_buffer.data(), 1, out.pos, file);
      result.compressed_bytes += out.pos;
      done = mode == ZSTD_e_continue ? in.pos == in.size : left == 0;
    }
    text.clear();
  };
  while (result.text_bytes < bytes) {
    const std::size_t line = maker.append(text);
    result.text_bytes += line;
    in_frame += line;
    ++result.documents;
    if (in_frame >= frame_bytes) {  // frames end at line boundaries
      compress(ZSTD_e_end);
      ++result.frames;
      in_frame = 0;
    } else if (text.size() >= (1u << 20)) {
      compress(ZSTD_e_continue);
    }
  }
  if (in_frame > 0 || result.frames == 0) {
    compress(ZSTD_e_end);
    ++result.frames;
  }
  ZSTD_freeCCtx(cctx);
  if (std::fclose(file) != 0) throw std::runtime_error("cannot write " + path);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "gen_pile: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--out")
      options.out = value();
    else if (arg == "--gb")
      options.gb = std::stod(value());
    else if (arg == "--shards")
      options.shards = std::stoi(value());
    else if (arg == "--seed")
      options.seed = std::stoull(value());
    else if (arg == "--jobs")
      options.jobs = std::stoi(value());
    else if (arg == "--level")
      options.level = std::stoi(value());
    else if (arg == "--frame-mb")
      options.frame_mb = std::stod(value());
    else if (arg == "--median-bytes")
      options.median_bytes = std::stod(value());
    else if (arg == "--sigma")
      options.sigma = std::stod(value());
    else if (arg == "--brown")
      options.brown = value();
    else if (arg == "--fortunes")
      options.fortunes = value();
    else {
      std::fprintf(stderr, "gen_pile: unknown option %s (see the header of gen_pile.cpp)\n", arg.c_str());
      return 2;
    }
  }
  if (options.out.empty() || options.shards < 1 || options.gb <= 0 || options.jobs < 1) {
    std::fprintf(stderr, "usage: gen_pile --out DIR [--gb 12] [--shards 3] [--seed 1] [--jobs 2] ...\n");
    return 2;
  }
  try {
    const Sources sources = load_sources(options);
    const std::uint64_t per_shard = static_cast<std::uint64_t>(options.gb * 1e9 / options.shards);
    std::vector<ShardResult> results(options.shards);
    std::atomic<int> next{0};
    std::vector<std::thread> workers;
    std::string error;
    for (int j = 0; j < std::min(options.jobs, options.shards); ++j) {
      workers.emplace_back([&] {
        for (int shard; (shard = next++) < options.shards;) {
          try {
            results[shard] = write_shard(sources, options, shard, per_shard);
          } catch (const std::exception& e) {
            error = e.what();
          }
        }
      });
    }
    for (auto& w : workers) w.join();
    if (!error.empty()) throw std::runtime_error(error);
    ShardResult total;
    for (int s = 0; s < options.shards; ++s) {
      const auto& r = results[s];
      std::printf(
          "%s/%02d.jsonl.zst: %llu bytes of text, %llu documents, %.3f GB compressed, %llu frame(s)\n",
          options.out.c_str(), s, static_cast<unsigned long long>(r.text_bytes),
          static_cast<unsigned long long>(r.documents), r.compressed_bytes / 1e9,
          static_cast<unsigned long long>(r.frames));
      total.text_bytes += r.text_bytes;
      total.documents += r.documents;
      total.compressed_bytes += r.compressed_bytes;
    }
    std::printf(
        "total: %.3f GB of text, %llu documents (mean %.0f B), %.3f GB compressed; sources: %zu Brown "
        "documents, %zu fortunes\n",
        total.text_bytes / 1e9, static_cast<unsigned long long>(total.documents),
        static_cast<double>(total.text_bytes) / total.documents, total.compressed_bytes / 1e9,
        sources.brown.size(), sources.fortunes.size());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gen_pile: %s\n", e.what());
    return 1;
  }
  return 0;
}
