// skein-test-ranks: 1 2 3
// comm/exact_sum.hpp: the same bits for any order and any split of the terms over 1, 2 or 3 ranks, accuracy
// against a compensated long-double sum, and zeros, subnormals, cancellation, infinities and NaN.
#include "comm/exact_sum.hpp"

#include "comm/cartesian.hpp"
#include "comm/communicator.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

using skein::comm::Communicator;

namespace {

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// Terms over 40 binades, both signs, some cancelling: an ordinary sum of these depends on the order.
std::vector<double> wide_terms(std::size_t n, unsigned seed) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  std::uniform_int_distribution<int> binade(-20, 20);
  std::vector<double> terms(n);
  for (auto& t : terms) t = std::ldexp(unit(engine), binade(engine));
  terms[3] = 1e6;
  terms[7] = -1e6;
  return terms;
}

// Compensated (Neumaier) sum in long double: ~2^-128 relative, the accuracy reference.
long double reference_sum(const std::vector<double>& terms) {
  long double sum = 0, compensation = 0;
  for (const double t : terms) {
    const long double next = sum + t;
    compensation +=
        std::fabs(sum) >= std::fabs(static_cast<long double>(t)) ? (sum - next) + t : (t - next) + sum;
    sum = next;
  }
  return sum + compensation;
}

// This rank's terms under one of several splits of `all` over the ranks, in a shuffled local order.
std::vector<double> my_share(const std::vector<double>& all, const Communicator& comm, int split) {
  const std::size_t n = all.size(), p = static_cast<std::size_t>(comm.size()),
                    r = static_cast<std::size_t>(comm.rank());
  std::vector<double> mine;
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t owner = 0;
    if (split == 0)
      owner = i * p / n;  // contiguous blocks
    else if (split == 1)
      owner = i % p;  // round robin
    else
      owner = (i * 7919 + 13) % n < n / 5 ? 0 : (p - 1);  // uneven: the last rank holds 80%
    if (owner == r) mine.push_back(all[i]);
  }
  std::shuffle(mine.begin(), mine.end(), std::mt19937_64(1000 + r + static_cast<std::size_t>(split)));
  return mine;
}

}  // namespace

TEST(ExactSum, SameBitsForAnySplitAndOrder) {
  Communicator comm(MPI_COMM_WORLD);
  const Communicator self = comm.split(comm.rank(), 0);  // every rank alone: the 1-rank reference
  const auto all = wide_terms(5000, 42);
  const double alone = skein::comm::exact_sum(self, all.data(), all.size());
  auto reversed = all;
  std::reverse(reversed.begin(), reversed.end());
  EXPECT_TRUE(same_bits(skein::comm::exact_sum(self, reversed.data(), reversed.size()), alone));
  for (int split = 0; split < 3; ++split) {
    const auto mine = my_share(all, comm, split);
    const double sum = skein::comm::exact_sum(comm, mine.data(), mine.size());
    EXPECT_TRUE(same_bits(sum, alone)) << "split " << split << ": " << sum << " vs " << alone;
  }
  // Accuracy: the exact sum rounded once, so within an ulp-scale of the compensated reference (each term
  // is truncated by at most 2^-83 of the largest, here 1e6).
  const long double reference = reference_sum(all);
  EXPECT_LE(
      std::fabs(static_cast<long double>(alone) - reference),
      std::fabs(reference) * std::numeric_limits<double>::epsilon() + 5000 * 1e6 * std::ldexp(1.0, -82));
  // The ordinary double sum does depend on the order here (the reason this exists).
  double forward = 0, backward = 0;
  for (const double t : all) forward += t;
  for (const double t : reversed) backward += t;
  EXPECT_FALSE(same_bits(forward, backward));
}

TEST(ExactSum, CancellationIsExact) {
  Communicator comm(MPI_COMM_WORLD);
  // 1e16 + 1 - 1e16 is 0 or 1 in doubles depending on the order; exactly 1 here, however split.
  std::vector<double> mine;
  const double terms[3] = {1e16, 1.0, -1e16};
  for (int i = 0; i < 3; ++i)
    if (i % comm.size() == comm.rank()) mine.push_back(terms[i]);
  EXPECT_EQ(skein::comm::exact_sum(comm, mine.data(), mine.size()), 1.0);
}

TEST(ExactSum, ZerosSubnormalsAndRoundTrip) {
  Communicator comm(MPI_COMM_WORLD);
  const std::vector<double> zeros(comm.rank() + 1, 0.0), negative_zeros(2, -0.0);
  EXPECT_TRUE(same_bits(skein::comm::exact_sum(comm, zeros.data(), zeros.size()), 0.0));
  EXPECT_TRUE(same_bits(skein::comm::exact_sum(comm, negative_zeros.data(), 2), 0.0));
  EXPECT_TRUE(same_bits(skein::comm::exact_sum(comm, nullptr, 0), 0.0));  // no terms anywhere
  // Subnormals sum exactly: p ranks x 3 x the smallest subnormal.
  const double tiny = std::numeric_limits<double>::denorm_min();
  const std::vector<double> subnormals(3, tiny);
  EXPECT_EQ(skein::comm::exact_sum(comm, subnormals.data(), 3), 3.0 * comm.size() * tiny);
  const std::vector<double> mixed = {std::numeric_limits<double>::min() / 3, -tiny};
  EXPECT_EQ(skein::comm::exact_sum(comm, mixed.data(), 2),
            comm.size() * (std::numeric_limits<double>::min() / 3 - tiny));
  // A single term (the largest) comes back exactly, whatever its magnitude and sign.
  for (const double t : {1.0, -3.0e-300, 1.7976931348623157e308, 0.1, -tiny, 123456789.123}) {
    const double one[1] = {comm.rank() == 0 ? t : 0.0};
    EXPECT_TRUE(same_bits(skein::comm::exact_sum(comm, one, 1), t)) << t;
  }
  // Largest doubles: the sum overflows to inf the same way on every rank count.
  const double big[2] = {1.7976931348623157e308, 1.7976931348623157e308};
  EXPECT_EQ(skein::comm::exact_sum(comm, big, 2), std::numeric_limits<double>::infinity());
}

TEST(ExactSum, NonFiniteTermsGiveNanOrInfOnEveryRank) {
  Communicator comm(MPI_COMM_WORLD);
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  const int last = comm.size() - 1;
  const double pos[2] = {1.0, comm.rank() == last ? inf : 2.0};
  EXPECT_EQ(skein::comm::exact_sum(comm, pos, 2), inf);
  const double neg[2] = {comm.rank() == 0 ? -inf : 1.0, 5.0};
  EXPECT_EQ(skein::comm::exact_sum(comm, neg, 2), -inf);
  const double both[2] = {comm.rank() == 0 ? -inf : 1.0, comm.rank() == last ? inf : 1.0};
  EXPECT_TRUE(std::isnan(skein::comm::exact_sum(comm, both, 2)));
  const double with_nan[2] = {comm.rank() == last ? nan : 1.0, inf};
  EXPECT_TRUE(std::isnan(skein::comm::exact_sum(comm, with_nan, 2)));
}

TEST(ExactSum, ColumnsHaveTheirOwnScale) {
  Communicator comm(MPI_COMM_WORLD);
  const Communicator self = comm.split(comm.rank(), 0);
  // Three columns whose magnitudes differ by 1e200: one shared scale would flush the small ones to zero.
  const std::size_t rows = 600, length = 3;
  const auto base = wide_terms(rows * length, 7);
  std::vector<double> all(base);
  for (std::size_t r = 0; r < rows; ++r) {
    all[r * length + 1] *= 1e-200;
    all[r * length + 2] *= 1e100;
  }
  double alone[3], split[3];
  skein::comm::exact_sum_columns(self, length, rows, all.data(), alone);
  const std::size_t p = static_cast<std::size_t>(comm.size()), me = static_cast<std::size_t>(comm.rank());
  const std::size_t begin = me * rows / p, end = (me + 1) * rows / p;
  skein::comm::exact_sum_columns(comm, length, end - begin, all.data() + begin * length, split);
  for (std::size_t c = 0; c < length; ++c) {
    EXPECT_TRUE(same_bits(split[c], alone[c])) << "column " << c;
    std::vector<double> column(rows);
    double largest = 0;
    for (std::size_t r = 0; r < rows; ++r) {
      column[r] = all[r * length + c];
      largest = std::max(largest, std::fabs(column[r]));
    }
    const long double reference = reference_sum(column);
    EXPECT_LE(
        std::fabs(static_cast<long double>(alone[c]) - reference),
        std::fabs(reference) * std::numeric_limits<double>::epsilon() + rows * largest * std::ldexp(1.0, -82))
        << "column " << c;
  }
}

// The fast path of to_exact (floating-point split by a power of two) and the bit path agree term by term,
// over the whole exponent range of scales and terms.
TEST(ExactSum, FastPathEqualsBitPath) {
  std::mt19937_64 engine(3);
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  int fast_scales = 0;
  for (const int top : {-1000, -300, -40, -1, 0, 1, 30, 300, 1000}) {
    const skein::comm::ExactScale fast = skein::comm::exact_scale(std::ldexp(0.75, top));
    skein::comm::ExactScale bits = fast;
    bits.factor = 0;
    fast_scales += fast.factor != 0;
    for (int i = 0; i < 2000; ++i) {
      const double t = std::ldexp(unit(engine), top - (i % 120));
      ASSERT_TRUE(skein::comm::to_exact(t, fast) == skein::comm::to_exact(t, bits)) << t << " at 2^" << top;
    }
  }
  EXPECT_GE(fast_scales, 8);
}

// comm.reproducible reaches the communicators that solvers use: splits and Cartesian decompositions keep it.
TEST(ExactSum, SplitAndCartesianCommunicatorsKeepTheSetting) {
  Communicator comm(MPI_COMM_WORLD);
  EXPECT_FALSE(comm.exact_sums());
  comm.set_exact_sums(true);
  EXPECT_TRUE(comm.split(0, comm.rank()).exact_sums());
  const skein::comm::CartDecomposition decomposition(comm, {6, 5, 4});
  EXPECT_TRUE(decomposition.comm().exact_sums());
}
