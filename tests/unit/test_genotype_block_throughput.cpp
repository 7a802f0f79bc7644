// Throughput of GenotypeFeatureBlock at the UK-Biobank shape per rank (n = 33,333 samples, 20,000 SNPs,
// minibatch 500, k = 10; full_cross with q = 82). A measurement, not a test: DISABLED_ so ctest skips it;
// run it with --gtest_also_run_disabled_tests. The one enabled test checks the set-up it measures.
#include "engine/random.hpp"
#include "solvers/genotype_block.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace {

using skein::solvers::GenotypeFeatureBlock;
template <class Scalar>
using Matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight>;

class KokkosEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (!Kokkos::is_initialized()) Kokkos::initialize();
  }
  void TearDown() override {
    if (Kokkos::is_initialized()) Kokkos::finalize();
  }
};
const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new KokkosEnvironment);

std::int64_t env_or(const char* name, std::int64_t fallback) {
  const char* value = std::getenv(name);
  return value ? std::atoll(value) : fallback;
}

Kokkos::View<std::uint8_t**, Kokkos::LayoutRight> random_packed(std::int64_t snps, std::int64_t samples) {
  Kokkos::View<std::uint8_t**, Kokkos::LayoutRight> packed("packed", snps, (samples + 3) / 4);
  auto host = Kokkos::create_mirror_view(packed);
  for (std::int64_t j = 0; j < snps; ++j)
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(packed.extent(1)); ++i)
      host(j, i) = static_cast<std::uint8_t>(
          skein::engine::random_bits(5, 1, static_cast<std::uint64_t>(j) * packed.extent(1) + i) & 0xffu);
  Kokkos::deep_copy(packed, host);
  return packed;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// This process's CPU seconds: on a shared machine the wall clock also counts other processes' turns.
double cpu_seconds() {
  return static_cast<double>(std::clock()) / CLOCKS_PER_SEC;
}

template <class Scalar>
void measure(const char* name) {
  const std::int64_t n = env_or("SKEIN_BENCH_SAMPLES", 33333), p = env_or("SKEIN_BENCH_SNPS", 20000);
  const std::int64_t b = env_or("SKEIN_BENCH_BATCH", 500), k = env_or("SKEIN_BENCH_K", 10), q = 82;
  const int repeats = static_cast<int>(env_or("SKEIN_BENCH_REPEATS", 10));
  const auto packed = random_packed(p, n);
  const double cpu_build = cpu_seconds();
  const auto build_start = std::chrono::steady_clock::now();
  GenotypeFeatureBlock<Scalar> block(packed, n, 0);
  std::printf("[%s] construction (statistics, tables, sample-major copy): %.3f s wall, %.3f s CPU\n", name,
              seconds_since(build_start), cpu_seconds() - cpu_build);
  Matrix<Scalar> u("u", p, k), z("z", b, k), g("g", b, k), out("out", p, k);
  Kokkos::deep_copy(u, Scalar(0.01));
  Kokkos::deep_copy(g, Scalar(0.5));
  Kokkos::View<std::int64_t*> rows("rows", b);
  auto rows_host = Kokkos::create_mirror_view(rows);
  double forward = 0, backward = 0;
  const double cpu_start = cpu_seconds();
  for (int rep = 0; rep < repeats; ++rep) {
    for (std::int64_t i = 0; i < b; ++i)
      rows_host(i) = static_cast<std::int64_t>(skein::engine::random_bits(7, 2, rep * b + i) % n);
    Kokkos::deep_copy(rows, rows_host);
    auto start = std::chrono::steady_clock::now();
    block.multiply(rows, u, z);
    forward += seconds_since(start);
    start = std::chrono::steady_clock::now();
    block.transpose_multiply(rows, g, out);
    backward += seconds_since(start);
  }
  const double cpu = cpu_seconds() - cpu_start;
  const double macs = static_cast<double>(b) * p * k * repeats;
  std::printf("[%s] process CPU time of both products: %.3f s of %.3f s wall\n", name, cpu,
              forward + backward);
  std::printf(
      "[%s] n=%lld p_local=%lld b=%lld k=%lld: multiply %.4f s/call %.2f GMAC/s; transpose_multiply "
      "%.4f s/call %.2f GMAC/s\n",
      name, (long long)n, (long long)p, (long long)b, (long long)k, forward / repeats, macs / forward / 1e9,
      backward / repeats, macs / backward / 1e9);
  // One epoch over n samples is n / b minibatches of one multiply and one transpose_multiply each.
  const double epoch = (forward + backward) / repeats * static_cast<double>(n) / static_cast<double>(b);
  std::printf(
      "[%s] one epoch over %lld x %lld at this rate: %.2f s (per 291,283 SNPs, UKBB at 2 ranks: %.1f s)\n",
      name, (long long)n, (long long)p, epoch, epoch * 291283.0 / static_cast<double>(p));
  Matrix<Scalar> y("y", n, q), cross("cross", p, q);
  Kokkos::deep_copy(y, Scalar(0.25));
  const double cpu_full = cpu_seconds();
  const auto start = std::chrono::steady_clock::now();
  block.full_cross(y, cross);
  const double full = seconds_since(start);
  std::printf("[%s] full_cross process CPU time %.3f s\n", name, cpu_seconds() - cpu_full);
  std::printf("[%s] full_cross q=%lld: %.3f s, %.2f GMAC/s (UKBB, 291,283 SNPs a rank: %.1f s)\n", name,
              (long long)q, full, static_cast<double>(n) * p * q / full / 1e9,
              full * 291283.0 / static_cast<double>(p));
}

TEST(GenotypeBlockThroughput, DISABLED_Float) {
  measure<float>("float");
}
TEST(GenotypeBlockThroughput, DISABLED_Double) {
  measure<double>("double");
}

// What the measurement relies on: a 0 weight matrix leaves Z alone and a repeated batch gives equal rows.
TEST(GenotypeBlockThroughput, SetUp) {
  GenotypeFeatureBlock<float> block(random_packed(40, 101), 101, 0);
  Matrix<float> u("u", 40, 3), z("z", 4, 3);
  Kokkos::deep_copy(u, 1.0f);
  Kokkos::View<std::int64_t*> rows("rows", 4);
  auto rows_host = Kokkos::create_mirror_view(rows);
  rows_host(0) = 100;
  rows_host(1) = 3;
  rows_host(2) = 100;
  rows_host(3) = 0;
  Kokkos::deep_copy(rows, rows_host);
  block.multiply(rows, u, z);
  auto z_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), z);
  EXPECT_EQ(z_host(0, 1), z_host(2, 1));
  EXPECT_EQ(z_host(0, 0), z_host(0, 2));
}

}  // namespace
