#include "comm/cartesian.hpp"

#include "comm/block_partition.hpp"

#include <algorithm>
#include <string>
#include <tuple>

namespace skein::comm {

namespace {

constexpr const char* axis_name[3] = {"x", "y", "z"};

std::string shape(const std::array<std::int64_t, 3>& e) {
  return std::to_string(e[0]) + "x" + std::to_string(e[1]) + "x" + std::to_string(e[2]);
}
std::string shape(const std::array<int, 3>& d) {
  return std::to_string(d[0]) + "x" + std::to_string(d[1]) + "x" + std::to_string(d[2]);
}

std::vector<int> divisors(int n) {
  std::vector<int> result;
  for (int d = 1; d <= n; ++d)
    if (n % d == 0) result.push_back(d);
  return result;
}

// Cells on the faces between blocks: what one halo exchange moves (per ghost layer).
unsigned __int128 cut_area(const std::array<int, 3>& dims, const std::array<std::int64_t, 3>& extent) {
  unsigned __int128 area = 0;
  for (int a = 0; a < 3; ++a) {
    unsigned __int128 face = static_cast<unsigned>(dims[a] - 1);
    for (int b = 0; b < 3; ++b)
      if (b != a) face *= static_cast<std::uint64_t>(extent[b]);
    area += face;
  }
  return area;
}

// Validates the request and picks the free dims (see the constructor's comment). Throws UsageError.
std::array<int, 3> choose_dims(int size, const std::array<std::int64_t, 3>& extent,
                               const std::array<int, 3>& fixed) {
  for (int a = 0; a < 3; ++a) {
    if (extent[a] <= 0) throw engine::UsageError("grid " + shape(extent) + ": every extent must be positive");
    if (fixed[a] < 0) throw engine::UsageError("decomposition dims " + shape(fixed) + ": negative entry");
  }
  long long fixed_product = 1;
  bool all_fixed = true;
  for (int a = 0; a < 3; ++a) {
    if (fixed[a] > 0) fixed_product *= fixed[a];
    all_fixed = all_fixed && fixed[a] > 0;
  }
  if (size % fixed_product != 0 || (all_fixed && fixed_product != size)) {
    throw engine::UsageError("decomposition dims " + shape(fixed) + " do not fit " + std::to_string(size) +
                             " ranks");
  }
  for (int a = 0; a < 3; ++a) {
    if (fixed[a] > extent[a]) {
      throw engine::UsageError("grid " + shape(extent) + ": axis " + axis_name[a] + " has " +
                               std::to_string(extent[a]) + " cells but " + std::to_string(fixed[a]) +
                               " ranks along it");
    }
  }
  std::array<int, 3> balanced = fixed;
  detail::check("MPI_Dims_create", MPI_Dims_create(size, 3, balanced.data()));

  bool found = false;
  std::array<int, 3> best{};
  std::tuple<unsigned __int128, int, std::array<int, 3>> best_key;  // area, not MPI's choice, -dims
  const auto all = divisors(size);
  for (const int d0 : all) {
    if (fixed[0] > 0 && d0 != fixed[0]) continue;
    for (const int d1 : all) {
      if ((size / d0) % d1 != 0 || (fixed[1] > 0 && d1 != fixed[1])) continue;
      const std::array<int, 3> dims{d0, d1, size / d0 / d1};
      if (fixed[2] > 0 && dims[2] != fixed[2]) continue;
      if (dims[0] > extent[0] || dims[1] > extent[1] || dims[2] > extent[2]) continue;
      const auto key = std::make_tuple(cut_area(dims, extent), dims == balanced ? 0 : 1,
                                       std::array<int, 3>{-dims[0], -dims[1], -dims[2]});
      if (!found || key < best_key) {
        found = true;
        best = dims;
        best_key = key;
      }
    }
  }
  if (!found) {
    throw engine::UsageError("grid " + shape(extent) + " cannot be split over " + std::to_string(size) +
                             " ranks (dims " + shape(fixed) +
                             ") with at least one cell per rank along each axis");
  }
  return best;
}

}  // namespace

CartDecomposition::CartDecomposition(const Communicator& comm, std::array<std::int64_t, 3> global_extent,
                                     std::array<int, 3> dims)
    : global_(global_extent) {
  comm.agree([&] { dims_ = choose_dims(comm.size(), global_extent, dims); });
  const std::array<int, 3> periodic{0, 0, 0};
  MPI_Comm cart = MPI_COMM_NULL;
  const engine::BlockingScope blocking("MPI_Cart_create");
  detail::check("MPI_Cart_create",
                MPI_Cart_create(comm.native(), 3, dims_.data(), periodic.data(), /*reorder=*/0, &cart));
  auto cartesian = Communicator::adopt(cart);
  // reorder=0 and every rank in the grid: the same ranks in the same order, so the device backend applies.
  if (cartesian.size() == comm.size()) cartesian.set_device_backend(comm.device_backend(), comm.gpu_aware());
  cartesian.set_exact_sums(comm.exact_sums());
  comm_ = std::make_shared<const Communicator>(std::move(cartesian));
  for (int a = 0; a < 3; ++a) {
    const BlockPartition partition(static_cast<std::uint64_t>(global_[a]), dims_[a]);
    cuts_[a].resize(static_cast<std::size_t>(dims_[a]) + 1);
    for (int p = 0; p <= dims_[a]; ++p) cuts_[a][p] = static_cast<std::int64_t>(partition.begin(p));
  }
  place();
}

void CartDecomposition::place() {
  detail::check("MPI_Cart_coords", MPI_Cart_coords(comm_->native(), comm_->rank(), 3, coords_.data()));
  owned_ = owned_by(comm_->rank());
  for (int a = 0; a < 3; ++a) {
    int below = MPI_PROC_NULL, above = MPI_PROC_NULL;
    detail::check("MPI_Cart_shift", MPI_Cart_shift(comm_->native(), a, 1, &below, &above));
    neighbors_[a] = {below == MPI_PROC_NULL ? -1 : below, above == MPI_PROC_NULL ? -1 : above};
  }
}

Box3 CartDecomposition::owned_by(int rank) const {
  if (rank < 0 || rank >= comm_->size()) {
    throw engine::InternalError("CartDecomposition::owned_by: no rank " + std::to_string(rank));
  }
  std::array<int, 3> c{};
  detail::check("MPI_Cart_coords", MPI_Cart_coords(comm_->native(), rank, 3, c.data()));
  Box3 box;
  for (int a = 0; a < 3; ++a) {
    box.offset[a] = cuts_[a][c[a]];
    box.extent[a] = cuts_[a][c[a] + 1] - cuts_[a][c[a]];
  }
  return box;
}

int CartDecomposition::neighbor(int axis, int direction) const {
  if (axis < 0 || axis > 2 || (direction != -1 && direction != 1)) {
    throw engine::InternalError("CartDecomposition::neighbor(" + std::to_string(axis) + ", " +
                                std::to_string(direction) + ")");
  }
  return neighbors_[axis][direction > 0 ? 1 : 0];
}

CartDecomposition CartDecomposition::coarsened() const {
  CartDecomposition coarse = *this;
  for (int a = 0; a < 3; ++a) {
    coarse.global_[a] = (global_[a] + 1) / 2;
    for (auto& cut : coarse.cuts_[a]) cut = (cut + 1) / 2;
  }
  for (int a = 0; a < 3; ++a) {
    coarse.owned_.offset[a] = coarse.cuts_[a][coords_[a]];
    coarse.owned_.extent[a] = coarse.cuts_[a][coords_[a] + 1] - coarse.cuts_[a][coords_[a]];
  }
  return coarse;
}

std::int64_t CartDecomposition::min_owned_extent() const {
  std::int64_t smallest = global_[0];
  for (int a = 0; a < 3; ++a)
    for (int p = 0; p < dims_[a]; ++p) smallest = std::min(smallest, cuts_[a][p + 1] - cuts_[a][p]);
  return smallest;
}

}  // namespace skein::comm
