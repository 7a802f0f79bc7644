// Halo exchange: every ghost with a neighbour gets the right global value (faces, then edges and corners),
// boundary ghosts stay untouched; widths 1 and 2; double, float and uint8; uneven grids and fixed dims;
// channels-last (4-D) fields.
// skein-test-ranks: 1 2 3 4
#include "comm/halo.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <type_traits>
#include <vector>

using skein::comm::Box3;
using skein::comm::CartDecomposition;
using skein::comm::Communicator;
using skein::comm::HaloExchange;
using skein::comm::Op;
using Extent = std::array<std::int64_t, 3>;
using Dims = std::array<int, 3>;

namespace {

template <class T>
using Field = Kokkos::View<T***, Kokkos::LayoutRight>;

// In [1, 250] or positive; `shift` makes a second field differ from the first.
template <class T>
KOKKOS_INLINE_FUNCTION T value_at(std::int64_t i, std::int64_t j, std::int64_t k, std::int64_t shift) {
  if constexpr (std::is_same_v<T, std::uint8_t>) {
    return static_cast<T>(1 + (i * 7 + j * 13 + k * 29 + shift) % 250);
  } else {
    return static_cast<T>(1 + i + 100 * j + 10000 * k + shift);
  }
}

// What an untouched ghost holds: different on every rank, so a ghost overwritten by a neighbour's
// untouched ghost is caught too.
template <class T>
T untouched(int rank) {
  if constexpr (std::is_same_v<T, std::uint8_t>)
    return static_cast<T>(251 + rank % 5);
  else
    return static_cast<T>(-1 - rank);
}

// Owned cells get their global value, ghosts untouched<T>(rank). (Kernels live here: no device lambdas in
// TEST bodies.)
template <class T>
void fill(const Field<T>& field, const Box3& owned, int width, std::int64_t shift, int rank) {
  const T ghost = untouched<T>(rank);
  const std::int64_t w = width;
  const std::int64_t o0 = owned.offset[0], o1 = owned.offset[1], o2 = owned.offset[2];
  const std::int64_t e0 = owned.extent[0], e1 = owned.extent[1], e2 = owned.extent[2];
  const std::int64_t n0 = static_cast<std::int64_t>(field.extent(0));
  const std::int64_t n1 = static_cast<std::int64_t>(field.extent(1));
  const std::int64_t n2 = static_cast<std::int64_t>(field.extent(2));
  Kokkos::parallel_for(
      "test_halo_fill", Kokkos::MDRangePolicy<Kokkos::Rank<3>>({0, 0, 0}, {n0, n1, n2}),
      KOKKOS_LAMBDA(const std::int64_t i, const std::int64_t j, const std::int64_t k) {
        const bool inside = i >= w && i < w + e0 && j >= w && j < w + e1 && k >= w && k < w + e2;
        field(i, j, k) = inside ? value_at<T>(o0 + i - w, o1 + j - w, o2 + k - w, shift) : ghost;
      });
}

// Compares every cell with what it must hold; returns {wrong cells, ghost cells that were filled}.
template <class T>
std::pair<long, long> check(const Field<T>& field, const CartDecomposition& d, int w, bool corners,
                            std::int64_t shift) {
  const auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), field);
  const Box3 owned = d.owned();
  const Extent g = d.global_extent();
  long wrong = 0, filled = 0;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(host.extent(0)); ++i)
    for (std::int64_t j = 0; j < static_cast<std::int64_t>(host.extent(1)); ++j)
      for (std::int64_t k = 0; k < static_cast<std::int64_t>(host.extent(2)); ++k) {
        const std::array<std::int64_t, 3> local{i, j, k};
        std::array<std::int64_t, 3> global{};
        int outside_owned = 0;
        bool in_domain = true;
        for (int a = 0; a < 3; ++a) {
          global[a] = owned.offset[a] + local[a] - w;
          outside_owned += local[a] < w || local[a] >= w + owned.extent[a];
          in_domain = in_domain && global[a] >= 0 && global[a] < g[a];
        }
        const bool expect_value = in_domain && (outside_owned == 0 || outside_owned == 1 || corners);
        const T expected = expect_value ? value_at<T>(global[0], global[1], global[2], shift)
                                        : untouched<T>(d.comm().rank());
        if (host(i, j, k) != expected) {
          if (++wrong <= 5) {
            ADD_FAILURE() << "rank " << d.comm().rank() << " local (" << i << "," << j << "," << k
                          << ") global (" << global[0] << "," << global[1] << "," << global[2] << "): got "
                          << +host(i, j, k) << ", expected " << +expected;
          }
        }
        if (outside_owned > 0 && expect_value) ++filled;
      }
  return {wrong, filled};
}

template <class T>
void check_exchange(const CartDecomposition& d, int width, bool corners) {
  SCOPED_TRACE(::testing::Message() << "grid " << d.global_extent()[0] << "x" << d.global_extent()[1] << "x"
                                    << d.global_extent()[2] << " dims " << d.dims()[0] << "x" << d.dims()[1]
                                    << "x" << d.dims()[2] << " width " << width << " corners " << corners
                                    << " bytes " << sizeof(T));
  HaloExchange<T> halo(d, width, corners);
  auto a = skein::comm::make_field<T>(d, width, "a");
  auto b = skein::comm::make_field<T>(d, width, "b");
  const int rank = d.comm().rank();
  fill(a, d.owned(), width, 0, rank);
  fill(b, d.owned(), width, 3, rank);
  halo.exchange(a);
  // start/finish with other work in between, and the same buffers reused for a second field.
  halo.start(b);
  fill(a, d.owned(), width, 0, rank);  // "interior work": resets a's ghosts
  halo.finish(b);
  halo.exchange(a);
  const auto [wrong_a, filled_a] = check(a, d, width, corners, 0);
  const auto [wrong_b, filled_b] = check(b, d, width, corners, 3);
  EXPECT_EQ(wrong_a, 0);
  EXPECT_EQ(wrong_b, 0);
  EXPECT_EQ(filled_a, filled_b);
  // Not vacuous: with several ranks, somebody received ghosts.
  const long received = d.comm().allreduce(filled_a, Op::sum);
  if (d.comm().size() > 1) {
    EXPECT_GT(received, 0);
  } else {
    EXPECT_EQ(received, 0);
  }
}

std::vector<std::pair<Extent, Dims>> cases(int size) {
  return {{{7, 5, 3}, {0, 0, 0}},     {{13, 1, 9}, {0, 0, 0}},   {{6, 9, 10}, {1, size, 1}},
          {{6, 9, 10}, {1, 1, size}}, {{9, 4, 5}, {size, 1, 1}}, {{8, 8, 8}, {0, 0, 0}}};
}

template <class T>
void check_all_cases() {
  const Communicator world(MPI_COMM_WORLD);
  for (const auto& [extent, dims] : cases(world.size())) {
    const CartDecomposition d(world, extent, dims);
    for (const int width : {1, 2}) {
      for (const bool corners : {false, true}) check_exchange<T>(d, width, corners);
    }
  }
}

// Channels-last field: channel c of each cell carries the 3-D test pattern shifted by 1000 c, so the
// per-channel check below also catches channels swapped or shifted within a cell.
template <class T>
void check_channels(const CartDecomposition& d, int width, bool corners, int channels) {
  SCOPED_TRACE(::testing::Message() << "channels " << channels << " width " << width << " corners "
                                    << corners);
  const int rank = d.comm().rank();
  HaloExchange<T> halo(d, width, corners, channels);
  auto field = skein::comm::make_field<T>(d, width, channels, "channels");
  for (int c = 0; c < channels; ++c) {
    auto plane = skein::comm::make_field<T>(d, width, "plane");
    fill(plane, d.owned(), width, 1000 * c, rank);
    Kokkos::deep_copy(Kokkos::subview(field, Kokkos::ALL, Kokkos::ALL, Kokkos::ALL, c), plane);
  }
  halo.exchange(field);
  long filled_total = 0;
  for (int c = 0; c < channels; ++c) {
    auto plane = skein::comm::make_field<T>(d, width, "plane");
    Kokkos::deep_copy(plane, Kokkos::subview(field, Kokkos::ALL, Kokkos::ALL, Kokkos::ALL, c));
    const auto [wrong, filled] = check(plane, d, width, corners, 1000 * c);
    EXPECT_EQ(wrong, 0) << "channel " << c;
    filled_total += filled;
  }
  if (d.comm().size() > 1) EXPECT_GT(d.comm().allreduce(filled_total, Op::sum), 0);
}

}  // namespace

TEST(HaloExchange, ChannelsLastFields) {
  const Communicator world(MPI_COMM_WORLD);
  for (const auto& [extent, dims] : cases(world.size())) {
    const CartDecomposition d(world, extent, dims);
    SCOPED_TRACE(::testing::Message() << "grid " << extent[0] << "x" << extent[1] << "x" << extent[2]);
    check_channels<float>(d, 1, true, 16);
    check_channels<double>(d, 1, false, 3);
    check_channels<double>(d, 2, true, 1);
  }
}

TEST(HaloExchange, ChannelCountMustMatch) {
  const Communicator world(MPI_COMM_WORLD);
  const CartDecomposition d(world, {8, 8, 8});
  HaloExchange<float> halo(d, 1, true, 4);
  auto three = skein::comm::make_field<float>(d, 1, 3, "three channels");
  EXPECT_THROW(halo.exchange(three), skein::engine::InternalError);
  auto scalar = skein::comm::make_field<float>(d, 1, "scalar");
  EXPECT_THROW(halo.exchange(scalar), skein::engine::InternalError);
  EXPECT_THROW(HaloExchange<float>(d, 1, true, 0), skein::engine::InternalError);
}

TEST(HaloExchange, FacesAndCornersDouble) {
  check_all_cases<double>();
}
TEST(HaloExchange, FacesAndCornersFloat) {
  check_all_cases<float>();
}
TEST(HaloExchange, FacesAndCornersUint8) {
  check_all_cases<std::uint8_t>();
}

TEST(HaloExchange, WorksOnCoarsenedLevels) {
  const Communicator world(MPI_COMM_WORLD);
  CartDecomposition d(world, {23, 17, 11});
  while (d.coarsened().min_owned_extent() >= 2) {
    d = d.coarsened();
    check_exchange<double>(d, 1, true);
    check_exchange<double>(d, 2, false);
  }
}

TEST(HaloExchange, MisuseIsReported) {
  const Communicator world(MPI_COMM_WORLD);
  const CartDecomposition d(world, {8, 8, 8});
  HaloExchange<double> halo(d, 1);
  auto field = skein::comm::make_field<double>(d, 1, "f");
  EXPECT_THROW(halo.finish(field), skein::engine::InternalError);
  auto wrong = skein::comm::make_field<double>(d, 2, "wrong width");
  EXPECT_THROW(halo.start(wrong), skein::engine::InternalError);
  halo.start(field);
  EXPECT_THROW(halo.start(field), skein::engine::InternalError);
  halo.finish(field);
}

TEST(HaloExchange, WidthBeyondABlockIsAnAgreedUsageError) {
  const Communicator world(MPI_COMM_WORLD);
  const int p = world.size();
  const CartDecomposition d(world, {p, 4, 4}, {p, 1, 1});  // one cell per rank along x
  try {
    HaloExchange<double> halo(d, 0);
    ADD_FAILURE() << "width 0 accepted";
  } catch (const skein::engine::UsageError& e) {
    EXPECT_TRUE(e.agreed());
  }
  if (p == 1) {
    EXPECT_NO_THROW(HaloExchange<double>(d, 2));  // x is not split: nothing to read from a neighbour
    return;
  }
  try {
    HaloExchange<double> halo(d, 2);
    ADD_FAILURE() << "width 2 on 1-cell blocks accepted";
  } catch (const skein::engine::UsageError& e) {
    EXPECT_TRUE(e.agreed());
    EXPECT_NE(std::string(e.what()).find("halo width 2"), std::string::npos) << e.what();
  }
}
