#include "tests/bad_inputs/make_files.hpp"

#include "tests/e2e/cli_runner.hpp"

#include <zstd.h>

#include <filesystem>
#include <stdexcept>

namespace skein::bad_inputs {

namespace {
void check(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error("make_files: " + what);
}
}  // namespace

H5File::H5File(const std::string& path) {
  file_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  check(file_ >= 0, "H5Fcreate " + path);
}

H5File::~H5File() {
  if (file_ >= 0) H5Fclose(file_);
}

void H5File::group(const std::string& name) {
  const hid_t group = H5Gcreate2(file_, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  check(group >= 0, "H5Gcreate2 " + name);
  H5Gclose(group);
}

void H5File::numbers(const std::string& name, const std::vector<hsize_t>& shape, hid_t file_type,
                     const std::vector<double>& values) {
  const hid_t space = shape.empty() ? H5Screate(H5S_SCALAR)
                                    : H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr);
  const hid_t set = H5Dcreate2(file_, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  check(set >= 0, "H5Dcreate2 " + name);
  if (!values.empty())
    check(H5Dwrite(set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) >= 0,
          "H5Dwrite " + name);
  H5Dclose(set);
  H5Sclose(space);
}

void H5File::strings(const std::string& name, const std::vector<std::string>& values) {
  std::size_t width = 1;
  for (const auto& v : values) width = std::max(width, v.size());
  std::string packed(values.size() * width, '\0');
  for (std::size_t i = 0; i < values.size(); ++i) packed.replace(i * width, values[i].size(), values[i]);
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, width);
  H5Tset_strpad(type, H5T_STR_NULLPAD);
  const hsize_t count = values.size();
  const hid_t space = H5Screate_simple(1, &count, nullptr);
  const hid_t set = H5Dcreate2(file_, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  check(set >= 0, "H5Dcreate2 " + name);
  H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, packed.data());
  H5Dclose(set);
  H5Sclose(space);
  H5Tclose(type);
}

void H5File::string_attribute(const std::string& object, const std::string& name, const std::string& value) {
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, std::max<std::size_t>(1, value.size()));
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t attribute = H5Acreate_by_name(file_, object.c_str(), name.c_str(), type, space, H5P_DEFAULT,
                                            H5P_DEFAULT, H5P_DEFAULT);
  check(attribute >= 0, "H5Acreate " + object + "@" + name);
  H5Awrite(attribute, type, value.data());
  H5Aclose(attribute);
  H5Sclose(space);
  H5Tclose(type);
}

void H5File::int_attribute(const std::string& object, const std::string& name,
                           const std::vector<std::int64_t>& values) {
  const hsize_t count = values.size();
  const hid_t space = H5Screate_simple(1, &count, nullptr);
  const hid_t attribute = H5Acreate_by_name(file_, object.c_str(), name.c_str(), H5T_STD_I64LE, space,
                                            H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  check(attribute >= 0, "H5Acreate " + object + "@" + name);
  H5Awrite(attribute, H5T_NATIVE_INT64, values.data());
  H5Aclose(attribute);
  H5Sclose(space);
}

std::string Plink::bed() const {
  std::string bytes = {'\x6c', '\x1b', '\x01'};
  for (const auto& snp : genotypes) {
    std::string record((snp.size() + 3) / 4, '\0');
    for (std::size_t s = 0; s < snp.size(); ++s)
      record[s / 4] = static_cast<char>(record[s / 4] | (snp[s] & 3) << (2 * (s % 4)));
    bytes += record;
  }
  return bytes;
}

std::string Plink::bim() const {
  std::string text;
  for (std::size_t j = 0; j < genotypes.size(); ++j)
    text += "1\trs" + std::to_string(j) + "\t0\t" + std::to_string(1000 + 10 * j) + "\tA\tG\n";
  return text;
}

std::string Plink::fam() const {
  std::string text;
  const std::size_t samples = genotypes.empty() ? 0 : genotypes.front().size();
  for (std::size_t i = 0; i < samples; ++i)
    text += "f" + std::to_string(i) + " s" + std::to_string(i) + " 0 0 0 -9\n";
  return text;
}

void Plink::write(const std::string& prefix) const {
  test::write_file(prefix + ".bed", bed());
  test::write_file(prefix + ".bim", bim());
  test::write_file(prefix + ".fam", fam());
}

Plink polymorphic_plink(int samples, int snps) {
  Plink plink;
  for (int j = 0; j < snps; ++j) {
    std::vector<int> snp(samples);
    for (int i = 0; i < samples; ++i) {
      const double u = uniform(static_cast<std::uint64_t>(j) * 100003 + i);
      snp[i] = u < -0.4 ? 0 : u < 0.5 ? 2 : 3;
    }
    snp[0] = 0;  // every SNP has both homozygotes: never monomorphic
    snp[1] = 3;
    plink.genotypes.push_back(snp);
  }
  return plink;
}

std::string zstd_compress(const std::string& text) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  const std::size_t n = ZSTD_compress(out.data(), out.size(), text.data(), text.size(), 3);
  check(!ZSTD_isError(n), "ZSTD_compress");
  out.resize(n);
  return out;
}

double uniform(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-52 - 1.0;
}

void truncate_file(const std::string& path, std::uint64_t bytes) {
  std::filesystem::resize_file(path, bytes);
}

std::uint64_t file_size(const std::string& path) {
  return std::filesystem::file_size(path);
}

}  // namespace skein::bad_inputs
