// libFuzzer target: the input is a PLINK fileset. A 5-byte header (flags, then the .fam's and the .bim's
// lengths, 16-bit little-endian) splits the rest into prefix.fam, prefix.bim and prefix.bed; read_plink
// reads it as the cca job does. Checks what a reader that accepted the files promises: sizes that agree
// with the .fam, .bim and .bed, and per-SNP counts that add up.
#include "fuzz/fuzz_common.hpp"
#include "io/plink.hpp"

#include <string>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  skein::fuzz::world();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace skein;
  fuzz::ByteReader in(data, size);
  const std::uint8_t flags = in.u8();
  const std::size_t fam_bytes = in.u16(), bim_bytes = in.u16();
  const std::string_view fam = in.bytes(fam_bytes), bim = in.bytes(bim_bytes), bed = in.rest();
  fuzz::write_scratch("geno.fam", fam);
  fuzz::write_scratch("geno.bim", bim);
  fuzz::write_scratch("geno.bed", bed);
  const auto standardize = (flags & 1) ? io::PlinkStandardize::scale : io::PlinkStandardize::center;
  fuzz::expect_skein_errors([&] {
    const io::PlinkGenotypes g = io::read_plink(fuzz::world(), fuzz::scratch_dir() + "/geno", standardize);
    if (g.sample_ids.size() != g.samples || g.family_ids.size() != g.samples || g.variants.size() != g.snps)
      fuzz::finding("sample or SNP counts disagree with the id lists");
    if (bed.size() != io::plink::bed_file_bytes(g.samples, g.snps))
      fuzz::finding("accepted a .bed of the wrong size");
    if (g.local_snps.size() != g.snps) fuzz::finding("one rank does not hold every SNP");
    if (g.packed.extent(0) != g.snps || g.packed.extent(1) != g.record_bytes())
      fuzz::finding("packed records have the wrong shape");
    if (g.counts.size() != g.snps) fuzz::finding("one count per SNP expected");
    for (std::uint64_t s = 0; s < g.snps; ++s) {
      const auto& c = g.counts[s];
      if (c.observed < 0 || static_cast<std::uint64_t>(c.observed) > g.samples || c.a2_alleles < 0 ||
          c.a2_alleles > 2 * c.observed)
        fuzz::finding("impossible SNP counts");
      const io::PlinkSnpCounts again = io::count_record(&g.packed(s, 0), g.samples);
      if (again.observed != c.observed || again.a2_alleles != c.a2_alleles)
        fuzz::finding("counts differ from count_record");
      if (standardize == io::PlinkStandardize::scale) {
        const double p = c.a2_frequency();
        if (!(p > 0 && p < 1)) fuzz::finding("scale accepted a SNP without variance");
      }
    }
  });
  return 0;
}
