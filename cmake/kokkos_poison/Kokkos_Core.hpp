// Stands in for Kokkos' header when the Kokkos-free targets are compiled as a check
// (cmake/SkeinKokkosFree.cmake).
#error "skein: a Kokkos-free target includes Kokkos_Core.hpp (see cmake/SkeinKokkosFree.cmake)"
