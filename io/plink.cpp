#include "io/plink.hpp"

#include "engine/error.hpp"
#include "io/file_space.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <utility>

namespace skein::io {

namespace {

using engine::DataError;

std::string errno_message(int e) {
  return std::strerror(e);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open it: " + errno_message(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw DataError(path + ": reading failed: " + errno_message(errno));
  return text.str();
}

// Calls `on_line(line_number, fields)` for every line of `text` (1-based numbers); an empty last line
// (the file's final newline) is not a line.
template <class F>
void for_each_line(const std::string& text, F&& on_line) {
  std::size_t begin = 0;
  std::int64_t number = 0;
  std::vector<std::string> fields;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::size_t stop = end;
    if (stop > begin && text[stop - 1] == '\r') --stop;
    ++number;
    fields.clear();
    std::size_t at = begin;
    while (at < stop) {
      while (at < stop && (text[at] == ' ' || text[at] == '\t')) ++at;
      if (at >= stop) break;
      const std::size_t field_begin = at;
      while (at < stop && text[at] != ' ' && text[at] != '\t') ++at;
      fields.emplace_back(text, field_begin, at - field_begin);
    }
    on_line(number, fields);
    begin = end + 1;
  }
}

std::string where(const std::string& path, std::int64_t line) {
  return path + ":" + std::to_string(line);
}

void require_six(const std::string& path, std::int64_t line, const std::vector<std::string>& fields,
                 const char* layout) {
  if (fields.size() == 6) return;
  throw DataError(where(path, line) + ": expected 6 whitespace-separated fields (" + layout + "), found " +
                  std::to_string(fields.size()));
}

bool parse_int64(const std::string& text, std::int64_t& value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  value = v;
  return true;
}

bool parse_double(const std::string& text) {
  if (text.empty()) return false;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  return *end == '\0' && std::isfinite(v);
}

// The .fam and .bim text rank 0 read and checked, for the other ranks to parse without checks failing.
struct NameTexts {
  std::string fam, bim;
};

std::string pack(const NameTexts& t) {
  const std::string length = std::to_string(t.fam.size());
  return length + '\n' + t.fam + t.bim;
}

NameTexts unpack(const std::string& packed) {
  const std::size_t newline = packed.find('\n');
  const std::size_t fam_bytes = std::stoull(packed.substr(0, newline));
  return {packed.substr(newline + 1, fam_bytes), packed.substr(newline + 1 + fam_bytes)};
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string hex_byte(unsigned value) {
  char text[8];
  std::snprintf(text, sizeof text, "0x%02x", value & 0xffu);
  return text;
}

// Reads exactly `bytes` at `offset` (in pieces: pread takes at most ~2 GiB a call).
void pread_exact(int fd, const std::string& path, std::uint8_t* into, std::uint64_t bytes,
                 std::uint64_t offset) {
  constexpr std::uint64_t max_piece = std::uint64_t{1} << 30;
  std::uint64_t done = 0;
  while (done < bytes) {
    const std::uint64_t want = std::min(max_piece, bytes - done);
    const ssize_t got = ::pread(fd, into + done, want, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw DataError(path + ": reading bytes " + std::to_string(offset + done) + ".." +
                      std::to_string(offset + done + want) + " failed: " + errno_message(errno));
    }
    if (got == 0) {
      throw DataError(path + ": the file ended at byte " + std::to_string(offset + done) + " while reading " +
                      std::to_string(bytes) + " bytes from " + std::to_string(offset) +
                      " (was it changed while being read?)");
    }
    done += static_cast<std::uint64_t>(got);
  }
}

// Rank 0: reads and checks the .fam, the .bim and the .bed's header and size; returns their texts.
NameTexts check_fileset(const std::string& prefix, std::vector<std::string>& family_ids,
                        std::vector<std::string>& sample_ids, std::vector<PlinkVariant>& variants) {
  const std::string fam_path = prefix + ".fam", bim_path = prefix + ".bim", bed_path = prefix + ".bed";
  NameTexts texts{read_text_file(fam_path), read_text_file(bim_path)};
  parse_fam(fam_path, texts.fam, family_ids, sample_ids);
  variants = parse_bim(bim_path, texts.bim);
  if (sample_ids.empty()) throw DataError(fam_path + ": no samples (the file has no lines)");
  if (variants.empty()) throw DataError(bim_path + ": no SNPs (the file has no lines)");

  Fd fd(::open(bed_path.c_str(), O_RDONLY));
  if (fd.get() < 0) throw DataError(bed_path + ": cannot open it: " + errno_message(errno));
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) throw DataError(bed_path + ": cannot stat it: " + errno_message(errno));
  if (!S_ISREG(info.st_mode)) throw DataError(bed_path + ": not a regular file");
  const auto size = static_cast<std::uint64_t>(info.st_size);
  std::uint8_t magic[3] = {0, 0, 0};
  const ssize_t got = size >= 3 ? ::pread(fd.get(), magic, 3, 0) : 0;
  if (got != 3 || magic[0] != plink::kMagic[0] || magic[1] != plink::kMagic[1] ||
      magic[2] != plink::kMagic[2]) {
    std::string first;
    for (ssize_t i = 0; i < std::max<ssize_t>(got, 0); ++i) first += (i ? " " : "") + hex_byte(magic[i]);
    std::string why = "not a SNP-major PLINK .bed: ";
    if (got != 3) {
      why += "the file has only " + std::to_string(size) + " bytes" +
             (first.empty() ? "" : " (" + first + ")") + ", fewer than the 3 magic bytes 0x6c 0x1b 0x01";
    } else {
      why += "first bytes " + first + ", expected 0x6c 0x1b 0x01";
      if (magic[0] == plink::kMagic[0] && magic[1] == plink::kMagic[1] && magic[2] == 0x00)
        why += " (0x00: a sample-major PLINK 1.07 file; convert it with plink --make-bed)";
    }
    throw DataError(bed_path + ": " + why);
  }
  const std::uint64_t n = sample_ids.size(), v = variants.size();
  const std::uint64_t expected = plink::bed_file_bytes(n, v);
  if (size != expected) {
    const std::uint64_t record = plink::record_bytes(n);
    std::string message = bed_path + ": " + std::to_string(size) +
                          " bytes, expected 3 + V * ceil(N/4) = 3 + " + std::to_string(v) + " * " +
                          std::to_string(record) + " = " + std::to_string(expected) +
                          " (V = " + std::to_string(v) + " SNPs from the lines of " + bim_path +
                          ", N = " + std::to_string(n) + " samples from the lines of " + fam_path + ")";
    if (size > 3 && (size - 3) % record == 0) {
      message += "; its size fits " + std::to_string((size - 3) / record) + " SNPs of " + std::to_string(n) +
                 " samples: the .bim and .bed disagree";
    } else if (size < expected) {
      message += ": the .bed is truncated, or the .fam/.bim do not belong to it";
    } else {
      message += ": the .bed is longer than the .fam/.bim describe";
    }
    throw DataError(message);
  }
  return texts;
}

std::string describe_snp(const PlinkGenotypes& g, std::uint64_t snp) {
  const PlinkVariant& v = g.variants[snp];
  return "SNP " + v.id + " (" + g.prefix + ".bim line " + std::to_string(snp + 1) + ", chromosome " +
         v.chromosome + " position " + std::to_string(v.position) + ")";
}

}  // namespace

PlinkSnpCounts count_record(const std::uint8_t* record, std::uint64_t samples) {
  // Per byte value: observed calls and A2 alleles of its 4 samples (a 256-entry table, 4 samples a lookup).
  struct ByteCounts {
    std::uint8_t observed[256], a2[256];
    ByteCounts() {
      for (unsigned b = 0; b < 256; ++b) {
        observed[b] = a2[b] = 0;
        for (unsigned s = 0; s < 4; ++s) {
          const unsigned code = (b >> (2 * s)) & 3u;
          if (code != plink::kMissing) ++observed[b];
          a2[b] = static_cast<std::uint8_t>(a2[b] + plink::a2_dosage(code));
        }
      }
    }
  };
  static const ByteCounts table;
  PlinkSnpCounts counts;
  const std::uint64_t full = samples / 4;
  for (std::uint64_t i = 0; i < full; ++i) {
    counts.observed += table.observed[record[i]];
    counts.a2_alleles += table.a2[record[i]];
  }
  for (std::uint64_t s = full * 4; s < samples; ++s) {
    const unsigned code = plink::code_at(record, s);
    if (code != plink::kMissing) ++counts.observed;
    counts.a2_alleles += plink::a2_dosage(code);
  }
  return counts;
}

void parse_fam(const std::string& path, const std::string& text, std::vector<std::string>& family_ids,
               std::vector<std::string>& sample_ids) {
  family_ids.clear();
  sample_ids.clear();
  std::unordered_map<std::string, std::int64_t> line_of;
  for_each_line(text, [&](std::int64_t line, const std::vector<std::string>& fields) {
    require_six(path, line, fields, "FID IID father mother sex phenotype");
    const auto [it, fresh] = line_of.emplace(fields[1], line);
    if (!fresh) {
      throw DataError(path + ": duplicate sample id (IID) '" + fields[1] + "' on lines " +
                      std::to_string(it->second) + " and " + std::to_string(line));
    }
    family_ids.push_back(fields[0]);
    sample_ids.push_back(fields[1]);
  });
}

std::vector<PlinkVariant> parse_bim(const std::string& path, const std::string& text) {
  std::vector<PlinkVariant> variants;
  for_each_line(text, [&](std::int64_t line, const std::vector<std::string>& fields) {
    require_six(path, line, fields, "chromosome SNP-id cM bp A1 A2");
    PlinkVariant v;
    if (!parse_double(fields[2])) {
      throw DataError(where(path, line) + ": field 3 (genetic distance, cM) '" + fields[2] +
                      "' is not a number");
    }
    if (!parse_int64(fields[3], v.position)) {
      throw DataError(where(path, line) + ": field 4 (base-pair position) '" + fields[3] +
                      "' is not an integer");
    }
    v.chromosome = fields[0];
    v.id = fields[1];
    v.a1 = fields[4];
    v.a2 = fields[5];
    variants.push_back(std::move(v));
  });
  return variants;
}

PlinkGenotypes read_plink(const comm::Communicator& comm, const std::string& prefix,
                          PlinkStandardize standardize,
                          const std::function<comm::IndexRange(std::uint64_t snps)>& partition) {
  PlinkGenotypes g;
  g.prefix = prefix;
  const std::string bed_path = prefix + ".bed";

  const std::string packed_names =
      comm.decide([&] { return pack(check_fileset(prefix, g.family_ids, g.sample_ids, g.variants)); });
  if (comm.rank() != 0) {
    // Rank 0 checked these texts; parsing them again cannot fail.
    const NameTexts texts = unpack(packed_names);
    parse_fam(prefix + ".fam", texts.fam, g.family_ids, g.sample_ids);
    g.variants = parse_bim(prefix + ".bim", texts.bim);
  }
  g.samples = g.sample_ids.size();
  g.snps = g.variants.size();
  g.local_snps = partition ? partition(g.snps) : comm::BlockPartition(g.snps, comm.size()).range(comm.rank());

  const std::uint64_t record = g.record_bytes();
  const std::uint64_t local = g.local_snps.size();
  comm.agree([&] {
    g.packed =
        decltype(g.packed)(Kokkos::view_alloc(Kokkos::WithoutInitializing, "plink::packed"), local, record);
    if (local == 0) return;
    Fd fd(::open(bed_path.c_str(), O_RDONLY));
    if (fd.get() < 0) throw DataError(bed_path + ": cannot open it: " + errno_message(errno));
    pread_exact(fd.get(), bed_path, g.packed.data(), local * record,
                plink::kHeaderBytes + g.local_snps.begin * record);
  });

  g.counts.resize(local);
  for (std::uint64_t j = 0; j < local; ++j) g.counts[j] = count_record(&g.packed(j, 0), g.samples);

  if (standardize == PlinkStandardize::scale) {
    std::uint64_t bad = 0, first_bad = g.snps;
    for (std::uint64_t j = 0; j < local; ++j) {
      const auto& c = g.counts[j];
      if (c.observed == 0 || c.a2_alleles == 0 || c.a2_alleles == 2 * c.observed) {
        if (bad++ == 0) first_bad = g.local_snps.begin + j;
      }
    }
    const std::uint64_t total_bad = comm.allreduce(bad, comm::Op::sum);
    comm.agree([&] {
      if (bad == 0) return;
      const auto& c = g.counts[first_bad - g.local_snps.begin];
      std::string what;
      if (c.observed == 0) {
        what = "has no observed call (all " + std::to_string(g.samples) + " missing)";
      } else {
        what = std::string("is monomorphic: all ") + std::to_string(c.observed) + " observed calls are " +
               (c.a2_alleles == 0 ? "A1/A1 (" + g.variants[first_bad].a1 + ")"
                                  : "A2/A2 (" + g.variants[first_bad].a2 + ")");
      }
      throw DataError(
          bed_path + ": " + describe_snp(g, first_bad) + " " + what +
          ", so standardize=scale cannot divide it by its standard deviation sqrt(2p(1-p)) = 0 (" +
          std::to_string(total_bad) +
          " such SNPs in the file); use standardize=center, or remove them (e.g. plink --maf 0.01 "
          "--make-bed)");
    });
  }
  return g;
}

PlinkBedWriter::PlinkBedWriter(const comm::Communicator& comm, std::string path, std::uint64_t samples,
                               std::uint64_t snps)
    : comm_(comm), path_(std::move(path)), samples_(samples), snps_(snps) {
  comm_.agree([&] {
    if (comm_.rank() != 0) return;
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw_write_error(path_, errno, "cannot create it");
    const ssize_t wrote = ::pwrite(fd, plink::kMagic, plink::kHeaderBytes, 0);
    const int saved = errno;
    ::close(fd);
    if (wrote != static_cast<ssize_t>(plink::kHeaderBytes))
      throw_write_error(path_, saved, "writing the magic bytes");
    reserve_file_space(path_, plink::bed_file_bytes(samples_, snps_));
  });
  comm_.agree([&] {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd_ < 0) throw_write_error(path_, errno, "cannot open it for writing");
  });
}

PlinkBedWriter::~PlinkBedWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void PlinkBedWriter::write_records(std::uint64_t first_snp, const std::uint8_t* records,
                                   std::uint64_t count) {
  if (!error_.empty() || count == 0) return;
  if (fd_ < 0 || first_snp + count > snps_) {
    error_ = "internal: records " + std::to_string(first_snp) + ".." + std::to_string(first_snp + count) +
             " written to a closed file or past its " + std::to_string(snps_) + " SNPs";
    return;
  }
  const std::uint64_t record = plink::record_bytes(samples_);
  const std::uint64_t offset = plink::kHeaderBytes + first_snp * record, bytes = count * record;
  constexpr std::uint64_t max_piece = std::uint64_t{1} << 30;
  for (std::uint64_t done = 0; done < bytes;) {
    const ssize_t wrote =
        ::pwrite(fd_, records + done, std::min(max_piece, bytes - done), static_cast<off_t>(offset + done));
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) {
      const int saved = errno;
      try {
        throw_write_error(
            path_, wrote < 0 ? saved : 0,
            "writing bytes " + std::to_string(offset + done) + ".." + std::to_string(offset + bytes));
      } catch (const engine::Error& e) {
        error_ = e.what();
      }
      return;
    }
    done += static_cast<std::uint64_t>(wrote);
  }
}

void PlinkBedWriter::close() {
  comm_.agree([&] {
    const int fd = fd_;
    fd_ = -1;
    if (fd >= 0 && ::close(fd) != 0 && error_.empty())
      error_ = path_ + ": closing failed: " + errno_message(errno);
    if (!error_.empty()) throw engine::IoError(error_);
  });
  comm_.agree([&] {
    if (comm_.rank() != 0) return;
    struct stat info {};
    if (::stat(path_.c_str(), &info) != 0) throw_write_error(path_, errno, "cannot check its size");
    const std::uint64_t expected = plink::bed_file_bytes(samples_, snps_);
    if (static_cast<std::uint64_t>(info.st_size) != expected) {
      throw_write_error(path_, 0,
                        "short write: " + std::to_string(info.st_size) + " of " + std::to_string(expected) +
                            " bytes on disk");
    }
  });
}

}  // namespace skein::io
