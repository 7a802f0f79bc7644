// Small writers for the catalogue's input files: HDF5 datasets of any type and shape, attributes, PLINK
// filesets, zstd frames, and byte-level damage (truncation, overwritten bytes). Independent of skein's own
// writers, so a bad file is made exactly as another tool could have made it.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace skein::bad_inputs {

// An HDF5 file being written (serial, default properties); closed by the destructor.
class H5File {
 public:
  explicit H5File(const std::string& path);
  ~H5File();
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;

  void group(const std::string& name);
  // A dataset of `file_type` (e.g. H5T_IEEE_F64LE, H5T_STD_I16LE) from `values` given as doubles, converted
  // by HDF5 to the file type; an empty shape is a scalar.
  void numbers(const std::string& name, const std::vector<hsize_t>& shape, hid_t file_type,
               const std::vector<double>& values);
  void doubles(const std::string& name, const std::vector<hsize_t>& shape,
               const std::vector<double>& values) {
    numbers(name, shape, H5T_IEEE_F64LE, values);
  }
  // A 1-D dataset of fixed-length strings.
  void strings(const std::string& name, const std::vector<std::string>& values);
  void string_attribute(const std::string& object, const std::string& name, const std::string& value);
  void int_attribute(const std::string& object, const std::string& name,
                     const std::vector<std::int64_t>& values);

 private:
  hid_t file_ = -1;
};

// A PLINK 1 binary fileset PREFIX.bed/.bim/.fam; genotypes[snp][sample] are codes 0..3 as PLINK stores them
// (0 A1/A1, 1 missing, 2 het, 3 A2/A2). Sample ids are "s0", "s1", ...; SNP ids "rs0", "rs1", ...
struct Plink {
  std::vector<std::vector<int>> genotypes;
  std::string bed() const;  // magic + SNP-major records
  std::string bim() const;
  std::string fam() const;
  void write(const std::string& prefix) const;
};

// `snps` x `samples` genotypes, each SNP polymorphic, from a fixed formula.
Plink polymorphic_plink(int samples, int snps);

// zstd-compressed bytes of `text` (one frame).
std::string zstd_compress(const std::string& text);

// splitmix64 -> [-1, 1): test values that do not depend on skein's generators.
double uniform(std::uint64_t z);

void truncate_file(const std::string& path, std::uint64_t bytes);
std::uint64_t file_size(const std::string& path);

}  // namespace skein::bad_inputs
