#include "engine/history.hpp"

#include "engine/error.hpp"

#include <algorithm>

namespace skein::engine {

History::History(const std::vector<std::string>& columns) {
  for (const auto& name : columns) add_column(name);
}

void History::add_column(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos)
    throw InternalError("history column name '" + name + "' must be non-empty and contain no '/'");
  if (!has_column(name)) columns_.emplace_back(name, std::vector<double>{});
}

bool History::has_column(const std::string& name) const {
  return std::any_of(columns_.begin(), columns_.end(), [&](const auto& c) { return c.first == name; });
}

std::vector<double>& History::mutable_column(const std::string& name) {
  for (auto& c : columns_)
    if (c.first == name) return c.second;
  throw InternalError("history has no column '" + name + "'; declare it first");
}

const std::vector<double>& History::column(const std::string& name) const {
  return const_cast<History*>(this)->mutable_column(name);
}

void History::append(const std::string& column, double value) {
  mutable_column(column).push_back(value);
}

void History::clear() {
  for (auto& c : columns_) c.second.clear();
}

void History::save(StateWriter& writer, const std::string& prefix) const {
  for (const auto& [name, values] : columns_) writer.replicated(prefix + "." + name, values);
}

void History::restore(StateReader& reader, const std::string& prefix) {
  for (auto& [name, values] : columns_) values = reader.replicated_double(prefix + "." + name);
}

}  // namespace skein::engine
