// Counter-based random streams: reproducible, keyed only by (seed, stream, id), and statistically sound.
#include "engine/random.hpp"

#include <gtest/gtest.h>

#include <cmath>

using namespace skein::engine;

namespace {
// A job's streams, as a job declares them (dsir's numbering).
enum class TestStream : std::uint32_t { gumbel = 1, baseline = 2, subsample = 3 };
}  // namespace

TEST(Random, Philox4x32MatchesKnownAnswer) {
  // Random123's kat_vectors: philox4x32 10 rounds, counter = key = 0.
  const Philox4x32 zero = philox4x32_10(Philox4x32{{0, 0, 0, 0}}, 0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
  // counter = key = all ones.
  const Philox4x32 ones = philox4x32_10(Philox4x32{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
                                        0xffffffffu, 0xffffffffu);
  EXPECT_EQ(ones.v[0], 0x408f276du);
  EXPECT_EQ(ones.v[1], 0x41c83b0eu);
  EXPECT_EQ(ones.v[2], 0xa20bc7c6u);
  EXPECT_EQ(ones.v[3], 0x6d5451fdu);
}

TEST(Random, SameKeySameNumberDifferentKeysDiffer) {
  EXPECT_EQ(random_bits(7, TestStream::gumbel, 123), random_bits(7, TestStream::gumbel, 123));
  EXPECT_NE(random_bits(7, TestStream::gumbel, 123), random_bits(8, TestStream::gumbel, 123));
  EXPECT_NE(random_bits(7, TestStream::gumbel, 123), random_bits(7, TestStream::baseline, 123));
  EXPECT_NE(random_bits(7, TestStream::gumbel, 123), random_bits(7, TestStream::gumbel, 124));
}

TEST(Random, UniformAndGumbelMoments) {
  const int n = 200000;
  double sum_u = 0, sum_g = 0, sum_g2 = 0;
  for (int i = 0; i < n; ++i) {
    const double u = uniform_open01(42, TestStream::baseline, i);
    ASSERT_GT(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum_u += u;
    const double g = gumbel(42, TestStream::gumbel, i);
    sum_g += g;
    sum_g2 += g * g;
  }
  const double euler_gamma = 0.5772156649015329;
  const double mean_g = sum_g / n;
  EXPECT_NEAR(sum_u / n, 0.5, 0.003);
  EXPECT_NEAR(mean_g, euler_gamma, 0.01);
  EXPECT_NEAR(sum_g2 / n - mean_g * mean_g, M_PI * M_PI / 6, 0.03);
}

TEST(Random, StreamIdsKeepTheNumbersJobsAlreadyPublished) {
  // Values from before streams became job-owned (engine::Stream::gumbel = 1, ...): dsir's outputs must not
  // change, so an enum and a plain number with the same value give the same draw.
  EXPECT_EQ(random_bits(7, TestStream::gumbel, 123), 14648382206212439314ull);
  EXPECT_EQ(random_bits(7, 1u, 123), 14648382206212439314ull);
  EXPECT_DOUBLE_EQ(uniform_open01(42, TestStream::baseline, 5), 0.61211712364044835);
  EXPECT_DOUBLE_EQ(gumbel(9, TestStream::subsample, 1ull << 40), 0.79208170397190347);
}

TEST(Random, StandardNormalMoments) {
  const int n = 100000;
  double sum = 0, sum2 = 0, sum3 = 0, sum4 = 0, lag = 0, previous = 0;
  int within_one = 0;
  for (int i = 0; i < n; ++i) {
    const double z = standard_normal(2024, 5u, i);
    ASSERT_TRUE(std::isfinite(z));
    sum += z;
    sum2 += z * z;
    sum3 += z * z * z;
    sum4 += z * z * z * z;
    lag += z * previous;
    previous = z;
    within_one += std::abs(z) < 1.0;
  }
  // Standard errors at n = 1e5: mean 0.0032, variance 0.0045, skewness 0.0077, kurtosis 0.031; 5 sigma.
  const double mean = sum / n, variance = sum2 / n - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.016);
  EXPECT_NEAR(variance, 1.0, 0.023);
  EXPECT_NEAR(sum3 / n, 0.0, 0.04);
  EXPECT_NEAR(sum4 / n, 3.0, 0.16);
  EXPECT_NEAR(lag / n, 0.0, 0.016);                                       // neighbouring ids are uncorrelated
  EXPECT_NEAR(static_cast<double>(within_one) / n, 0.682689492, 0.0074);  // P(|Z| < 1), 5 sigma
  EXPECT_NE(standard_normal(2024, 5u, 0), standard_normal(2024, 6u, 0));
}

TEST(Random, RademacherIsBalancedAndUncorrelated) {
  const int n = 100000;
  double sum = 0, lag = 0, previous = 0;
  for (int i = 0; i < n; ++i) {
    const double s = rademacher(11, 3u, i);
    ASSERT_TRUE(s == 1.0 || s == -1.0);
    sum += s;
    lag += s * previous;
    previous = s;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.016);  // 5 standard errors
  EXPECT_NEAR(lag / n, 0.0, 0.016);
}
