#include "io/h5_summary.hpp"

#include "engine/error.hpp"
#include "engine/log.hpp"
#include "io/checkpoint.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <sstream>
#include <type_traits>

namespace skein::io {

namespace {

using detail::check_id;
using detail::check_status;
using detail::dims_of;
using detail::Entry;
using detail::H5Handle;
using detail::list_objects;

std::string format_double(double value) {
  char text[64];
  const auto result = std::to_chars(text, text + sizeof text, value);
  return std::string(text, result.ptr);
}

std::string quote(const std::string& text, std::size_t max_chars) {
  std::string out = "\"";
  std::size_t shown = 0;
  for (const char c : text) {
    if (shown++ == max_chars) {
      out += "...";
      break;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string dtype_name(hid_t type) {
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: {
      const std::string prefix = H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int";
      return prefix + std::to_string(8 * H5Tget_size(type));
    }
    case H5T_FLOAT:
      return "float" + std::to_string(8 * H5Tget_size(type));
    case H5T_STRING:
      if (H5Tis_variable_str(type) > 0) return "string";
      return "string[" + std::to_string(H5Tget_size(type)) + "]";
    case H5T_COMPOUND:
      return "compound";
    case H5T_ENUM:
      return "enum";
    case H5T_ARRAY:
      return "array";
    case H5T_VLEN:
      return "vlen";
    case H5T_OPAQUE:
      return "opaque";
    case H5T_BITFIELD:
      return "bitfield";
    case H5T_REFERENCE:
      return "reference";
    default:
      return "unknown";
  }
}

std::string shape_text(hid_t space) {
  if (H5Sget_simple_extent_type(space) == H5S_SCALAR) return "scalar";
  if (H5Sget_simple_extent_type(space) == H5S_NULL) return "null";
  std::string out = "[";
  const auto dims = dims_of(space);
  for (std::size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
  return out + "]";
}

// Reads `count` elements of an attribute (whole) or a dataset selection as display strings.
// `read(mem_type, buffer)` performs the H5Aread / H5Dread.
std::vector<std::string> read_as_text(hid_t file_type, std::size_t count,
                                      const std::function<herr_t(hid_t, void*)>& read,
                                      std::size_t max_chars) {
  std::vector<std::string> out;
  if (count == 0) return out;
  switch (H5Tget_class(file_type)) {
    case H5T_INTEGER: {
      if (H5Tget_sign(file_type) == H5T_SGN_NONE) {
        std::vector<std::uint64_t> values(count);
        if (read(H5T_NATIVE_UINT64, values.data()) < 0) return {"(unreadable)"};
        for (const auto v : values) out.push_back(std::to_string(v));
      } else {
        std::vector<std::int64_t> values(count);
        if (read(H5T_NATIVE_INT64, values.data()) < 0) return {"(unreadable)"};
        for (const auto v : values) out.push_back(std::to_string(v));
      }
      return out;
    }
    case H5T_FLOAT: {
      std::vector<double> values(count);
      if (read(H5T_NATIVE_DOUBLE, values.data()) < 0) return {"(unreadable)"};
      for (const auto v : values) out.push_back(format_double(v));
      return out;
    }
    case H5T_STRING: {
      if (H5Tis_variable_str(file_type) > 0) {
        H5Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
        H5Tset_size(mem.get(), H5T_VARIABLE);
        H5Tset_cset(mem.get(), H5Tget_cset(file_type));
        std::vector<char*> values(count, nullptr);
        if (read(mem.get(), values.data()) < 0) return {"(unreadable)"};
        for (char* v : values) {
          out.push_back(quote(v == nullptr ? "" : v, max_chars));
          H5free_memory(v);
        }
      } else {
        const std::size_t size = H5Tget_size(file_type);
        H5Handle mem(H5Tcopy(file_type), H5Tclose);
        std::vector<char> values(count * size);
        if (read(mem.get(), values.data()) < 0) return {"(unreadable)"};
        for (std::size_t i = 0; i < count; ++i) {
          const char* begin = values.data() + i * size;
          out.push_back(quote(std::string(begin, strnlen(begin, size)), max_chars));
        }
      }
      return out;
    }
    default:
      return {};
  }
}

std::vector<std::string> attribute_names(hid_t obj) {
  std::vector<std::string> names;
  hsize_t index = 0;
  H5Aiterate2(
      obj, H5_INDEX_NAME, H5_ITER_INC, &index,
      [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->push_back(name);
        return 0;
      },
      &names);
  return names;
}

// The text of a scalar string attribute, as stored.
std::string string_value(hid_t attr, hid_t type) {
  if (H5Tis_variable_str(type) > 0) {
    H5Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type));
    char* value = nullptr;
    if (H5Aread(attr, mem.get(), &value) < 0) return "(unreadable)";
    std::string out = value == nullptr ? "" : value;
    H5free_memory(value);
    return out;
  }
  const std::size_t size = H5Tget_size(type);
  std::vector<char> value(size + 1, '\0');
  if (H5Aread(attr, type, value.data()) < 0) return "(unreadable)";
  return std::string(value.data(), strnlen(value.data(), size));
}

// "value" or "v1, v2, ..." for an attribute; strings unquoted when `raw`.
std::string attribute_text(hid_t obj, const std::string& name, bool raw, std::size_t max_values) {
  H5Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  if (!attr) return "(unreadable)";
  H5Handle type(H5Aget_type(attr.get()), H5Tclose);
  H5Handle space(H5Aget_space(attr.get()), H5Sclose);
  const auto count =
      static_cast<std::size_t>(std::max<hssize_t>(H5Sget_simple_extent_npoints(space.get()), 0));
  if (raw && count == 1 && H5Tget_class(type.get()) == H5T_STRING)
    return string_value(attr.get(), type.get());
  auto values = read_as_text(
      type.get(), count, [&](hid_t mem, void* buffer) { return H5Aread(attr.get(), mem, buffer); },
      raw ? std::string::npos : 200);
  if (values.empty()) return "(" + dtype_name(type.get()) + " " + shape_text(space.get()) + ")";
  std::string out;
  for (std::size_t i = 0; i < values.size() && i < max_values; ++i) out += (i ? ", " : "") + values[i];
  if (values.size() > max_values) out += ", ...";
  if (H5Sget_simple_extent_type(space.get()) == H5S_SIMPLE) out = "[" + out + "]";
  return out;
}

std::string dataset_line(hid_t file, const std::string& name, std::size_t n) {
  H5Handle ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds) return name + "  (unreadable)";
  H5Handle type(H5Dget_type(ds.get()), H5Tclose);
  H5Handle space(H5Dget_space(ds.get()), H5Sclose);
  std::string line = name + "  " + dtype_name(type.get()) + "  " + shape_text(space.get());
  const auto dims = dims_of(space.get());
  const auto total =
      static_cast<std::uint64_t>(std::max<hssize_t>(H5Sget_simple_extent_npoints(space.get()), 0));
  if (total == 0 || n == 0) return line;
  // The first values of the first row (all of them for 1-D): a hyperslab [0, .., 0, 0:k).
  std::vector<hsize_t> start(dims.size(), 0);
  std::vector<hsize_t> count(dims.size(), 1);
  std::size_t k = 1;
  if (!dims.empty()) {
    k = static_cast<std::size_t>(std::min<hsize_t>(n, dims.back()));
    count.back() = k;
    if (H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0)
      return line;
  }
  const hsize_t mem_dims[1] = {k};
  H5Handle mem_space(H5Screate_simple(1, mem_dims, nullptr), H5Sclose);
  const auto values = read_as_text(
      type.get(), k,
      [&](hid_t mem, void* buffer) {
        return H5Dread(ds.get(), mem, mem_space.get(), space.get(), H5P_DEFAULT, buffer);
      },
      60);
  if (values.empty()) return line;
  line += "  = ";
  for (std::size_t i = 0; i < values.size(); ++i) line += (i ? ", " : "") + values[i];
  if (total > values.size()) line += ", ...";
  return line;
}

// A scalar numeric attribute of `obj`, or nothing when it is missing or unreadable.
template <class T>
bool numeric_attribute(hid_t obj, const char* name, T& value) {
  if (H5Aexists(obj, name) <= 0) return false;
  H5Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (!attr) return false;
  const hid_t type = std::is_floating_point<T>::value ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64;
  H5Handle space(H5Aget_space(attr.get()), H5Sclose);
  if (!space || H5Sget_simple_extent_npoints(space.get()) != 1) return false;
  return H5Aread(attr.get(), type, &value) >= 0;
}

// The lines `skein inspect` prints first for a checkpoint: which step, how many ranks wrote it, how long
// ago, whether it is complete (and so usable by --resume), and the scalars of its /state.
std::string checkpoint_summary(hid_t file, hid_t root) {
  std::int64_t step = -1, ranks = -1, schema = -1;
  double written = 0;
  const bool has_step = numeric_attribute(root, "checkpoint_step", step);
  const bool has_ranks = numeric_attribute(root, "ranks", ranks);
  const bool has_time = numeric_attribute(root, "written_unix", written);
  numeric_attribute(root, "checkpoint_schema_version", schema);
  std::string line = "checkpoint: step " + (has_step ? std::to_string(step) : std::string("?"));
  if (has_ranks) line += ", written by " + std::to_string(ranks) + (ranks == 1 ? " rank" : " ranks");
  if (has_time) {
    const double now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    const double age = now - written;
    line += age >= -1 ? " " + engine::human_duration(std::max(age, 0.0)) + " ago"
                      : " in the future (clock skew?)";
    const std::time_t seconds = static_cast<std::time_t>(written);
    std::tm utc{};
    char when[64];
    if (gmtime_r(&seconds, &utc) && std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &utc) > 0) {
      line += std::string(" (") + when + ")";
    }
  }
  if (H5Aexists(root, "checkpoint_complete") > 0) {
    line += ", complete";
  } else {
    line += ", INCOMPLETE (its writer was interrupted; --resume skips it)";
  }
  if (schema != kCheckpointSchemaVersion) {
    line += "; schema " + std::to_string(schema) + " (this skein reads schema " +
            std::to_string(kCheckpointSchemaVersion) + ")";
  }
  line += "\n";
  // The state's scalars inline; its arrays are in the dataset listing below.
  if (H5Lexists(file, "/state", H5P_DEFAULT) > 0) {
    H5Handle state(H5Oopen(file, "/state", H5P_DEFAULT), H5Oclose);
    if (state) {
      std::string scalars;
      for (const auto& name : attribute_names(state.get())) {
        scalars += (scalars.empty() ? "" : ", ") + name + " = " + attribute_text(state.get(), name, true, 6);
      }
      H5G_info_t info{};
      const hsize_t arrays = H5Gget_info(state.get(), &info) >= 0 ? info.nlinks : 0;
      line += "  state: " + (scalars.empty() ? std::string("(no scalars)") : scalars) + "; " +
              std::to_string(arrays) + (arrays == 1 ? " array" : " arrays") +
              " under /state (listed below)\n";
    }
  } else {
    H5Eclear2(H5E_DEFAULT);
    line += "  state: none (no /state group)\n";
  }
  return line;
}

}  // namespace

std::string summarize_h5(const std::string& path, std::size_t values_per_dataset) {
  detail::QuietErrors quiet;
  H5Handle file = detail::open_for_reading(path);
  std::ostringstream out;
  out << path << "\n";

  H5Handle root(check_id(H5Oopen(file.get(), "/", H5P_DEFAULT), "H5Oopen", path, "/"), H5Oclose);
  if (H5Aexists(root.get(), "checkpoint_schema_version") > 0)
    out << checkpoint_summary(file.get(), root.get());
  auto names = attribute_names(root.get());
  static const char* const first[] = {"job", "status", "skein_version", "ranks", "seed", "wall_seconds"};
  std::vector<std::string> ordered;
  for (const char* name : first) {
    if (std::find(names.begin(), names.end(), name) != names.end()) ordered.emplace_back(name);
  }
  for (const auto& name : names) {
    if (name != "config" && std::find(ordered.begin(), ordered.end(), name) == ordered.end())
      ordered.push_back(name);
  }
  std::size_t width = 0;
  for (const auto& name : ordered) width = std::max(width, name.size());
  for (const auto& name : ordered) {
    out << "  " << name << std::string(width - name.size() + 2, ' ')
        << attribute_text(root.get(), name, /*raw=*/true, values_per_dataset) << "\n";
  }
  if (std::find(names.begin(), names.end(), "config") != names.end()) {
    out << "config:\n";
    std::istringstream config(attribute_text(root.get(), "config", /*raw=*/true, values_per_dataset));
    for (std::string line; std::getline(config, line);) out << "  " << line << "\n";
  }

  const auto entries = list_objects(file.get());
  out << "datasets:\n";
  bool any = false;
  for (const auto& entry : entries) {
    if (entry.type != H5I_DATASET) continue;
    any = true;
    out << "  " << dataset_line(file.get(), entry.name, values_per_dataset) << "\n";
    H5Handle ds(H5Oopen(file.get(), entry.name.c_str(), H5P_DEFAULT), H5Oclose);
    if (!ds) continue;
    for (const auto& name : attribute_names(ds.get())) {
      out << "    @" << name << " = " << attribute_text(ds.get(), name, false, values_per_dataset) << "\n";
    }
  }
  if (!any) out << "  (none)\n";

  bool header = false;
  for (const auto& entry : entries) {
    if (entry.type != H5I_GROUP) continue;
    H5Handle group(H5Oopen(file.get(), entry.name.c_str(), H5P_DEFAULT), H5Oclose);
    if (!group) continue;
    const auto attrs = attribute_names(group.get());
    if (attrs.empty()) continue;
    if (!header) out << "group attributes:\n";
    header = true;
    out << "  " << entry.name << "\n";
    std::size_t w = 0;
    for (const auto& name : attrs) w = std::max(w, name.size());
    for (const auto& name : attrs) {
      out << "    " << name << std::string(w - name.size() + 2, ' ')
          << attribute_text(group.get(), name, false, values_per_dataset) << "\n";
    }
  }
  return out.str();
}

}  // namespace skein::io
