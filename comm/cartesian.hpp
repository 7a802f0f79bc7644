// A 3-D block decomposition of a cell grid over a Cartesian communicator, and its multigrid coarsenings.
#pragma once

#include "comm/communicator.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

namespace skein::comm {

// A box of cells in global index space: [offset, offset + extent) on each axis.
struct Box3 {
  std::array<std::int64_t, 3> offset{};
  std::array<std::int64_t, 3> extent{};
  std::int64_t cells() const { return extent[0] * extent[1] * extent[2]; }
  bool empty() const { return cells() == 0; }
  std::int64_t end(int axis) const { return offset[axis] + extent[axis]; }
  bool contains(std::int64_t i, std::int64_t j, std::int64_t k) const {
    return i >= offset[0] && i < end(0) && j >= offset[1] && j < end(1) && k >= offset[2] && k < end(2);
  }
  bool operator==(const Box3& other) const { return offset == other.offset && extent == other.extent; }
};

class CartDecomposition {
 public:
  // Collective. Splits `global_extent` cells over comm's ranks on a non-periodic Cartesian communicator
  // (MPI_Cart_create, reorder=false, so Cartesian rank == rank in `comm`); each axis is cut by
  // BlockPartition. Nonzero entries of `dims` are kept; the free ones are chosen to minimise the cut area
  // (the halo traffic) among the factorisations that give every rank at least one cell per axis, ties
  // going to MPI_Dims_create's balanced choice. Plain MPI_Dims_create ignores the grid's shape (13x1x9 on
  // 4 ranks would get 2x2x1 and cut the 1-cell axis). UsageError, agreed by every rank, for non-positive
  // extents, impossible `dims`, or an axis with fewer cells than ranks along it.
  CartDecomposition(const Communicator& comm, std::array<std::int64_t, 3> global_extent,
                    std::array<int, 3> dims = {0, 0, 0});

  const Communicator& comm() const { return *comm_; }  // the Cartesian communicator (owned, shared by levels)
  std::array<std::int64_t, 3> global_extent() const { return global_; }
  std::array<int, 3> dims() const { return dims_; }
  std::array<int, 3> coords() const { return coords_; }
  Box3 owned() const { return owned_; }
  Box3 owned_by(int rank) const;
  // The rank next to this one along `axis` in `direction` (-1 or +1); -1 at the domain boundary.
  int neighbor(int axis, int direction) const;
  // Where the blocks along `axis` start: dims()[axis] + 1 entries, the last one global_extent()[axis].
  const std::vector<std::int64_t>& cuts(int axis) const { return cuts_[axis]; }

  // The next multigrid level: global extent ceil(n/2) per axis, same communicator and layout; on each axis
  // a rank owns the coarse cells I whose fine cell 2I it owns: [ceil(begin/2), ceil(end/2)). Local (no
  // communication). A rank may get an empty box; see min_owned_extent().
  CartDecomposition coarsened() const;
  // The smallest owned extent over all ranks and axes. Every rank knows every block, so this is computed
  // locally and is the same on every rank (what an allreduce of the minimum would give), at no cost.
  std::int64_t min_owned_extent() const;

 private:
  void place();  // sets coords_, owned_ and neighbors_ from comm_, dims_ and cuts_

  std::shared_ptr<const Communicator> comm_;
  std::array<std::int64_t, 3> global_{};
  std::array<int, 3> dims_{};
  std::array<int, 3> coords_{};
  std::array<std::vector<std::int64_t>, 3> cuts_;
  std::array<std::array<int, 2>, 3> neighbors_{};
  Box3 owned_;
};

}  // namespace skein::comm
