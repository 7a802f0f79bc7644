// H5Writer::write_block from a Kokkos View (io/hdf5.hpp declares it): the part of the writer that needs
// Kokkos, so that code which writes no View builds without it.
#pragma once

#include "io/detail/view_copy.hpp"
#include "io/hdf5.hpp"
