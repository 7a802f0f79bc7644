// PLINK 1 binary genotypes (.bed/.bim/.fam): each rank reads its contiguous block of SNPs, packed.
#pragma once

#include "comm/block_partition.hpp"
#include "comm/communicator.hpp"

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace skein::io {

// The .bed format (PLINK 1.9 "formats#bed"): 3 magic bytes 0x6c 0x1b 0x01 (SNP-major), then one record of
// ceil(N/4) bytes per SNP in .bim order; sample s of a record is the 2-bit code (byte[s/4] >> 2*(s%4)) & 3,
// the first .fam sample in the low bits; the unused high bits of a record's last byte are padding.
//
// Dosage convention (skein's, everywhere): the count of the .bim's A2 allele (column 6), PLINK's "allele 2
// dosage": code 00 (hom A1) -> 0, 10 (het) -> 1, 11 (hom A2) -> 2, 01 -> missing. `a2_frequency` is the
// mean A2 dosage over the observed calls divided by 2. Counting A1 instead only flips the sign of each
// centred column, hence of the weights, never a correlation.
namespace plink {
constexpr std::uint8_t kMagic[3] = {0x6c, 0x1b, 0x01};
constexpr std::uint64_t kHeaderBytes = 3;
constexpr std::uint8_t kHomA1 = 0, kMissing = 1, kHet = 2, kHomA2 = 3;

// ceil(samples / 4): the bytes of one SNP's record.
constexpr std::uint64_t record_bytes(std::uint64_t samples) {
  return (samples + 3) / 4;
}
// 3 + snps * record_bytes(samples).
constexpr std::uint64_t bed_file_bytes(std::uint64_t samples, std::uint64_t snps) {
  return kHeaderBytes + snps * record_bytes(samples);
}
// The A2 dosage of an observed code (kHomA1 0, kHet 1, kHomA2 2); kMissing has none (returns 0).
KOKKOS_INLINE_FUNCTION int a2_dosage(unsigned code) {
  return code == kMissing ? 0 : int(code) - int(code >> 1);
}
// The code of sample `s` within a record.
KOKKOS_INLINE_FUNCTION unsigned code_at(const std::uint8_t* record, std::uint64_t s) {
  return (record[s >> 2] >> (2 * (s & 3))) & 3u;
}
}  // namespace plink

// One .bim line, without the genetic distance (cM), which nothing uses.
struct PlinkVariant {
  std::string chromosome;
  std::string id;
  std::int64_t position = 0;  // base pairs
  std::string a1, a2;         // A2 is the counted allele (see plink above)
};

// What standardisation the caller will apply: `scale` divides by sqrt(2 p (1 - p)), which a monomorphic
// SNP (p = 0 or 1) or a SNP with no observed call makes impossible, so such SNPs are refused (DataError
// naming the SNP); dropping them would change the column count that every rank's block is cut from.
enum class PlinkStandardize { center, scale };

// Per-SNP counts over all N samples of the .fam.
struct PlinkSnpCounts {
  std::int64_t observed = 0;    // non-missing calls
  std::int64_t a2_alleles = 0;  // sum of A2 dosages over the observed calls
  double a2_frequency() const {
    return observed > 0 ? static_cast<double>(a2_alleles) / (2.0 * static_cast<double>(observed)) : 0.0;
  }
};

// The genotypes of one fileset as this rank holds them: every sample and SNP name (replicated, small next
// to the .bed), and the packed records of this rank's SNPs, comm::BlockPartition(snps, ranks).range(rank).
struct PlinkGenotypes {
  std::string prefix;  // as given: path/name (files prefix.bed, prefix.bim, prefix.fam)
  std::uint64_t samples = 0;
  std::uint64_t snps = 0;
  comm::IndexRange local_snps;                      // this rank's SNPs, global .bim indices
  std::vector<std::string> family_ids, sample_ids;  // .fam FID and IID (the sample id), in .fam order
  std::vector<PlinkVariant> variants;               // every .bim line, in order
  // local_snps.size() x record_bytes(samples), exactly the bytes of those records in the .bed.
  Kokkos::View<std::uint8_t**, Kokkos::LayoutRight, Kokkos::HostSpace> packed;
  std::vector<PlinkSnpCounts> counts;  // local SNPs, over all samples

  std::uint64_t record_bytes() const { return plink::record_bytes(samples); }
};

// Collective. Reads prefix.fam and prefix.bim on rank 0 (broadcast to all) and this rank's SNP block of
// prefix.bed with pread (one contiguous byte range per rank, never the whole file), and counts each local
// SNP's calls. Every failure is a DataError naming the file, agreed on every rank (exit 65):
//   wrong magic; a .bed whose size is not 3 + V * ceil(N/4) (V from the .bim's lines, N from the .fam's);
//   a malformed .fam/.bim line (file:line, what was expected); an empty .fam or .bim; duplicate sample ids
//   (IID, both lines); with PlinkStandardize::scale, a SNP without variance (monomorphic or never observed:
//   refused, naming it and its .bim line; use standardize=center or filter it out, e.g. plink --maf).
// `partition` (optional) gives this rank's SNPs from the SNP count instead of the block partition (the cca
// job's whole column groups under comm.reproducible); every rank's ranges must tile [0, snps) in rank order.
PlinkGenotypes read_plink(const comm::Communicator& comm, const std::string& prefix,
                          PlinkStandardize standardize,
                          const std::function<comm::IndexRange(std::uint64_t snps)>& partition = {});

// The counts of one packed record (the padding bits of the last byte ignored).
PlinkSnpCounts count_record(const std::uint8_t* record, std::uint64_t samples);

// Writes a .bed in parallel: every rank pwrites the records of its own SNPs at their offsets, streaming
// (any number of calls, any SNP order), so no rank ever holds the whole file. Write it to an OutputSet's
// tmp path and commit the set after close().
class PlinkBedWriter {
 public:
  // Collective. Rank 0 creates (truncates) `path`, writes the magic bytes and reserves the disk space of the
  // whole file (3 + snps * ceil(samples/4) bytes); then every rank opens it. IoError on every rank when
  // that fails (the message names the file and the cause: "no space left on device").
  PlinkBedWriter(const comm::Communicator& comm, std::string path, std::uint64_t samples, std::uint64_t snps);
  // Not collective; a failure is kept for close(), so that no rank is left alone in a collective.
  ~PlinkBedWriter();
  PlinkBedWriter(const PlinkBedWriter&) = delete;
  PlinkBedWriter& operator=(const PlinkBedWriter&) = delete;

  // Rank-local: `count` consecutive records starting at SNP `first_snp`, count * ceil(samples/4) bytes.
  void write_records(std::uint64_t first_snp, const std::uint8_t* records, std::uint64_t count);
  // Collective: closes the file, then checks its size on rank 0; any rank's write error, or a short file,
  // is an IoError on every rank.
  void close();

 private:
  const comm::Communicator& comm_;
  std::string path_;
  std::uint64_t samples_, snps_;
  int fd_ = -1;
  std::string error_;  // this rank's first write failure
};

// The .fam / .bim parsers (rank-local; DataError naming file:line), public for tests and the generator's
// checks. A line has exactly 6 whitespace-separated fields; CR before the newline is accepted.
void parse_fam(const std::string& path, const std::string& text, std::vector<std::string>& family_ids,
               std::vector<std::string>& sample_ids);
std::vector<PlinkVariant> parse_bim(const std::string& path, const std::string& text);

}  // namespace skein::io
