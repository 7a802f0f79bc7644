// libFuzzer targets for skein's HDF5 loaders: the hessian model and data files, the DCDM model file, the cca
// view files (matrix, sample ids, feature names) and the poisson problem=file fields, plus `skein inspect`'s
// summary of any file.
//
// fuzz_hdf5 (structured): the input's first byte picks a loader family; a valid small file for it is
// built with the HDF5 API, then the rest of the input is a list of edit operations applied through the
// HDF5 API (delete an object, replace a dataset by one of another shape, type or values, NaN and Inf
// included, replace a group by a dataset, set or delete an attribute with another type or value); then the
// loaders read the file. Every file is well-formed HDF5, so what is found is skein's.
//
// fuzz_hdf5_raw (SKEIN_FUZZ_HDF5_RAW): the input after the family byte is the file's bytes. This reaches
// the HDF5 library's own parser, which crashes on some corrupt files (not skein's code, nothing skein can
// check before opening); cluster/fuzz.sh runs it for a bounded time and reports its crashes without
// failing on them unless a skein frame is on the stack.
#include "comm/cartesian.hpp"
#include "comm/halo.hpp"
#include "fuzz/fuzz_common.hpp"
#include "io/h5_summary.hpp"
#include "jobs/cca/inputs.hpp"
#include "jobs/dcdm_model.hpp"
#include "jobs/hessian/inputs.hpp"
#include "jobs/poisson/problem.hpp"

#include <hdf5.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace {

using namespace skein;

enum Family : int { hessian_files, dcdm_file, cca_file, poisson_file, family_count };

// ---- Building files with the HDF5 API (errors there are not findings: an edit that HDF5 refuses is
// skipped) ----

// Element types a dataset or attribute may be given.
enum class Kind : int { f64, f32, i64, i32, u8, i8, u64, vlen_string, fixed_string, count };

hid_t file_type(Kind kind) {
  switch (kind) {
    case Kind::f64:
      return H5Tcopy(H5T_IEEE_F64LE);
    case Kind::f32:
      return H5Tcopy(H5T_IEEE_F32LE);
    case Kind::i64:
      return H5Tcopy(H5T_STD_I64LE);
    case Kind::i32:
      return H5Tcopy(H5T_STD_I32LE);
    case Kind::u8:
      return H5Tcopy(H5T_STD_U8LE);
    case Kind::i8:
      return H5Tcopy(H5T_STD_I8LE);
    case Kind::u64:
      return H5Tcopy(H5T_STD_U64LE);
    case Kind::vlen_string: {
      const hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, H5T_VARIABLE);
      return t;
    }
    default: {
      const hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, 4);
      return t;
    }
  }
}

bool is_float(Kind k) {
  return k == Kind::f64 || k == Kind::f32;
}
bool is_string(Kind k) {
  return k == Kind::vlen_string || k == Kind::fixed_string;
}

// Values worth trying, picked by one input byte: small integers, signs, the float specials and extremes.
double interesting_double(std::uint8_t v) {
  static const double table[] = {0.0,    1.0,    -1.0, 0.5, std::nan(""), INFINITY, -INFINITY, 1e308,
                                 -1e308, 1e-310, 2.0,  3.0, 1e9,          -0.0,     255.0,     65536.0};
  return v < 16 ? table[v] : static_cast<double>(v - 16) / 8.0;
}
std::int64_t interesting_int(std::uint8_t v) {
  static const std::int64_t table[] = {0,
                                       1,
                                       2,
                                       3,
                                       -1,
                                       -2,
                                       255,
                                       256,
                                       65535,
                                       1 << 20,
                                       std::numeric_limits<std::int32_t>::max(),
                                       std::numeric_limits<std::int32_t>::min(),
                                       std::numeric_limits<std::int64_t>::max(),
                                       std::numeric_limits<std::int64_t>::min(),
                                       4,
                                       16};
  return v < 16 ? table[v] : v - 16;
}

// Values for `count` elements: numbers from `values` (floats or ints by kind), strings of up to 6 bytes.
struct Values {
  std::vector<double> doubles;
  std::vector<std::int64_t> ints;
  std::vector<std::string> strings;
};

Values values_from(fuzz::ByteReader& in, Kind kind, std::size_t count) {
  Values v;
  for (std::size_t i = 0; i < count; ++i) {
    if (is_string(kind)) {
      v.strings.emplace_back(in.bytes(in.u8() % 7));
    } else if (is_float(kind)) {
      v.doubles.push_back(interesting_double(in.u8()));
    } else {
      v.ints.push_back(interesting_int(in.u8()));
    }
  }
  return v;
}

// Writes `v` into a dataset or attribute `target` through `write(mem_type, buffer)`.
template <class Write>
void write_values(Kind kind, const Values& v, Write&& write) {
  if (is_float(kind)) {
    write(H5T_NATIVE_DOUBLE, v.doubles.data());
  } else if (!is_string(kind)) {
    write(H5T_NATIVE_INT64, v.ints.data());
  } else if (kind == Kind::vlen_string) {
    std::vector<const char*> pointers;
    for (const auto& s : v.strings) pointers.push_back(s.c_str());
    const hid_t t = file_type(kind);
    write(t, pointers.data());
    H5Tclose(t);
  } else {
    std::string packed;
    for (const auto& s : v.strings) packed += (s + std::string(4, '\0')).substr(0, 4);
    const hid_t t = file_type(kind);
    write(t, packed.data());
    H5Tclose(t);
  }
}

void remove_object(hid_t file, const std::string& name) {
  if (H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0) H5Ldelete(file, name.c_str(), H5P_DEFAULT);
}

// Creates (replacing) dataset `name` of `kind` and `dims` (empty: a scalar) holding `v`; `chunked` stores
// it in chunks with unlimited maximum extents.
void put_dataset(hid_t file, const std::string& name, Kind kind, const std::vector<hsize_t>& dims,
                 const Values& v, bool chunked = false) {
  remove_object(file, name);
  const hid_t space = dims.empty() ? H5Screate(H5S_SCALAR)
                                   : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t type = file_type(kind);
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (chunked && !dims.empty()) {
    std::vector<hsize_t> chunk(dims.size());
    for (std::size_t i = 0; i < dims.size(); ++i) chunk[i] = dims[i] ? dims[i] : 1;
    H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
    H5Sclose(space);
    const std::vector<hsize_t> unlimited(dims.size(), H5S_UNLIMITED);
    const hid_t chunked_space =
        H5Screate_simple(static_cast<int>(dims.size()), dims.data(), unlimited.data());
    const hid_t d = H5Dcreate2(file, name.c_str(), type, chunked_space, lcpl, dcpl, H5P_DEFAULT);
    if (d >= 0) {
      write_values(kind, v,
                   [&](hid_t mem, const void* buf) { H5Dwrite(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); });
      H5Dclose(d);
    }
    H5Sclose(chunked_space);
  } else {
    const hid_t d = H5Dcreate2(file, name.c_str(), type, space, lcpl, dcpl, H5P_DEFAULT);
    if (d >= 0) {
      write_values(kind, v,
                   [&](hid_t mem, const void* buf) { H5Dwrite(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); });
      H5Dclose(d);
    }
    H5Sclose(space);
  }
  H5Pclose(dcpl);
  H5Pclose(lcpl);
  H5Tclose(type);
}

void put_group(hid_t file, const std::string& name) {
  remove_object(file, name);
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  const hid_t g = H5Gcreate2(file, name.c_str(), lcpl, H5P_DEFAULT, H5P_DEFAULT);
  if (g >= 0) H5Gclose(g);
  H5Pclose(lcpl);
}

// Sets (replacing) attribute `attr` of object `object`: a scalar when `length` is 0, else 1-D.
void put_attribute(hid_t file, const std::string& object, const std::string& attr, Kind kind,
                   std::size_t length, const Values& v) {
  if (H5Lexists(file, object.c_str(), H5P_DEFAULT) <= 0 && object != "/") return;
  if (H5Aexists_by_name(file, object.c_str(), attr.c_str(), H5P_DEFAULT) > 0)
    H5Adelete_by_name(file, object.c_str(), attr.c_str(), H5P_DEFAULT);
  const hsize_t n = length;
  const hid_t space = length == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr);
  const hid_t type = file_type(kind);
  const hid_t a = H5Acreate_by_name(file, object.c_str(), attr.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT,
                                    H5P_DEFAULT);
  if (a >= 0) {
    write_values(kind, v, [&](hid_t mem, const void* buf) { H5Awrite(a, mem, buf); });
    H5Aclose(a);
  }
  H5Tclose(type);
  H5Sclose(space);
}

Values doubles(std::vector<double> d) {
  return Values{std::move(d), {}, {}};
}
Values ints(std::vector<std::int64_t> i) {
  return Values{{}, std::move(i), {}};
}
Values strings(std::vector<std::string> s) {
  return Values{{}, {}, std::move(s)};
}

std::vector<double> ramp(std::size_t n, double scale) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = scale * std::sin(1.0 + static_cast<double>(i));
  return v;
}

// ---- The families: a valid seed file, the names edits aim at, and the loaders ----

struct Names {
  std::vector<std::string> objects;     // datasets and groups the edits aim at
  std::vector<std::string> attributes;  // attribute names they set or delete (on any object)
};

const Names& names_of(int family) {
  static const Names names[family_count] = {
      {{"/model", "/model/W0", "/model/b0", "/model/W1", "/model/b1", "/model/W2", "/X", "/y"},
       {"activation", "loss", "layer_sizes"}},
      {{"/model", "/model/conv00/weight", "/model/conv00/bias", "/model/conv01/weight", "/model/conv01/bias",
        "/model/conv02/weight", "/model/conv02/bias", "/model/conv03/weight", "/model/output/weight",
        "/model/output/bias"},
       {"kind", "format_version", "channels", "fine_pairs_before", "coarse_pairs", "fine_pairs_after",
        "trained_grid", "parameter_count"}},
      {{"/X", "/sample_id", "/feature_names", "/Y"}, {"units"}},
      {{"/cell_type", "/rhs", "/extra"}, {"grid"}},
  };
  return names[family];
}

void build_seed(hid_t f, int family) {
  switch (family) {
    case hessian_files:
      put_group(f, "/model");
      put_attribute(f, "/model", "activation", Kind::vlen_string, 0, strings({"tanh"}));
      put_attribute(f, "/model", "loss", Kind::vlen_string, 0, strings({"cross_entropy"}));
      put_attribute(f, "/model", "layer_sizes", Kind::i64, 3, ints({3, 4, 2}));
      put_dataset(f, "/model/W0", Kind::f64, {4, 3}, doubles(ramp(12, 0.5)));
      put_dataset(f, "/model/b0", Kind::f64, {4}, doubles(ramp(4, 0.1)));
      put_dataset(f, "/model/W1", Kind::f64, {2, 4}, doubles(ramp(8, 0.5)));
      put_dataset(f, "/model/b1", Kind::f64, {2}, doubles(ramp(2, 0.1)));
      put_dataset(f, "/X", Kind::f64, {5, 3}, doubles(ramp(15, 1.0)));
      put_dataset(f, "/y", Kind::i64, {5}, ints({0, 1, 1, 0, 1}));
      break;
    case dcdm_file: {
      // channels 1, no pairs: conv00..conv02 (1 -> 1, 3x3x3) and the 1x1x1 output layer.
      put_group(f, "/model");
      put_attribute(f, "/model", "kind", Kind::vlen_string, 0, strings({dcdm::kModelKind}));
      put_attribute(f, "/model", "format_version", Kind::i64, 0, ints({dcdm::kModelFormatVersion}));
      for (const char* a : {"channels"}) put_attribute(f, "/model", a, Kind::i64, 0, ints({1}));
      for (const char* a : {"fine_pairs_before", "coarse_pairs", "fine_pairs_after"})
        put_attribute(f, "/model", a, Kind::i64, 0, ints({0}));
      put_attribute(f, "/model", "trained_grid", Kind::i64, 3, ints({8, 8, 8}));
      put_attribute(f, "/model", "parameter_count", Kind::i64, 0, ints({3 * 28 + 2}));
      for (int l = 0; l < 3; ++l) {
        const std::string layer = "/model/conv0" + std::to_string(l);
        put_dataset(f, layer + "/weight", Kind::f32, {1, 1, 3, 3, 3}, doubles(ramp(27, 0.2)));
        put_dataset(f, layer + "/bias", Kind::f32, {1}, doubles({0.01}));
      }
      put_dataset(f, "/model/output/weight", Kind::f32, {1, 1}, doubles({0.7}));
      put_dataset(f, "/model/output/bias", Kind::f32, {1}, doubles({0.0}));
      break;
    }
    case cca_file:
      put_dataset(f, "/X", Kind::f64, {6, 4}, doubles(ramp(24, 2.0)));
      put_dataset(f, "/sample_id", Kind::vlen_string, {6}, strings({"s0", "s1", "s2", "s3", "s4", "s5"}));
      put_dataset(f, "/feature_names", Kind::vlen_string, {4}, strings({"a", "b", "c", "d"}));
      break;
    case poisson_file: {
      std::vector<std::int64_t> types(12);
      for (std::size_t i = 0; i < types.size(); ++i) types[i] = static_cast<std::int64_t>(i % 3);
      put_dataset(f, "/cell_type", Kind::u8, {2, 3, 2}, ints(types));
      put_dataset(f, "/rhs", Kind::f64, {2, 3, 2}, doubles(ramp(12, 1.0)));
      break;
    }
  }
}

// One edit, decoded from the input.
void apply_edit(hid_t f, int family, fuzz::ByteReader& in) {
  const Names& names = names_of(family);
  const std::uint8_t op = in.u8() % 6;
  const std::string& object = names.objects[in.u8() % names.objects.size()];
  switch (op) {
    case 0:  // delete an object
      remove_object(f, object);
      break;
    case 1: {  // replace a dataset: rank 0..4, extents 0..5, any kind and values, maybe chunked
      const std::uint8_t shape_byte = in.u8();
      const Kind kind = static_cast<Kind>(in.u8() % static_cast<int>(Kind::count));
      std::vector<hsize_t> dims(shape_byte % 5);
      std::size_t count = 1;
      for (auto& d : dims) {
        d = in.u8() % 6;
        count *= d;
      }
      put_dataset(f, object, kind, dims, values_from(in, kind, count), (shape_byte & 0x80) != 0);
      break;
    }
    case 2: {  // set an attribute on an object or the root
      const std::string target = (in.u8() & 1) ? object : "/";
      const std::string& attr = names.attributes[in.u8() % names.attributes.size()];
      const Kind kind = static_cast<Kind>(in.u8() % static_cast<int>(Kind::count));
      const std::size_t length = in.u8() % 5;
      put_attribute(f, target, attr, kind, length, values_from(in, kind, length ? length : 1));
      break;
    }
    case 3: {  // delete an attribute
      const std::string& attr = names.attributes[in.u8() % names.attributes.size()];
      if (H5Lexists(f, object.c_str(), H5P_DEFAULT) > 0 &&
          H5Aexists_by_name(f, object.c_str(), attr.c_str(), H5P_DEFAULT) > 0)
        H5Adelete_by_name(f, object.c_str(), attr.c_str(), H5P_DEFAULT);
      break;
    }
    case 4:  // a group where a dataset was (or the other way round, with case 1)
      put_group(f, object);
      break;
    case 5: {  // new values, same shape and type: NaN, Inf, out-of-range labels and cell types
      if (H5Lexists(f, object.c_str(), H5P_DEFAULT) <= 0) break;
      const hid_t d = H5Dopen2(f, object.c_str(), H5P_DEFAULT);
      if (d < 0) break;
      const hid_t space = H5Dget_space(d);
      const hid_t type = H5Dget_type(d);
      const hssize_t n = H5Sget_simple_extent_npoints(space);
      if (n > 0 && n <= 4096 && H5Tget_class(type) != H5T_STRING) {
        const bool floating = H5Tget_class(type) == H5T_FLOAT;
        const Values v = values_from(in, floating ? Kind::f64 : Kind::i64, static_cast<std::size_t>(n));
        write_values(floating ? Kind::f64 : Kind::i64, v, [&](hid_t mem, const void* buf) {
          H5Dwrite(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        });
      }
      H5Tclose(type);
      H5Sclose(space);
      H5Dclose(d);
      break;
    }
  }
}

// ---- The loaders, with what they promise when they accept a file ----

void run_loaders(int family, const std::string& path, const std::array<std::int64_t, 3>& grid) {
  const comm::Communicator& world = fuzz::world();
  fuzz::expect_skein_errors([&] { (void)io::summarize_h5(path); });
  switch (family) {
    case hessian_files:
      fuzz::expect_skein_errors([&] {
        const hessian::ModelFile model = hessian::read_model(world, path);
        const auto& sizes = model.shape.layer_sizes;
        std::size_t expected = 0;
        for (std::size_t l = 0; l + 1 < sizes.size(); ++l)
          expected += static_cast<std::size_t>(sizes[l + 1]) * static_cast<std::size_t>(sizes[l] + 1);
        if (sizes.size() < 2 || model.parameters.size() != expected)
          fuzz::finding("hessian model: parameter count does not match the layer sizes");
        for (const double p : model.parameters)
          if (!std::isfinite(p)) fuzz::finding("hessian model: accepted a non-finite weight");
        const hessian::DataShard data = hessian::read_data(world, path, model.shape);
        if (data.rows != data.samples || data.first_row != 0 || data.features != sizes.front() ||
            data.x.size() != static_cast<std::size_t>(data.rows * data.features))
          fuzz::finding("hessian data: shard shape does not match");
        for (const double x : data.x)
          if (!std::isfinite(x)) fuzz::finding("hessian data: accepted a non-finite X");
        if (data.classification) {
          if (data.labels.size() != static_cast<std::size_t>(data.rows))
            fuzz::finding("hessian data: labels");
          for (const int label : data.labels)
            if (label < 0 || label >= data.outputs)
              fuzz::finding("hessian data: accepted a label out of range");
        } else {
          if (data.targets.size() != static_cast<std::size_t>(data.rows * data.outputs))
            fuzz::finding("hessian data: targets");
          for (const double t : data.targets)
            if (!std::isfinite(t)) fuzz::finding("hessian data: accepted a non-finite target");
        }
      });
      break;
    case dcdm_file:
      fuzz::expect_skein_errors([&] {
        const dcdm::LoadedModel model = dcdm::load_model(world, path);
        if (static_cast<std::int64_t>(model.parameters.size()) != model.architecture.parameter_count())
          fuzz::finding("dcdm model: parameter count does not match the architecture");
        for (const float p : model.parameters)
          if (!std::isfinite(p)) fuzz::finding("dcdm model: accepted a non-finite weight");
      });
      break;
    case cca_file:
      fuzz::expect_skein_errors([&] {
        const cca::ViewSource source{path + ":/X", false, path, "/X"};
        const auto shape = cca::hdf5_view_shape(world, source);
        if (shape.size() != 2) fuzz::finding("cca: a view shape that is not 2-D");
        const auto ids = cca::hdf5_sample_ids(world, source);
        const auto rows = static_cast<std::int64_t>(shape[0]);
        const cca::SampleMatch match = cca::match_samples(ids, rows, "x", ids, rows, "y");
        if (match.x_rows.size() != match.y_rows.size()) fuzz::finding("cca: unpaired matches");
        for (const auto r : match.x_rows)
          if (r < 0 || r >= rows) fuzz::finding("cca: matched row out of range");
        (void)cca::hdf5_names(world, path, "/feature_names");
        const comm::IndexRange columns{0, shape[1]};
        const auto values = cca::read_view_columns<double>(world, source, match.x_rows, columns);
        if (values.extent(0) != match.x_rows.size() || values.extent(1) != shape[1])
          fuzz::finding("cca: read_view_columns has the wrong shape");
        for (std::size_t i = 0; i < values.extent(0); ++i)
          for (std::size_t j = 0; j < values.extent(1); ++j)
            if (!std::isfinite(values(i, j))) fuzz::finding("cca: accepted a non-finite value");
        // The streamed reader: reversed row order (not ascending), all columns.
        std::vector<std::int64_t> reversed(match.x_rows.rbegin(), match.x_rows.rend());
        cca::Hdf5ColumnSource<double> stream(source, reversed, columns);
        std::vector<std::int64_t> block_rows(reversed.size());
        for (std::size_t i = 0; i < block_rows.size(); ++i) block_rows[i] = static_cast<std::int64_t>(i);
        typename cca::Hdf5ColumnSource<double>::HostMatrix out("out", block_rows.size(), shape[1]);
        stream.read(block_rows, 0, static_cast<std::int64_t>(shape[1]), out);
        if (stream.error().empty()) {
          for (std::size_t i = 0; i < block_rows.size(); ++i)
            for (std::size_t j = 0; j < shape[1]; ++j)
              if (!(out(i, j) == values(block_rows.size() - 1 - i, j)))
                fuzz::finding("cca: the streamed reader disagrees with read_view_columns");
        }
      });
      break;
    case poisson_file:
      fuzz::expect_skein_errors([&] {
        const comm::CartDecomposition d(world, grid);
        const auto cells = comm::make_field<std::uint8_t>(d, 1, "cells");
        const auto b = comm::make_field<double>(d, 1, "b");
        poisson::Settings settings;
        settings.grid = grid;
        settings.problem = poisson::ProblemKind::file;
        settings.file = path;
        poisson::read_file_problem(d, settings, cells, b);
        for (std::int64_t i = 1; i <= grid[0]; ++i)
          for (std::int64_t j = 1; j <= grid[1]; ++j)
            for (std::int64_t k = 1; k <= grid[2]; ++k) {
              if (cells(i, j, k) > 2) fuzz::finding("poisson: accepted a cell type above 2");
              if (!std::isfinite(b(i, j, k))) fuzz::finding("poisson: accepted a non-finite rhs");
            }
      });
      break;
  }
}

std::array<std::int64_t, 3> grid_from(std::uint8_t byte) {
  // Mostly the seed's 2x3x2; sometimes another small grid (a shape mismatch, or an edit that fits it).
  if (byte < 192) return {2, 3, 2};
  return {1 + byte % 3, 1 + (byte / 3) % 3, 1 + (byte / 9) % 3};
}

void write_seed_files(const std::string& dir) {
  // One structured input per family (no edits), and one raw input per family (the seed file's bytes).
  for (int family = 0; family < family_count; ++family) {
    const std::string path = dir + "/seed-" + std::to_string(family) + ".h5";
    // The newest format keeps the files small (a few KB) for the repository's corpus.
    const hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    build_seed(f, family);
    H5Fclose(f);
    H5Pclose(fapl);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::world();
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  // HDF5 keeps freed blocks on free lists; then every input ends with more mallocs than frees and libFuzzer
  // runs a full leak scan after each one (half the time). Limits of 0 make HDF5 free them at once.
  H5set_free_list_limits(0, 0, 0, 0, 0, 0);
  if (const char* dir = std::getenv("SKEIN_FUZZ_WRITE_HDF5_SEEDS")) {
    write_seed_files(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::ByteReader in(data, size);
  const int family = in.u8() % family_count;
  const auto grid = grid_from(in.u8());
#ifdef SKEIN_FUZZ_HDF5_RAW
  const std::string path = fuzz::write_scratch("raw.h5", in.rest());
#else
  const std::string path = fuzz::scratch_dir() + "/edited.h5";
  {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) fuzz::finding("cannot create " + path);
    build_seed(f, family);
    for (int edits = 0; edits < 16 && !in.empty(); ++edits) apply_edit(f, family, in);
    H5Fclose(f);
  }
#endif
  run_loaders(family, path, grid);
  return 0;
}
