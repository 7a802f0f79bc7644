#include "jobs/poisson/problem.hpp"

#include "engine/error.hpp"
#include "engine/random.hpp"
#include "io/h5_parallel_reader.hpp"

#include <Kokkos_Core.hpp>

#include <cmath>
#include <sstream>
#include <vector>

namespace skein::poisson {

using solvers::CellField;
using solvers::CellType;
using solvers::PoissonField;

namespace {

using Policy3 = Kokkos::MDRangePolicy<Kokkos::Rank<3>, Kokkos::IndexType<std::int64_t>>;

// Kokkos 3.4 keeps math functions in Kokkos::Experimental; 3.7+ and 4.x in Kokkos.
#if KOKKOS_VERSION >= 30700
namespace kmath = Kokkos;
#else
namespace kmath = Kokkos::Experimental;
#endif

// The owned cells of a ghost-width-1 field, as padded indices.
Policy3 owned_policy(const comm::CartDecomposition& d) {
  const auto e = d.owned().extent;
  return Policy3({1, 1, 1}, {e[0] + 1, e[1] + 1, e[2] + 1});
}

// Padded local (i, j, k) -> global cell coordinates.
struct GlobalIndex {
  std::int64_t offset[3] = {};
  std::int64_t global[3] = {};
  explicit GlobalIndex(const comm::CartDecomposition& d) {
    const auto owned = d.owned();
    const auto g = d.global_extent();
    for (int a = 0; a < 3; ++a) {
      offset[a] = owned.offset[a] - 1;  // padded index 1 is owned cell 0
      global[a] = g[a];
    }
  }
};

constexpr double kPi = 3.14159265358979323846;

// The manufactured solution's factor along one axis, g(t) = e^t sin(pi t), and its second derivative
// g''(t) = e^t ((1 - pi^2) sin(pi t) + 2 pi cos(pi t)), at t = (global index + 1) * h.
struct Factor {
  double g, g2;
};
KOKKOS_INLINE_FUNCTION Factor manufactured_factor(std::int64_t global_index, double h) {
  const double t = static_cast<double>(global_index + 1) * h;
  const double e = kmath::exp(t), s = kmath::sin(kPi * t), c = kmath::cos(kPi * t);
  return {e * s, e * ((1.0 - kPi * kPi) * s + 2.0 * kPi * c)};
}

struct ManufacturedRhs {
  CellField cells;
  PoissonField b;
  GlobalIndex at;
  double h[3];
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t i, std::int64_t j, std::int64_t k) const {
    cells(i, j, k) = static_cast<std::uint8_t>(CellType::fluid);
    const Factor x = manufactured_factor(at.offset[0] + i, h[0]);
    const Factor y = manufactured_factor(at.offset[1] + j, h[1]);
    const Factor z = manufactured_factor(at.offset[2] + k, h[2]);
    b(i, j, k) =
        -(h[0] * h[0] * x.g2 * y.g * z.g + h[1] * h[1] * x.g * y.g2 * z.g + h[2] * h[2] * x.g * y.g * z.g2);
  }
};

struct ManufacturedError {
  PoissonField x;
  GlobalIndex at;
  double h[3];
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t i, std::int64_t j, std::int64_t k,
                                         double& worst) const {
    const double exact = manufactured_factor(at.offset[0] + i, h[0]).g *
                         manufactured_factor(at.offset[1] + j, h[1]).g *
                         manufactured_factor(at.offset[2] + k, h[2]).g;
    const double e = x(i, j, k) - exact;
    const double a = e < 0 ? -e : e;
    if (a > worst) worst = a;
  }
};

struct SmokeProblem {
  CellField cells;
  PoissonField b;
  GlobalIndex at;
  Kokkos::View<const double* [4]> spheres;
  std::uint64_t seed;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t i, std::int64_t j, std::int64_t k) const {
    const std::int64_t gi = at.offset[0] + i, gj = at.offset[1] + j, gk = at.offset[2] + k;
    const std::int64_t nx = at.global[0], ny = at.global[1], nz = at.global[2];
    // Middle half of the top face: |(g + 0.5) / n - 0.5| < 0.25, in integers: |2g + 1 - n| < n / 2.
    const std::int64_t dx = 2 * gi + 1 - nx, dy = 2 * gj + 1 - ny;
    CellType type = CellType::fluid;
    if (gk == nz - 1 && 2 * (dx < 0 ? -dx : dx) < nx && 2 * (dy < 0 ? -dy : dy) < ny) {
      type = CellType::air;
    } else {
      for (std::size_t s = 0; s < spheres.extent(0); ++s) {
        const double ex = static_cast<double>(gi) - spheres(s, 0),
                     ey = static_cast<double>(gj) - spheres(s, 1),
                     ez = static_cast<double>(gk) - spheres(s, 2);
        if (ex * ex + ey * ey + ez * ez < spheres(s, 3) * spheres(s, 3)) type = CellType::solid;
      }
    }
    cells(i, j, k) = static_cast<std::uint8_t>(type);
    const std::uint64_t id = static_cast<std::uint64_t>((gi * ny + gj) * nz + gk);
    b(i, j, k) = type == CellType::fluid ? engine::standard_normal(seed, PoissonStream::rhs, id) : 0.0;
  }
};

struct CountFluid {
  CellField cells;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t i, std::int64_t j, std::int64_t k,
                                         std::int64_t& n) const {
    if (cells(i, j, k) == static_cast<std::uint8_t>(CellType::fluid)) ++n;
  }
};

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string text;
  for (std::size_t a = 0; a < shape.size(); ++a) text += (a ? "x" : "") + std::to_string(shape[a]);
  return text.empty() ? "a scalar" : text;
}

}  // namespace

CellType outside_cells(ProblemKind problem) {
  return problem == ProblemKind::manufactured ? CellType::air : CellType::solid;
}

void fill_manufactured(const comm::CartDecomposition& d, const CellField& cells, const PoissonField& b) {
  const auto g = d.global_extent();
  ManufacturedRhs functor{cells, b, GlobalIndex(d), {}};
  for (int a = 0; a < 3; ++a) functor.h[a] = 1.0 / static_cast<double>(g[a] + 1);
  Kokkos::parallel_for("poisson::manufactured", owned_policy(d), functor);
  Kokkos::fence();
}

double manufactured_max_error(const comm::CartDecomposition& d, const PoissonField& x) {
  const auto g = d.global_extent();
  ManufacturedError functor{x, GlobalIndex(d), {}};
  for (int a = 0; a < 3; ++a) functor.h[a] = 1.0 / static_cast<double>(g[a] + 1);
  double worst = 0;
  Kokkos::parallel_reduce("poisson::manufactured_error", owned_policy(d), functor,
                          Kokkos::Max<double>(worst));
  return d.comm().allreduce(worst, comm::Op::max);
}

void fill_smoke(const comm::CartDecomposition& d, const Settings& settings, const CellField& cells,
                const PoissonField& b) {
  Kokkos::View<double* [4]> spheres("poisson::spheres", settings.obstacles.size());
  auto host = Kokkos::create_mirror_view(spheres);
  for (std::size_t s = 0; s < settings.obstacles.size(); ++s) {
    const auto& o = settings.obstacles[s];
    host(s, 0) = o.x;
    host(s, 1) = o.y;
    host(s, 2) = o.z;
    host(s, 3) = o.r;
  }
  Kokkos::deep_copy(spheres, host);
  Kokkos::parallel_for("poisson::smoke", owned_policy(d),
                       SmokeProblem{cells, b, GlobalIndex(d), spheres, settings.seed});
  Kokkos::fence();
}

void read_file_problem(const comm::CartDecomposition& d, const Settings& settings, const CellField& cells,
                       const PoissonField& b) {
  const comm::Communicator& comm = d.comm();
  const std::string& path = settings.file;
  const auto g = d.global_extent();
  // Every rank opens the file with MPI-IO and reads its own block collectively; a missing file or dataset
  // and a wrong shape are found before any rank reads, and reported by every rank.
  io::H5ParallelReader reader(comm, path);
  const std::vector<std::uint64_t> want = {static_cast<std::uint64_t>(g[0]), static_cast<std::uint64_t>(g[1]),
                                           static_cast<std::uint64_t>(g[2])};
  for (const char* name : {"/cell_type", "/rhs"}) {
    const bool found = reader.exists(name);
    comm.agree([&] {
      if (!found) {
        throw engine::DataError(path + ": no dataset " + name +
                                " (problem=file needs uint8 /cell_type and float64 "
                                "/rhs, both [nx][ny][nz])");
      }
    });
    const auto shape = reader.shape(name);
    comm.agree([&] {
      if (shape != want) {
        throw engine::DataError(path + ": " + name + " has shape " + shape_text(shape) +
                                " but poisson.grid is " + shape_text(want));
      }
    });
  }
  const auto owned = d.owned();
  const std::vector<std::uint64_t> offset = {static_cast<std::uint64_t>(owned.offset[0]),
                                             static_cast<std::uint64_t>(owned.offset[1]),
                                             static_cast<std::uint64_t>(owned.offset[2])};
  const std::vector<std::uint64_t> extent = {static_cast<std::uint64_t>(owned.extent[0]),
                                             static_cast<std::uint64_t>(owned.extent[1]),
                                             static_cast<std::uint64_t>(owned.extent[2])};
  const auto types = reader.read_block<std::uint8_t>("/cell_type", offset, extent);
  const auto rhs = reader.read_block<double>("/rhs", offset, extent);
  reader.close();
  auto host_cells = Kokkos::create_mirror_view(cells);
  auto host_b = Kokkos::create_mirror_view(b);
  comm.agree([&] {
    std::size_t at = 0;
    for (std::int64_t i = 0; i < owned.extent[0]; ++i) {
      for (std::int64_t j = 0; j < owned.extent[1]; ++j) {
        for (std::int64_t k = 0; k < owned.extent[2]; ++k, ++at) {
          const std::uint8_t type = types[at];
          if (type > static_cast<std::uint8_t>(CellType::air)) {
            std::ostringstream message;
            message << path << ": /cell_type holds " << static_cast<int>(type) << " at (i,j,k) = ("
                    << owned.offset[0] + i << "," << owned.offset[1] + j << "," << owned.offset[2] + k
                    << "); expected 0 (fluid), 1 (solid) or 2 (air)";
            throw engine::DataError(message.str());
          }
          if (!std::isfinite(rhs[at])) {
            std::ostringstream message;
            message << path << ": /rhs is not finite (" << rhs[at] << ") at (i,j,k) = ("
                    << owned.offset[0] + i << "," << owned.offset[1] + j << "," << owned.offset[2] + k << ")";
            throw engine::DataError(message.str());
          }
          host_cells(i + 1, j + 1, k + 1) = type;
          host_b(i + 1, j + 1, k + 1) = type == static_cast<std::uint8_t>(CellType::fluid) ? rhs[at] : 0.0;
        }
      }
    }
  });
  Kokkos::deep_copy(cells, host_cells);
  Kokkos::deep_copy(b, host_b);
}

std::int64_t count_fluid(const comm::CartDecomposition& d, const CellField& cells) {
  std::int64_t n = 0;
  Kokkos::parallel_reduce("poisson::count_fluid", owned_policy(d), CountFluid{cells}, n);
  return d.comm().allreduce(n, comm::Op::sum);
}

}  // namespace skein::poisson
