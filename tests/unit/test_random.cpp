// Counter-based random streams: reproducible, keyed only by (seed, stream, id), and statistically sound.
#include "engine/random.hpp"

#include <gtest/gtest.h>

#include <cmath>

using namespace skein::engine;

TEST(Random, Philox4x32MatchesKnownAnswer) {
  // Random123's kat_vectors: philox4x32 10 rounds, counter = key = 0.
  const Philox4x32 zero = philox4x32_10(Philox4x32{{0, 0, 0, 0}}, 0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
  // counter = key = all ones.
  const Philox4x32 ones =
      philox4x32_10(Philox4x32{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  EXPECT_EQ(ones.v[0], 0x408f276du);
  EXPECT_EQ(ones.v[1], 0x41c83b0eu);
  EXPECT_EQ(ones.v[2], 0xa20bc7c6u);
  EXPECT_EQ(ones.v[3], 0x6d5451fdu);
}

TEST(Random, SameKeySameNumberDifferentKeysDiffer) {
  EXPECT_EQ(random_bits(7, Stream::gumbel, 123), random_bits(7, Stream::gumbel, 123));
  EXPECT_NE(random_bits(7, Stream::gumbel, 123), random_bits(8, Stream::gumbel, 123));
  EXPECT_NE(random_bits(7, Stream::gumbel, 123), random_bits(7, Stream::baseline, 123));
  EXPECT_NE(random_bits(7, Stream::gumbel, 123), random_bits(7, Stream::gumbel, 124));
}

TEST(Random, UniformAndGumbelMoments) {
  const int n = 200000;
  double sum_u = 0, sum_g = 0, sum_g2 = 0;
  for (int i = 0; i < n; ++i) {
    const double u = uniform_open01(42, Stream::baseline, i);
    ASSERT_GT(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum_u += u;
    const double g = gumbel(42, Stream::gumbel, i);
    sum_g += g;
    sum_g2 += g * g;
  }
  const double euler_gamma = 0.5772156649015329;
  const double mean_g = sum_g / n;
  EXPECT_NEAR(sum_u / n, 0.5, 0.003);
  EXPECT_NEAR(mean_g, euler_gamma, 0.01);
  EXPECT_NEAR(sum_g2 / n - mean_g * mean_g, M_PI * M_PI / 6, 0.03);
}
