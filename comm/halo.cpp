#include "comm/halo.hpp"

#include <string>

namespace skein::comm::detail {

namespace {
// Halo traffic gets its own tag range so it cannot match other point-to-point messages on the communicator.
constexpr int halo_tag_base = 0x5ca10;

// The tag of a message travelling along `axis` toward `direction` (0: down, 1: up).
int halo_tag(int axis, int direction) {
  return halo_tag_base + 2 * axis + direction;
}
}  // namespace

HaloPlan make_halo_plan(const CartDecomposition& decomposition, int width, bool edges_and_corners) {
  const Communicator& comm = decomposition.comm();
  comm.agree([&] {
    if (width < 1) throw engine::UsageError("halo width must be at least 1, got " + std::to_string(width));
    for (int a = 0; a < 3; ++a) {
      const auto& cuts = decomposition.cuts(a);
      if (cuts.size() <= 2) continue;  // axis not split: no neighbour to read from
      for (std::size_t p = 0; p + 1 < cuts.size(); ++p) {
        if (cuts[p + 1] - cuts[p] < width) {
          throw engine::UsageError("halo width " + std::to_string(width) + " exceeds a block of " +
                                   std::to_string(cuts[p + 1] - cuts[p]) + " cells along axis " +
                                   std::to_string(a) + " (grid too small for this rank count)");
        }
      }
    }
  });

  const std::int64_t w = width;
  const auto e = decomposition.owned().extent;
  HaloPlan plan;
  plan.phases.resize(edges_and_corners ? 3 : 1);
  for (int a = 0; a < 3; ++a) {
    auto& phase = plan.phases[edges_and_corners ? a : 0];
    for (int direction = 0; direction < 2; ++direction) {
      const int peer = decomposition.neighbor(a, direction == 0 ? -1 : 1);
      if (peer < 0) continue;
      HaloMessage m;
      m.peer = peer;
      m.send_tag = halo_tag(a, direction);
      m.receive_tag = halo_tag(a, 1 - direction);  // the peer sends toward us
      for (int b = 0; b < 3; ++b) {
        std::int64_t lo = w, hi = w + e[b];  // owned range
        if (b == a) {
          m.send.lo[b] = direction == 0 ? w : e[b];
          m.send.hi[b] = m.send.lo[b] + w;
          m.receive.lo[b] = direction == 0 ? 0 : e[b] + w;
          m.receive.hi[b] = m.receive.lo[b] + w;
          continue;
        }
        if (edges_and_corners && b < a) {
          // Forward the ghosts axis b already filled, but only those inside the domain: boundary ghosts
          // belong to the caller. The peer shares our coordinate along b, so it has the same neighbours.
          if (decomposition.neighbor(b, -1) >= 0) lo = 0;
          if (decomposition.neighbor(b, 1) >= 0) hi = w + e[b] + w;
        }
        m.send.lo[b] = m.receive.lo[b] = lo;
        m.send.hi[b] = m.receive.hi[b] = hi;
      }
      m.send_offset = plan.send_cells;
      m.receive_offset = plan.receive_cells;
      plan.send_cells += m.send.cells();
      plan.receive_cells += m.receive.cells();
      phase.push_back(m);
    }
  }
  return plan;
}

}  // namespace skein::comm::detail
