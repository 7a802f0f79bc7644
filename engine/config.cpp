#include "engine/config.hpp"

#include "engine/error.hpp"

#include <boost/program_options.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace skein::engine {
namespace po = boost::program_options;

namespace {

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string key_error(const std::string& what, const std::string& key, const std::string& where,
                      const std::vector<std::string>& valid) {
  std::string message = what + " '" + key + "'" + where;
  const std::string suggestion = closest_match(key, valid);
  if (!suggestion.empty()) message += "; did you mean '" + suggestion + "'?";
  return message;
}

}  // namespace

std::string read_config_file(const std::string& path) {
  struct stat info{};
  if (::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    throw UsageError("config file " + path + " is a directory, not an INI file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read config file " + path + ": " + std::strerror(errno));
  std::ostringstream stream;
  stream << in.rdbuf();
  std::string text = stream.str();
  // Editors on Windows start UTF-8 files with a byte-order mark; it is not part of the first line.
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
  // A binary file (a wrong path, an .h5 given as --config) would otherwise be quoted raw in an error.
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == 0 || (c < 0x20 && c != '\n' && c != '\r' && c != '\t')) {
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02x", c);
      throw UsageError("config file " + path + " is not a text INI file (byte " + std::to_string(i) + " is " + byte +
                       ")");
    }
  }
  return text;
}

std::pair<std::string, std::string> split_ini_section(const std::string& text, const std::string& section) {
  std::string inside, outside;
  bool in_section = false;
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    end = end == std::string::npos ? text.size() : end + 1;
    const std::string line = text.substr(begin, end - begin);
    const std::size_t first = line.find_first_not_of(" \t");
    if (first != std::string::npos && line[first] == '[') {
      const std::size_t close = line.find(']', first);
      if (close != std::string::npos) {
        const std::string name = line.substr(first + 1, close - first - 1);
        const std::size_t a = name.find_first_not_of(" \t"), b = name.find_last_not_of(" \t");
        in_section = a != std::string::npos && name.substr(a, b - a + 1) == section;
      }
    }
    (in_section ? inside : outside) += line;
    begin = end;
  }
  return {inside, outside};
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(3, word.size() / 2) + 1;
  for (const auto& candidate : candidates) {
    const std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

Config Config::resolve(const std::string& section, const std::vector<ConfigKey>& keys,
                       const std::string& ini_text, const std::string& ini_path,
                       const std::vector<std::pair<std::string, std::string>>& overrides) {
  Config config;
  config.section_ = section;
  std::vector<std::string> qualified_names;
  po::options_description description;
  for (const auto& key : keys) {
    const std::string qualified = section + "." + key.name;
    qualified_names.push_back(qualified);
    description.add_options()(qualified.c_str(), po::value<std::string>(), key.help.c_str());
    config.affects_results_[key.name] = key.affects_results;
  }

  const std::string where = ini_path.empty() ? std::string() : " in " + ini_path;
  for (const auto& override_pair : overrides) {
    // Not a structured binding: C++17 lambdas cannot capture those (clang refuses; the fuzz build uses it).
    const std::string& name = override_pair.first;
    const std::string& value = override_pair.second;
    const bool known =
        std::any_of(keys.begin(), keys.end(), [&](const ConfigKey& k) { return k.name == name; });
    if (!known)
      throw UsageError(key_error("unknown option", "--" + section + "." + name, "", qualified_names));
    config.values_[name] = value;
  }

  if (!ini_text.empty()) {
    po::variables_map from_file;
    std::istringstream stream(ini_text);
    try {
      po::store(po::parse_config_file(stream, description, /*allow_unregistered=*/false), from_file);
    } catch (const po::unknown_option& e) {
      throw UsageError(key_error("unknown config key", e.get_option_name(), where, qualified_names));
    } catch (const po::multiple_occurrences& e) {
      throw UsageError("config key '" + e.get_option_name() + "' is given more than once" + where);
    } catch (const po::error& e) {
      throw UsageError(std::string("cannot parse config") + where + ": " + e.what());
    }
    for (const auto& key : keys) {
      const auto it = from_file.find(section + "." + key.name);
      if (it != from_file.end() && !config.values_.count(key.name)) {
        config.values_[key.name] = it->second.as<std::string>();
      }
    }
  }

  for (const auto& key : keys) {
    if (config.values_.count(key.name)) continue;
    if (key.required) {
      throw UsageError("missing required config key '" + section + "." + key.name + "' (" + key.help +
                       "); set it in the [" + section + "] section" + where + " or with --" + section + "." +
                       key.name + "=...");
    }
    config.values_[key.name] = key.default_value;
  }
  return config;
}

const std::string& Config::get(const std::string& key) const {
  const auto it = values_.find(key);
  if (it == values_.end())
    throw InternalError("config key '" + section_ + "." + key + "' was never declared");
  return it->second;
}

std::int64_t Config::get_int(const std::string& key, std::int64_t min_value, std::int64_t max_value) const {
  const std::string& text = get(key);
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE) {
    throw UsageError("config key '" + section_ + "." + key + "': '" + text + "' is not an integer");
  }
  if (value < min_value || value > max_value) {
    throw UsageError("config key '" + section_ + "." + key + "': " + text + " is out of range [" +
                     std::to_string(min_value) + ", " + std::to_string(max_value) + "]");
  }
  return value;
}

double Config::get_double(const std::string& key) const {
  const std::string& text = get(key);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value)) {
    throw UsageError("config key '" + section_ + "." + key + "': '" + text + "' is not a number");
  }
  return value;
}

bool Config::get_bool(const std::string& key) const {
  std::string text = get(key);
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  throw UsageError("config key '" + section_ + "." + key + "': '" + get(key) +
                   "' is not a boolean (true/false)");
}

std::vector<std::string> Config::get_list(const std::string& key) const {
  // Items are separated by commas or white space; "double quotes" keep both inside an item (a file name
  // with a space or a comma).
  std::vector<std::string> items;
  std::string current;
  bool quoted = false, had_quotes = false;
  for (const char c : get(key)) {
    if (c == '"') {
      quoted = !quoted;
      had_quotes = true;
    } else if (!quoted && (c == ',' || std::isspace(static_cast<unsigned char>(c)))) {
      if (!current.empty() || had_quotes) items.push_back(current);
      current.clear();
      had_quotes = false;
    } else {
      current.push_back(c);
    }
  }
  if (quoted) {
    throw UsageError("config key '" + section_ + "." + key + "': a double quote is not closed in '" +
                     get(key) + "'");
  }
  if (!current.empty() || had_quotes) items.push_back(current);
  return items;
}

namespace {
// Parses a whole string as an integer / finite double; false when anything is left over.
bool parse_int(const std::string& text, std::int64_t& value) {
  errno = 0;
  char* end = nullptr;
  const long long parsed = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE) return false;
  value = parsed;
  return true;
}
bool parse_double(const std::string& text, double& value) {
  char* end = nullptr;
  const double parsed = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(parsed)) return false;
  value = parsed;
  return true;
}
}  // namespace

std::uint64_t Config::get_bytes(const std::string& key, std::uint64_t min_value,
                                std::uint64_t max_value) const {
  const std::string& original = get(key);
  const std::string name = "config key '" + section_ + "." + key + "': ";
  std::string text = original;
  // Optional "B" or "iB" after the unit letter ("8MB", "8MiB"); a bare "B" means bytes.
  if (text.size() >= 2 && (text.back() == 'B' || text.back() == 'b')) {
    text.pop_back();
    if (!text.empty() && (text.back() == 'i' || text.back() == 'I')) text.pop_back();
  }
  std::uint64_t scale = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'k':
      case 'K':
        scale = std::uint64_t{1} << 10;
        break;
      case 'm':
      case 'M':
        scale = std::uint64_t{1} << 20;
        break;
      case 'g':
      case 'G':
        scale = std::uint64_t{1} << 30;
        break;
      case 't':
      case 'T':
        scale = std::uint64_t{1} << 40;
        break;
      default:
        break;
    }
    if (scale != 1) text.pop_back();
  }
  const bool digits =
      !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
  errno = 0;
  char* end = nullptr;
  const unsigned long long value = digits ? std::strtoull(text.c_str(), &end, 10) : 0;
  if (!digits || errno == ERANGE || value > std::numeric_limits<std::uint64_t>::max() / scale) {
    throw UsageError(name + "'" + original + "' is not a byte size such as 65536, 64k, 8M or 1G");
  }
  const std::uint64_t bytes = value * scale;
  if (bytes < min_value || bytes > max_value) {
    throw UsageError(name + original + " (" + std::to_string(bytes) + " bytes) is out of range [" +
                     std::to_string(min_value) + ", " + std::to_string(max_value) + "] bytes");
  }
  return bytes;
}

std::vector<std::int64_t> Config::get_int_list(const std::string& key, std::int64_t min_value,
                                               std::int64_t max_value) const {
  std::vector<std::int64_t> values;
  for (const auto& item : get_list(key)) {
    std::int64_t value = 0;
    if (!parse_int(item, value)) {
      throw UsageError("config key '" + section_ + "." + key + "': '" + item + "' in '" + get(key) +
                       "' is not an integer (expected a list such as 1,2,3)");
    }
    if (value < min_value || value > max_value) {
      throw UsageError("config key '" + section_ + "." + key + "': " + item + " is out of range [" +
                       std::to_string(min_value) + ", " + std::to_string(max_value) + "]");
    }
    values.push_back(value);
  }
  return values;
}

std::vector<double> Config::get_double_list(const std::string& key) const {
  std::vector<double> values;
  for (const auto& item : get_list(key)) {
    double value = 0.0;
    if (!parse_double(item, value)) {
      throw UsageError("config key '" + section_ + "." + key + "': '" + item + "' in '" + get(key) +
                       "' is not a number (expected a list such as 0.5,1,2e-3)");
    }
    values.push_back(value);
  }
  return values;
}

std::array<std::int64_t, 3> Config::get_int_triple(const std::string& key, std::int64_t min_value,
                                                   std::int64_t max_value) const {
  std::string text = get(key);
  std::replace(text.begin(), text.end(), 'x', ',');
  std::replace(text.begin(), text.end(), 'X', ',');
  std::vector<std::string> items;
  std::string current;
  for (const char c : text) {
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      if (!current.empty()) items.push_back(current);
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  if (!current.empty()) items.push_back(current);
  const std::string name = "config key '" + section_ + "." + key + "': ";
  if (items.size() != 1 && items.size() != 3) {
    throw UsageError(name + "'" + get(key) +
                     "' is not three integers such as 64,64,32 (or one, such as 128)");
  }
  std::array<std::int64_t, 3> values{};
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!parse_int(items[i], values[i])) {
      throw UsageError(name + "'" + items[i] + "' in '" + get(key) + "' is not an integer");
    }
    if (values[i] < min_value || values[i] > max_value) {
      throw UsageError(name + items[i] + " is out of range [" + std::to_string(min_value) + ", " +
                       std::to_string(max_value) + "]");
    }
  }
  if (items.size() == 1) values[1] = values[2] = values[0];
  return values;
}

const std::string& Config::get_choice(const std::string& key, const std::vector<std::string>& choices) const {
  const std::string& value = get(key);
  if (std::find(choices.begin(), choices.end(), value) != choices.end()) return value;
  std::string allowed;
  for (const auto& choice : choices) allowed += (allowed.empty() ? "" : "|") + choice;
  throw UsageError("config key '" + section_ + "." + key + "': '" + value + "' is not one of " + allowed);
}

std::string Config::to_ini() const {
  std::string text = "[" + section_ + "]\n";
  for (const auto& [key, value] : values_) text += key + " = " + value + "\n";
  return text;
}

std::uint64_t Config::results_hash() const {
  std::uint64_t hash = 1469598103934665603ull;
  auto mix = [&hash](const std::string& s) {
    for (const unsigned char c : s) hash = (hash ^ c) * 1099511628211ull;
    hash = (hash ^ 0xff) * 1099511628211ull;
  };
  mix(section_);
  for (const auto& [key, value] : values_) {
    const auto it = affects_results_.find(key);
    if (it != affects_results_.end() && !it->second) continue;
    mix(key);
    mix(value);
  }
  return hash;
}

}  // namespace skein::engine
