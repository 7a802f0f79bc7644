// io/plink: a hand-written fileset (7 samples, not a multiple of 4; missing calls) read back at 1-3 ranks,
// each rank holding exactly its SNP block's bytes and counts; every malformed-input error agreed on every
// rank with the file named.
// skein-test-ranks: 1 2 3
#include "comm/block_partition.hpp"
#include "comm/communicator.hpp"
#include "engine/error.hpp"
#include "io/plink.hpp"

#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace io = skein::io;
using skein::comm::Communicator;

// Hand-decoded A2 dosages (-1 missing) of 5 SNPs x 7 samples, and the .bed bytes written for them by hand:
// code 00 hom A1 (0), 10 het (1), 11 hom A2 (2), 01 missing; first sample in the low bits; the last byte's
// top two bits are padding. SNP 0: samples 0-3 = 00,10,11,01 -> 0b01'11'10'00 = 0x78; 4-6 = 11,11,10 -> 0x2f.
const int kDosage[5][7] = {
    {0, 1, 2, -1, 2, 2, 1},   // 0x78 0x2f
    {1, 0, 0, 1, -1, -1, 0},  // 0x82 0x05
    {0, 0, 0, 0, 0, 0, 2},    // 0x00 0x30
    {-1, 1, 2, 0, 1, 1, 2},   // 0x39 0x3a
    {2, 1, 0, 2, 1, 0, -1},   // 0xcb 0x12
};
const unsigned char kBed[] = {0x6c, 0x1b, 0x01, 0x78, 0x2f, 0x82, 0x05, 0x00, 0x30, 0x39, 0x3a, 0xcb, 0x12};
// Observed calls and A2 alleles per SNP, counted by hand from kDosage.
const std::int64_t kObserved[5] = {6, 5, 7, 6, 6};
const std::int64_t kA2[5] = {8, 2, 2, 7, 6};

const char* kFam =
    "F1 S1 0 0 1 -9\n"
    "F1 S2 0 0 2 -9\n"
    "F2 S3 0 0 1 1\n"
    "F3\tS4\t0\t0\t2\t2\r\n"  // tabs and a CR are fine
    "F4 S5 0 0 0 -9\n"
    "F5 S6 S1 S2 1 -9\n"
    "F6 S7 0 0 2 -9\n";
const char* kBim =
    "1 rs1 0 1000 A G\n"
    "1 rs2 0.5 2000 C T\n"
    "2 rs3 0 3000 G A\n"
    "2 rs4 0 4000 T C\n"
    "X rs5 0 5000 A C\n";

class PlinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    long id = comm_.rank() == 0 ? static_cast<long>(::getpid()) : 0;
    comm_.bcast(&id, 1, 0);
    dir_ = (fs::temp_directory_path() / ("skein_test_plink_" + std::to_string(id))).string();
    if (comm_.rank() == 0) fs::create_directories(dir_);
    comm_.barrier();
  }
  void TearDown() override {
    comm_.barrier();
    if (comm_.rank() == 0) fs::remove_all(dir_);
  }

  // Rank 0 writes name.bed/.bim/.fam; every rank returns the prefix.
  std::string write(const std::string& name, const std::string& bed, const std::string& bim,
                    const std::string& fam) {
    const std::string prefix = dir_ + "/" + name;
    if (comm_.rank() == 0) {
      std::ofstream(prefix + ".bed", std::ios::binary) << bed;
      std::ofstream(prefix + ".bim", std::ios::binary) << bim;
      std::ofstream(prefix + ".fam", std::ios::binary) << fam;
    }
    comm_.barrier();
    return prefix;
  }
  std::string good_bed() const { return std::string(reinterpret_cast<const char*>(kBed), sizeof kBed); }

  // The DataError every rank gets, with exit code 65; its message.
  std::string data_error(const std::string& prefix,
                         io::PlinkStandardize standardize = io::PlinkStandardize::center) {
    std::optional<std::string> message;
    try {
      io::read_plink(comm_, prefix, standardize);
    } catch (const skein::engine::Error& e) {
      EXPECT_EQ(e.code(), skein::engine::ExitCode::data) << e.what();
      EXPECT_TRUE(e.agreed()) << e.what();
      message = e.what();
    }
    EXPECT_TRUE(message.has_value()) << "no error for " << prefix;
    // Every rank holds the same message.
    const std::string text = message.value_or("");
    std::string root = text;
    comm_.bcast(root, 0);
    EXPECT_EQ(text, root);
    return text;
  }

  Communicator comm_{MPI_COMM_WORLD};
  std::string dir_;
};

TEST_F(PlinkTest, ReadsEachRanksBlockOfTheHandWrittenFileset) {
  const std::string prefix = write("good", good_bed(), kBim, kFam);
  const auto g = io::read_plink(comm_, prefix, io::PlinkStandardize::scale);
  EXPECT_EQ(g.samples, 7u);
  EXPECT_EQ(g.snps, 5u);
  EXPECT_EQ(g.record_bytes(), 2u);
  EXPECT_EQ(g.sample_ids, (std::vector<std::string>{"S1", "S2", "S3", "S4", "S5", "S6", "S7"}));
  EXPECT_EQ(g.family_ids[3], "F3");
  ASSERT_EQ(g.variants.size(), 5u);
  EXPECT_EQ(g.variants[1].id, "rs2");
  EXPECT_EQ(g.variants[1].position, 2000);
  EXPECT_EQ(g.variants[1].a1, "C");
  EXPECT_EQ(g.variants[1].a2, "T");
  EXPECT_EQ(g.variants[4].chromosome, "X");

  const auto range = skein::comm::BlockPartition(5, comm_.size()).range(comm_.rank());
  EXPECT_EQ(g.local_snps, range);
  ASSERT_EQ(g.packed.extent(0), range.size());
  ASSERT_EQ(g.counts.size(), range.size());
  for (std::uint64_t j = 0; j < range.size(); ++j) {
    const std::uint64_t snp = range.begin + j;
    EXPECT_EQ(g.packed(j, 0), kBed[3 + 2 * snp]);
    EXPECT_EQ(g.packed(j, 1), kBed[4 + 2 * snp]);
    EXPECT_EQ(g.counts[j].observed, kObserved[snp]) << "SNP " << snp;
    EXPECT_EQ(g.counts[j].a2_alleles, kA2[snp]) << "SNP " << snp;
    // Decoding the kept bytes gives the hand-decoded dosages.
    for (std::uint64_t s = 0; s < 7; ++s) {
      const unsigned code = io::plink::code_at(&g.packed(j, 0), s);
      const int dosage = code == io::plink::kMissing ? -1 : io::plink::a2_dosage(code);
      EXPECT_EQ(dosage, kDosage[snp][s]) << "SNP " << snp << " sample " << s;
    }
  }
  if (range.size() > 0 && range.begin == 0) EXPECT_DOUBLE_EQ(g.counts[0].a2_frequency(), 2.0 / 3.0);
}

TEST_F(PlinkTest, CountRecordIgnoresPadding) {
  // 5 samples all hom A2 plus padding bits set to 11 in the last byte: the padding must not count.
  const std::uint8_t record[2] = {0xff, 0xff};
  const auto c = io::count_record(record, 5);
  EXPECT_EQ(c.observed, 5);
  EXPECT_EQ(c.a2_alleles, 10);
}

TEST_F(PlinkTest, WrongMagicNamesTheBytes) {
  std::string bed = good_bed();
  bed[2] = 0x00;
  auto message = data_error(write("samplemajor", bed, kBim, kFam));
  EXPECT_NE(message.find("samplemajor.bed: not a SNP-major PLINK .bed: first bytes 0x6c 0x1b 0x00"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("sample-major"), std::string::npos) << message;
  bed[0] = 'B';
  bed[1] = 'E';
  bed[2] = 'D';
  message = data_error(write("text", bed, kBim, kFam));
  EXPECT_NE(message.find("text.bed: not a SNP-major PLINK .bed: first bytes 0x42 0x45 0x44"),
            std::string::npos)
      << message;
  message = data_error(write("tiny", std::string("\x6c\x1b", 2), kBim, kFam));
  EXPECT_NE(message.find("tiny.bed: not a SNP-major PLINK .bed: the file has only 2 bytes"),
            std::string::npos)
      << message;
}

TEST_F(PlinkTest, TruncatedBedGivesBothSizesAndTheirSources) {
  const std::string bed = good_bed();
  const auto message = data_error(write("short", bed.substr(0, bed.size() - 1), kBim, kFam));
  EXPECT_NE(message.find("short.bed: 12 bytes, expected 3 + V * ceil(N/4) = 3 + 5 * 2 = 13"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("V = 5 SNPs from the lines of"), std::string::npos) << message;
  EXPECT_NE(message.find("short.bim"), std::string::npos) << message;
  EXPECT_NE(message.find("N = 7 samples from the lines of"), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST_F(PlinkTest, FamOrBimCountsThatDisagreeWithTheBed) {
  // One .bim line too many: the .bed holds 5 SNPs' records.
  auto message = data_error(write("bim6", good_bed(), std::string(kBim) + "X rs6 0 6000 A C\n", kFam));
  EXPECT_NE(message.find("bim6.bed: 13 bytes, expected 3 + V * ceil(N/4) = 3 + 6 * 2 = 15"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("fits 5 SNPs of 7 samples"), std::string::npos) << message;
  // Nine samples need 3 bytes a record: 3 + 5 * 3 = 18.
  message =
      data_error(write("fam9", good_bed(), kBim, std::string(kFam) + "F7 S8 0 0 1 -9\nF8 S9 0 0 1 -9\n"));
  EXPECT_NE(message.find("fam9.bed: 13 bytes, expected 3 + V * ceil(N/4) = 3 + 5 * 3 = 18"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("N = 9 samples"), std::string::npos) << message;
}

TEST_F(PlinkTest, MalformedLinesNameFileAndLine) {
  std::string fam = kFam;
  fam.replace(fam.find("F2 S3 0 0 1 1"), 13, "F2 S3 0 0 1");
  auto message = data_error(write("badfam", good_bed(), kBim, fam));
  EXPECT_NE(message.find("badfam.fam:3: expected 6 whitespace-separated fields"), std::string::npos)
      << message;
  EXPECT_NE(message.find("found 5"), std::string::npos) << message;

  std::string bim = kBim;
  bim.replace(bim.find("4000"), 4, "4k");
  message = data_error(write("badbim", good_bed(), bim, kFam));
  EXPECT_NE(message.find("badbim.bim:4: field 4 (base-pair position) '4k' is not an integer"),
            std::string::npos)
      << message;

  message = data_error(write("emptybim", std::string(reinterpret_cast<const char*>(kBed), 3), "", kFam));
  EXPECT_NE(message.find("emptybim.bim: no SNPs"), std::string::npos) << message;
}

TEST_F(PlinkTest, DuplicateSampleIdsNameBothLines) {
  std::string fam = kFam;
  fam.replace(fam.find("F4 S5"), 5, "F4 S2");
  const auto message = data_error(write("dup", good_bed(), kBim, fam));
  EXPECT_NE(message.find("dup.fam: duplicate sample id (IID) 'S2' on lines 2 and 5"), std::string::npos)
      << message;
}

TEST_F(PlinkTest, MonomorphicSnpIsRefusedOnlyWhenScaling) {
  // SNP rs3 made all A2/A2 (with one missing call): 11 11 11 11 | 11 11 01 -> 0xff 0x1f.
  std::string bed = good_bed();
  bed[3 + 2 * 2] = static_cast<char>(0xff);
  bed[4 + 2 * 2] = static_cast<char>(0x1f);
  const std::string prefix = write("mono", bed, kBim, kFam);
  const auto message = data_error(prefix, io::PlinkStandardize::scale);
  EXPECT_NE(message.find("mono.bed: SNP rs3 (" + prefix +
                         ".bim line 3, chromosome 2 position 3000) is monomorphic: "
                         "all 6 observed calls are A2/A2 (A)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("standardize=center"), std::string::npos) << message;
  EXPECT_NE(message.find("(1 such SNPs in the file)"), std::string::npos) << message;
  // Centring alone is fine: the column is all zeros.
  const auto g = io::read_plink(comm_, prefix, io::PlinkStandardize::center);
  EXPECT_EQ(g.snps, 5u);
}

TEST_F(PlinkTest, MissingFileIsADataError) {
  const auto message = data_error(dir_ + "/nothing");
  EXPECT_NE(message.find("nothing.fam: cannot open it"), std::string::npos) << message;
}

// A measurement, not a test: reads SKEIN_PLINK_PREFIX (e.g. a cca-synth output) and prints the slowest
// rank's time. Run with --gtest_also_run_disabled_tests.
TEST_F(PlinkTest, DISABLED_ReadTiming) {
  const char* prefix = std::getenv("SKEIN_PLINK_PREFIX");
  if (!prefix) GTEST_SKIP() << "set SKEIN_PLINK_PREFIX";
  comm_.barrier();
  const auto start = std::chrono::steady_clock::now();
  const auto g = io::read_plink(comm_, prefix, io::PlinkStandardize::scale);
  const double mine = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double slowest = comm_.allreduce(mine, skein::comm::Op::max);
  if (comm_.rank() == 0) {
    const double bytes = static_cast<double>(io::plink::bed_file_bytes(g.samples, g.snps));
    std::printf("read_plink %s: %llu samples x %llu SNPs (%.1f MB .bed) on %d ranks in %.3f s (%.0f MB/s)\n",
                prefix, static_cast<unsigned long long>(g.samples), static_cast<unsigned long long>(g.snps),
                bytes / 1e6, comm_.size(), slowest, bytes / 1e6 / slowest);
  }
}

}  // namespace
