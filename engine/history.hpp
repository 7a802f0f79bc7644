// A job's per-step history: named columns of doubles (e.g. "residual", "seconds") appended as it runs,
// carried through checkpoints, and written by the job to /history/NAME of its output.
#pragma once

#include "engine/state.hpp"

#include <string>
#include <utility>
#include <vector>

namespace skein::engine {

// The values are the same on every rank (the job appends globally reduced scalars), so they are saved as
// replicated arrays. Columns are declared up front: a checkpoint cannot list its datasets, so restore()
// reads the declared names, and an unknown name in append() is a bug caught at once.
class History {
 public:
  History() = default;
  explicit History(const std::vector<std::string>& columns);

  // Declares another column (no-op when it exists).
  void add_column(const std::string& name);
  void append(const std::string& column, double value);
  const std::vector<double>& column(const std::string& name) const;
  bool has_column(const std::string& name) const;
  // Columns in declaration order, as (name, values).
  const std::vector<std::pair<std::string, std::vector<double>>>& columns() const { return columns_; }
  // Empties every column, keeping the names (a job restarting its count from zero).
  void clear();

  // Saves each column as the replicated array PREFIX.NAME; restore() reads them back (collective, like
  // StateWriter / StateReader). Restoring replaces every declared column's values.
  void save(StateWriter& writer, const std::string& prefix = "history") const;
  void restore(StateReader& reader, const std::string& prefix = "history");

 private:
  std::vector<double>& mutable_column(const std::string& name);
  std::vector<std::pair<std::string, std::vector<double>>> columns_;
};

}  // namespace skein::engine
