// cca's readers: the PLINK .bed/.bim/.fam fileset (magic, sizes, text lines, ids, genotypes) and the HDF5
// feature matrix (values, shapes, sample ids).
#include "tests/bad_inputs/catalogue.hpp"
#include "tests/bad_inputs/good_inputs.hpp"
#include "tests/e2e/cli_runner.hpp"

#include <filesystem>

#include <cmath>

namespace skein::bad_inputs {

namespace {

// The good inputs with `file` (".bed", ".bim" or ".fam") replaced by `bytes`.
std::vector<std::string> cca_with(Workspace& ws, const std::string& file, const std::string& bytes) {
  auto args = cca_good(ws);
  test::write_file(ws.in + "/geno" + file, bytes);
  return args;
}

std::string good(const std::string& file) {
  const Plink plink = polymorphic_plink(kCcaSamples, kCcaSnps);
  return file == ".bed" ? plink.bed() : file == ".bim" ? plink.bim() : plink.fam();
}

// The good text of `file` with its line `number` (1-based) replaced by `line`.
std::string with_line(const std::string& file, int number, const std::string& line) {
  const std::string text = good(file);
  std::size_t begin = 0;
  for (int n = 1; n < number; ++n) begin = text.find('\n', begin) + 1;
  const std::size_t end = text.find('\n', begin);
  return text.substr(0, begin) + line + text.substr(end);
}

}  // namespace

std::vector<Case> cca_cases() {
  return {
      {"cca",
       "bed_wrong_magic",
       [](Workspace& ws) { return cca_with(ws, ".bed", "BED" + good(".bed").substr(3)); },
       65,
       {"{in}/geno.bed: not a SNP-major PLINK .bed: first bytes 0x42 0x45 0x44, expected 0x6c 0x1b 0x01"}},
      {"cca",
       "bed_sample_major",
       [](Workspace& ws) {
         return cca_with(ws, ".bed", std::string("\x6c\x1b\x00", 3) + good(".bed").substr(3));
       },
       65,
       {"{in}/geno.bed:", "sample-major PLINK 1.07 file"}},
      {"cca",
       "bed_shorter_than_magic",
       [](Workspace& ws) { return cca_with(ws, ".bed", "\x6c"); },
       65,
       {"{in}/geno.bed: not a SNP-major PLINK .bed: the file has only 1 bytes"}},
      {"cca",
       "bed_truncated",
       [](Workspace& ws) {
         const std::string bed = good(".bed");
         return cca_with(ws, ".bed", bed.substr(0, bed.size() - 7));
       },
       65,
       {"{in}/geno.bed:", "the .bed is truncated, or the .fam/.bim do not belong to it"}},
      {"cca",
       "bed_one_snp_too_many",
       [](Workspace& ws) { return cca_with(ws, ".bed", good(".bed") + std::string(10, '\xff')); },
       65,
       {"{in}/geno.bed:", "fits 13 SNPs of 40 samples: the .bim and .bed disagree"}},
      {"cca",
       "fam_five_fields",
       [](Workspace& ws) { return cca_with(ws, ".fam", with_line(".fam", 7, "f6 s6 0 0 0")); },
       65,
       {"{in}/geno.fam:7: expected 6 whitespace-separated fields", "found 5"}},
      {"cca",
       "fam_duplicate_sample",
       [](Workspace& ws) { return cca_with(ws, ".fam", with_line(".fam", 9, "f8 s2 0 0 0 -9")); },
       65,
       {"{in}/geno.fam: duplicate sample id (IID) 's2' on lines 3 and 9"}},
      {"cca",
       "fam_empty",
       [](Workspace& ws) { return cca_with(ws, ".fam", ""); },
       65,
       {"{in}/geno.fam: no samples"}},
      {"cca",
       "bim_bad_position",
       [](Workspace& ws) { return cca_with(ws, ".bim", with_line(".bim", 4, "1\trs3\t0\t10x30\tA\tG")); },
       65,
       {"{in}/geno.bim:4: field 4 (base-pair position) '10x30' is not an integer"}},
      {"cca",
       "bim_missing",
       [](Workspace& ws) {
         auto args = cca_good(ws);
         std::filesystem::remove(ws.in + "/geno.bim");
         return args;
       },
       65,
       {"{in}/geno.bim", "No such file or directory"}},
      {"cca",
       "monomorphic_snp",
       [](Workspace& ws) {
         Plink plink = polymorphic_plink(kCcaSamples, kCcaSnps);
         plink.genotypes[5].assign(kCcaSamples, 3);
         auto args = cca_good(ws);
         plink.write(ws.in + "/geno");
         return args;
       },
       65,
       {"{in}/geno.bed: SNP rs5", "is monomorphic", "standardize=center"}},
      {"cca",
       "y_nan",
       [](Workspace& ws) {
         return cca_good(ws, {{"/Y"}, [](H5File& f) {
                                auto y = cca_y();
                                y[13 * kCcaFeatures + 1] = std::nan("");
                                f.doubles("/Y", {kCcaSamples, kCcaFeatures}, y);
                              }});
       },
       65,
       {"{in}/y.h5: /Y row 13, column 1 is nan"}},
      {"cca",
       "y_1d",
       [](Workspace& ws) {
         return cca_good(ws,
                         {{"/Y"}, [](H5File& f) { f.doubles("/Y", {kCcaSamples * kCcaFeatures}, cca_y()); }});
       },
       65,
       {"{in}/y.h5: /Y has 1 dimensions; a view is 2-D"}},
      {"cca",
       "y_missing_dataset",
       [](Workspace& ws) { return with(cca_good(ws), "--cca.y=" + ws.in + "/y.h5:/Z"); },
       65,
       {"{in}/y.h5 has no dataset /Z"}},
      {"cca",
       "y_ids_count_wrong",
       [](Workspace& ws) {
         return cca_good(ws,
                         {{"/sample_id"}, [](H5File& f) { f.strings("/sample_id", cca_sample_ids(30)); }});
       },
       65,
       {"/sample_id has 30 ids for 40 rows"}},
      {"cca",
       "no_shared_samples",
       [](Workspace& ws) {
         return cca_good(ws, {{"/sample_id"}, [](H5File& f) {
                                std::vector<std::string> ids;
                                for (int i = 0; i < kCcaSamples; ++i)
                                  ids.push_back("other" + std::to_string(i));
                                f.strings("/sample_id", ids);
                              }});
       },
       65,
       {"share 0 sample id(s)"}},
      {"cca",
       "bed_truncated_since_checkpoint",
       [](Workspace& ws) { return cca_good(ws); },
       65,
       {"{in}/geno.bed:", "truncated"},
       "",
       Needs::nothing,
       [](Workspace& ws) { truncate_file(ws.in + "/geno.bed", file_size(ws.in + "/geno.bed") - 5); }},
  };
}

}  // namespace skein::bad_inputs
