// Saving and restoring a Kokkos View (host or device, rank 1-3, any layout) as this rank's block of an N-D
// array in a job's checkpoint state, through engine::StateWriter::block and StateReader::block_*.
#pragma once

#include "engine/state.hpp"
#include "io/detail/view_copy.hpp"

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace skein::io {

// Collective, like StateWriter::block: `view` is this rank's block at `offset` (its extents are the block's)
// of the array `name` of shape `global_shape`. double and float Views are saved in their own type (float32
// stays 4 bytes in the file); integer Views (int32, int64, uint8, ...) are saved as int64.
template <class View>
void save_block(engine::StateWriter& writer, const std::string& name,
                const std::vector<std::uint64_t>& global_shape, const std::vector<std::uint64_t>& offset,
                const View& view) {
  static_assert(Kokkos::is_view<View>::value && View::rank >= 1 && View::rank <= 3,
                "save_block takes Views of rank 1 to 3");
  using T = typename View::non_const_value_type;
  static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "save_block takes numbers");
  const auto values = detail::row_major_values(view);
  const auto extent = detail::extents_of(view);
  if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float>) {
    writer.block(name, global_shape, offset, extent, values.data());
  } else {
    static_assert(std::is_integral_v<T>, "save_block takes double, float or integer Views");
    const std::vector<std::int64_t> wide(values.begin(), values.end());
    writer.block(name, global_shape, offset, extent, wide.data());
  }
}

// Collective, like StateReader::block_*: fills `view` with the block at `offset` (extents: the View's) of
// the saved array, whatever decomposition saved it. The View's element type picks the reader: double,
// float, or int64 narrowed to the View's integer type (the values a save_block of that type wrote).
// DataError on every rank when the saved array cannot hold the block.
template <class View>
void load_block(engine::StateReader& reader, const std::string& name,
                const std::vector<std::uint64_t>& offset, const View& view) {
  static_assert(Kokkos::is_view<View>::value && View::rank >= 1 && View::rank <= 3,
                "load_block takes Views of rank 1 to 3");
  using T = typename View::non_const_value_type;
  static_assert(std::is_same_v<typename View::value_type, T>, "load_block needs a non-const View");
  const auto extent = detail::extents_of(view);
  if constexpr (std::is_same_v<T, double>) {
    detail::assign_row_major(view, reader.block_double(name, offset, extent).data());
  } else if constexpr (std::is_same_v<T, float>) {
    detail::assign_row_major(view, reader.block_float(name, offset, extent).data());
  } else {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>,
                  "load_block takes double, float or integer Views");
    const auto wide = reader.block_int64(name, offset, extent);
    const std::vector<T> values(wide.begin(), wide.end());
    detail::assign_row_major(view, values.data());
  }
}

}  // namespace skein::io
