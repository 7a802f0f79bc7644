// Host staging of Kokkos Views for file I/O: a View's elements in row-major order and back, for any layout
// and memory space (a strided subview of a device field too).
#pragma once

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <type_traits>
#include <vector>

namespace skein::io::detail {

template <class View>
std::vector<std::uint64_t> extents_of(const View& view) {
  std::vector<std::uint64_t> extent(View::rank);
  for (std::size_t d = 0; d < extent.size(); ++d) extent[d] = view.extent(d);
  return extent;
}

// A contiguous LayoutRight View of the same rank and extents, in `Space`, over new memory or over `data`.
template <class T, int Rank, class Space, class... Traits, class Source, class... Args>
auto row_major_like(const Source& view, Args... data_or_label) {
  static_assert(Rank >= 1 && Rank <= 3, "Views of rank 1 to 3");
  if constexpr (Rank == 1) {
    return Kokkos::View<T*, Kokkos::LayoutRight, Space, Traits...>(data_or_label..., view.extent(0));
  } else if constexpr (Rank == 2) {
    return Kokkos::View<T**, Kokkos::LayoutRight, Space, Traits...>(data_or_label..., view.extent(0),
                                                                    view.extent(1));
  } else {
    return Kokkos::View<T***, Kokkos::LayoutRight, Space, Traits...>(data_or_label..., view.extent(0),
                                                                     view.extent(1), view.extent(2));
  }
}

// The View's elements, row-major, on the host. Other layouts are remapped by deep_copy within the View's
// own memory space first: deep_copy cannot cross memory spaces between non-contiguous Views.
template <class View>
std::vector<typename View::non_const_value_type> row_major_values(const View& view) {
  using T = typename View::non_const_value_type;
  using Space = typename View::memory_space;
  std::vector<T> values(view.size());
  Kokkos::fence();  // a kernel may still be writing the View
  if (values.empty()) return values;
  auto host = row_major_like<T, View::rank, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
      view, values.data());
  if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, Space>::accessible) {
    Kokkos::deep_copy(host, view);
  } else {
    auto contiguous = row_major_like<T, View::rank, Space>(
        view, Kokkos::view_alloc(Kokkos::WithoutInitializing, "row_major_values"));
    Kokkos::deep_copy(contiguous, view);
    Kokkos::deep_copy(host, contiguous);
  }
  Kokkos::fence();
  return values;
}

// Row-major host values of the View's extents into the View (the reverse of row_major_values).
template <class View>
void assign_row_major(const View& view, const typename View::non_const_value_type* values) {
  using T = typename View::non_const_value_type;
  static_assert(std::is_same_v<typename View::value_type, T>, "assigning needs a non-const View");
  if (view.size() == 0) return;
  auto host = row_major_like<const T, View::rank, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
      view, values);
  auto in_space = Kokkos::create_mirror_view_and_copy(typename View::memory_space(), host);
  Kokkos::deep_copy(view, in_space);
  Kokkos::fence();
}

// What io/hdf5.hpp's View overload of H5Writer::write_block calls.
template <class View>
struct ViewStaging {
  static_assert(Kokkos::is_view<View>::value && View::rank >= 1 && View::rank <= 3,
                "write_block takes Kokkos Views of rank 1 to 3");
  static std::vector<typename View::non_const_value_type> row_major_values(const View& view) {
    return detail::row_major_values(view);
  }
  static std::vector<std::uint64_t> extents(const View& view) { return extents_of(view); }
};

}  // namespace skein::io::detail
