// Small valid inputs of every job, written under a case's folder, with a hook to leave out or replace any
// part: a bad case is a good input with one thing wrong. Each returns the `skein run` arguments (job and
// options) that read it.
#pragma once

#include "tests/bad_inputs/catalogue.hpp"
#include "tests/bad_inputs/make_files.hpp"

#include <functional>
#include <set>
#include <string>
#include <vector>

namespace skein::bad_inputs {

// What to change in a good HDF5 file: the named datasets/attributes ("W1", "activation", "/rhs") are not
// written, and `add` writes replacements (or more).
struct H5Change {
  std::set<std::string> omit;
  std::function<void(H5File&)> add;
};

// dsir: IN/target.jsonl (40 documents) and IN/raw.jsonl (200), num_select 5, 4 KiB pieces (several steps
// per pass, so a checkpoint can be taken between them).
std::vector<std::string> dsir_good(Workspace& ws);
std::string dsir_document(int i);  // one JSONL line (with its newline)

// poisson problem=file: IN/problem.h5, 6x6x6, one air cell, CG to 1e-10 (a few dozen steps).
std::vector<std::string> poisson_good(Workspace& ws, const H5Change& change = {});
constexpr int kPoissonN = 6;
std::vector<double> poisson_cells();  // fluid everywhere but cell 0 (air)
std::vector<double> poisson_rhs();

// hessian: IN/model.h5 (4-6-3 tanh MLP, cross-entropy) and IN/data.h5 (30 x 4 /X, int64 labels /y).
std::vector<std::string> hessian_good(Workspace& ws, const H5Change& model = {}, const H5Change& data = {});
std::vector<double> hessian_x();  // 30 x 4
std::vector<double> hessian_labels();

// cca: IN/geno.bed/.bim/.fam (40 samples x 12 SNPs) and IN/y.h5 (/Y 40 x 3, /sample_id s0..s39), PLS with
// 2 components, batches of 10, 2 epochs.
std::vector<std::string> cca_good(Workspace& ws, const H5Change& y = {});
constexpr int kCcaSamples = 40, kCcaSnps = 12, kCcaFeatures = 3;
std::vector<double> cca_y();
std::vector<std::string> cca_sample_ids(int n);

// `args` with the option `--NAME=...` replaced by (or, if absent, extended with) `option`.
std::vector<std::string> with(std::vector<std::string> args, const std::string& option);

}  // namespace skein::bad_inputs
