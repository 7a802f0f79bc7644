#include "comm/exact_sum.hpp"

#include "comm/communicator.hpp"
#include "engine/watchdog.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace skein::comm {

namespace {

using ExactUnsigned = unsigned __int128;

// MPI's user op: inout[i] += in[i] on 16-byte elements. memcpy, since MPI guarantees no 16-byte alignment.
void add_exact(void* in, void* inout, int* length, MPI_Datatype*) {
  auto* a = static_cast<const unsigned char*>(in);
  auto* b = static_cast<unsigned char*>(inout);
  for (int i = 0; i < *length; ++i) {
    ExactInt x, y;
    std::memcpy(&x, a + 16 * i, 16);
    std::memcpy(&y, b + 16 * i, 16);
    // As unsigned: wrap-around is defined, and the bound on the terms keeps the true sum in range.
    const ExactInt sum = static_cast<ExactInt>(static_cast<ExactUnsigned>(x) + static_cast<ExactUnsigned>(y));
    std::memcpy(b + 16 * i, &sum, 16);
  }
}

// The 16-byte datatype and the op, made once per process (a CG iteration reduces twice, and creating them
// per call cost a measurable share of a small solve) and freed by MPI_Finalize itself: an attribute on
// MPI_COMM_SELF whose delete callback MPI runs first thing in MPI_Finalize, so nothing is left for a leak
// checker and nothing is freed after MPI is gone.
struct ExactSumOp {
  MPI_Datatype type = MPI_DATATYPE_NULL;
  MPI_Op op = MPI_OP_NULL;
};

int free_exact_sum_op(MPI_Comm, int, void* attribute, void*) {
  auto* handles = static_cast<ExactSumOp*>(attribute);
  MPI_Op_free(&handles->op);
  MPI_Type_free(&handles->type);
  handles->op = MPI_OP_NULL;
  handles->type = MPI_DATATYPE_NULL;
  return MPI_SUCCESS;
}

const ExactSumOp& exact_sum_op() {
  static ExactSumOp handles;
  if (handles.op == MPI_OP_NULL) {
    detail::check("MPI_Type_contiguous", MPI_Type_contiguous(16, MPI_BYTE, &handles.type));
    detail::check("MPI_Type_commit", MPI_Type_commit(&handles.type));
    detail::check("MPI_Op_create", MPI_Op_create(&add_exact, /*commute=*/1, &handles.op));
    int key = MPI_KEYVAL_INVALID;
    detail::check("MPI_Comm_create_keyval",
                  MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, &free_exact_sum_op, &key, nullptr));
    detail::check("MPI_Comm_set_attr", MPI_Comm_set_attr(MPI_COMM_SELF, key, &handles));
    detail::check("MPI_Comm_free_keyval", MPI_Comm_free_keyval(&key));
  }
  return handles;
}

}  // namespace

double from_exact(ExactInt sum, const ExactScale& scale) {
  if (scale.zero) return 0.0;
  if (scale.nonfinite) {
    const ExactInt mask = (ExactInt(1) << kExactTermsLog2) - 1;
    const bool nan = (sum & mask) != 0;
    const bool positive = ((sum >> kExactTermsLog2) & mask) != 0;
    const bool negative = (sum >> (2 * kExactTermsLog2)) != 0;
    if (nan || (positive && negative)) return std::numeric_limits<double>::quiet_NaN();
    return positive ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
  }
  const bool negative = sum < 0;
  ExactUnsigned magnitude =
      negative ? ExactUnsigned(0) - static_cast<ExactUnsigned>(sum) : static_cast<ExactUnsigned>(sum);
  // Round the integer to 53 significant bits (nearest, ties to even) by hand: the conversion is then one
  // exact integer-to-double step and one ldexp, the same everywhere.
  const auto high = static_cast<std::uint64_t>(magnitude >> 64), low = static_cast<std::uint64_t>(magnitude);
  const int length = high != 0 ? 128 - __builtin_clzll(high) : (low != 0 ? 64 - __builtin_clzll(low) : 0);
  int dropped = length > 53 ? length - 53 : 0;
  if (dropped > 0) {
    const ExactUnsigned rest = magnitude & ((ExactUnsigned(1) << dropped) - 1);
    const ExactUnsigned half = ExactUnsigned(1) << (dropped - 1);
    magnitude >>= dropped;
    if (rest > half || (rest == half && (magnitude & 1) != 0)) ++magnitude;  // 2^53 at most: still exact
  }
  const double value =
      std::ldexp(static_cast<double>(static_cast<std::uint64_t>(magnitude)), dropped - scale.shift);
  return negative ? -value : value;
}

void exact_allreduce(const Communicator& comm, ExactInt* data, std::size_t count) {
  if (count == 0) return;
  const ExactSumOp& op = exact_sum_op();
  const engine::BlockingScope blocking("MPI_Allreduce");
  for (std::size_t done = 0; done < count;) {
    const std::size_t n = std::min<std::size_t>(count - done, std::size_t(1) << 26);  // int counts
    detail::check("MPI_Allreduce", MPI_Allreduce(MPI_IN_PLACE, data + done, static_cast<int>(n), op.type,
                                                 op.op, comm.native()));
    done += n;
  }
}

void exact_agree_scales(const Communicator& comm, std::size_t count, double* max_magnitude,
                        ExactScale* scales) {
  for (std::size_t c = 0; c < count; ++c)  // a max over no terms may come as -DBL_MAX (Kokkos' Max init)
    max_magnitude[c] = std::max(max_magnitude[c], 0.0);
  comm.allreduce_inplace(max_magnitude, count, Op::max);
  for (std::size_t c = 0; c < count; ++c) scales[c] = exact_scale(max_magnitude[c]);
}

void exact_finish(const Communicator& comm, std::size_t count, ExactInt* local_sums, const ExactScale* scales,
                  double* result) {
  exact_allreduce(comm, local_sums, count);
  for (std::size_t c = 0; c < count; ++c) result[c] = from_exact(local_sums[c], scales[c]);
}

void exact_sum_columns(const Communicator& comm, std::size_t length, std::size_t local_terms,
                       const double* terms, double* result) {
  std::vector<double> max_magnitude(length, 0.0);
  for (std::size_t r = 0; r < local_terms; ++r)
    for (std::size_t c = 0; c < length; ++c)
      max_magnitude[c] = std::max(max_magnitude[c], exact_magnitude(terms[r * length + c]));
  std::vector<ExactScale> scales(length);
  exact_agree_scales(comm, length, max_magnitude.data(), scales.data());
  std::vector<ExactInt> sums(length, 0);
  for (std::size_t r = 0; r < local_terms; ++r)
    for (std::size_t c = 0; c < length; ++c) sums[c] += to_exact(terms[r * length + c], scales[c]);
  exact_finish(comm, length, sums.data(), scales.data(), result);
}

double exact_sum(const Communicator& comm, const double* terms, std::size_t local_terms) {
  double result = 0.0;
  exact_sum_columns(comm, 1, local_terms, terms, &result);
  return result;
}

}  // namespace skein::comm
