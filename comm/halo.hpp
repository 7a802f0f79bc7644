// Ghost-layer (halo) exchange for 3-D fields on a CartDecomposition: built once, preallocated buffers,
// Kokkos pack/unpack kernels, and start/finish so interior work can overlap the messages.
#pragma once

#include "comm/cartesian.hpp"
#include "comm/request.hpp"
#include "comm/view_collectives.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace skein::comm {

// Field layout contract: extents (ex+2w, ey+2w, ez+2w) for owned extent (ex, ey, ez) and ghost width w;
// owned cell (i, j, k) (local, 0-based) lives at (i+w, j+w, k+w). Zero-initialised.
// A multi-channel field (make_field(decomposition, width, channels, label)) appends a fourth, innermost
// extent: the `channels` values of one cell lie next to each other (channels-last, as a CNN's activations).
template <class T>
Kokkos::View<T****, Kokkos::LayoutRight> make_field(const CartDecomposition& decomposition, int width,
                                                    int channels, const std::string& label) {
  const auto e = decomposition.owned().extent;
  return Kokkos::View<T****, Kokkos::LayoutRight>(
      label, static_cast<std::size_t>(e[0] + 2 * width), static_cast<std::size_t>(e[1] + 2 * width),
      static_cast<std::size_t>(e[2] + 2 * width), static_cast<std::size_t>(channels));
}

template <class T>
Kokkos::View<T***, Kokkos::LayoutRight> make_field(const CartDecomposition& decomposition, int width,
                                                   const std::string& label) {
  const auto e = decomposition.owned().extent;
  return Kokkos::View<T***, Kokkos::LayoutRight>(label, static_cast<std::size_t>(e[0] + 2 * width),
                                                 static_cast<std::size_t>(e[1] + 2 * width),
                                                 static_cast<std::size_t>(e[2] + 2 * width));
}

namespace detail {

// A box of padded local indices, [lo, hi) per axis.
struct HaloRegion {
  std::array<std::int64_t, 3> lo{};
  std::array<std::int64_t, 3> hi{};
  std::size_t cells() const {
    return static_cast<std::size_t>((hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]));
  }
};

// One message each way with one neighbour: what this rank sends it and where the reply lands.
struct HaloMessage {
  int peer = -1;
  int send_tag = 0;
  int receive_tag = 0;
  HaloRegion send, receive;
  std::size_t send_offset = 0;  // into the send / receive buffers, in elements
  std::size_t receive_offset = 0;
};

// The messages, grouped in phases that run one after the other: one phase (faces only), or one per axis
// (edges and corners travel through the ghosts the earlier axes filled, so no diagonal messages).
// A phase's messages lie next to each other in both buffers (one staging copy per phase).
struct HaloPlan {
  std::vector<std::vector<HaloMessage>> phases;
  std::size_t send_cells = 0;
  std::size_t receive_cells = 0;
};

// Collective (agrees on validation): UsageError when width < 1 or some rank owns fewer than `width`
// cells along an axis that is split (its neighbour could not fill the whole ghost layer).
HaloPlan make_halo_plan(const CartDecomposition& decomposition, int width, bool edges_and_corners);

template <class T>
void pack_region(const Kokkos::View<T***, Kokkos::LayoutRight>& field, const Kokkos::View<T*>& buffer,
                 std::size_t offset, const HaloRegion& region) {
  const auto out = Kokkos::subview(buffer, std::make_pair(offset, offset + region.cells()));
  const std::int64_t l0 = region.lo[0], l1 = region.lo[1], l2 = region.lo[2];
  const std::int64_t n1 = region.hi[1] - l1, n2 = region.hi[2] - l2;
  Kokkos::parallel_for(
      "skein::comm::halo_pack",
      Kokkos::MDRangePolicy<Kokkos::Rank<3>>({l0, l1, l2}, {region.hi[0], region.hi[1], region.hi[2]}),
      KOKKOS_LAMBDA(const std::int64_t i, const std::int64_t j, const std::int64_t k) {
        out(((i - l0) * n1 + (j - l1)) * n2 + (k - l2)) = field(i, j, k);
      });
}

template <class T>
void unpack_region(const Kokkos::View<T***, Kokkos::LayoutRight>& field, const Kokkos::View<T*>& buffer,
                   std::size_t offset, const HaloRegion& region) {
  const auto in = Kokkos::subview(buffer, std::make_pair(offset, offset + region.cells()));
  const std::int64_t l0 = region.lo[0], l1 = region.lo[1], l2 = region.lo[2];
  const std::int64_t n1 = region.hi[1] - l1, n2 = region.hi[2] - l2;
  Kokkos::parallel_for(
      "skein::comm::halo_unpack",
      Kokkos::MDRangePolicy<Kokkos::Rank<3>>({l0, l1, l2}, {region.hi[0], region.hi[1], region.hi[2]}),
      KOKKOS_LAMBDA(const std::int64_t i, const std::int64_t j, const std::int64_t k) {
        field(i, j, k) = in(((i - l0) * n1 + (j - l1)) * n2 + (k - l2));
      });
}

// The same for a channels-last field: a cell's `channels` values travel together, in order.
template <class T>
void pack_region(const Kokkos::View<T****, Kokkos::LayoutRight>& field, const Kokkos::View<T*>& buffer,
                 std::size_t offset, const HaloRegion& region) {
  const std::int64_t nc = static_cast<std::int64_t>(field.extent(3));
  const auto out = Kokkos::subview(buffer, std::make_pair(offset * nc, (offset + region.cells()) * nc));
  const std::int64_t l0 = region.lo[0], l1 = region.lo[1], l2 = region.lo[2];
  const std::int64_t n1 = region.hi[1] - l1, n2 = region.hi[2] - l2;
  Kokkos::parallel_for(
      "skein::comm::halo_pack_channels",
      Kokkos::MDRangePolicy<Kokkos::Rank<3>>({l0, l1, l2}, {region.hi[0], region.hi[1], region.hi[2]}),
      KOKKOS_LAMBDA(const std::int64_t i, const std::int64_t j, const std::int64_t k) {
        const std::int64_t base = (((i - l0) * n1 + (j - l1)) * n2 + (k - l2)) * nc;
        for (std::int64_t c = 0; c < nc; ++c) out(base + c) = field(i, j, k, c);
      });
}

template <class T>
void unpack_region(const Kokkos::View<T****, Kokkos::LayoutRight>& field, const Kokkos::View<T*>& buffer,
                   std::size_t offset, const HaloRegion& region) {
  const std::int64_t nc = static_cast<std::int64_t>(field.extent(3));
  const auto in = Kokkos::subview(buffer, std::make_pair(offset * nc, (offset + region.cells()) * nc));
  const std::int64_t l0 = region.lo[0], l1 = region.lo[1], l2 = region.lo[2];
  const std::int64_t n1 = region.hi[1] - l1, n2 = region.hi[2] - l2;
  Kokkos::parallel_for(
      "skein::comm::halo_unpack_channels",
      Kokkos::MDRangePolicy<Kokkos::Rank<3>>({l0, l1, l2}, {region.hi[0], region.hi[1], region.hi[2]}),
      KOKKOS_LAMBDA(const std::int64_t i, const std::int64_t j, const std::int64_t k) {
        const std::int64_t base = (((i - l0) * n1 + (j - l1)) * n2 + (k - l2)) * nc;
        for (std::int64_t c = 0; c < nc; ++c) field(i, j, k, c) = in(base + c);
      });
}

}  // namespace detail

// Fills the ghost cells of a field (make_field's layout) from the neighbours' owned cells. Ghosts on the
// domain boundary (no neighbour there) are never touched: the caller owns them (boundary values). With
// edges_and_corners, every ghost cell inside the global domain is filled; otherwise only the face ghosts
// (cells outside the owned box along exactly one axis). Not thread-safe; one exchange in flight at a time.
// An exchange built with `channels` > 1 moves channels-last fields (Field4, make_field's 4-D overload) of
// exactly that many channels: one message per neighbour and phase whatever the channel count. A 1-channel
// exchange takes both the 3-D fields and 4-D fields of one channel.
template <class T>
class HaloExchange {
 public:
  using Field = Kokkos::View<T***, Kokkos::LayoutRight>;
  using Field4 = Kokkos::View<T****, Kokkos::LayoutRight>;

  // Collective (see detail::make_halo_plan for the errors; `channels` < 1 is an InternalError).
  HaloExchange(const CartDecomposition& decomposition, int width, bool edges_and_corners = false,
               int channels = 1)
      : decomposition_(decomposition),
        width_(width),
        edges_and_corners_(edges_and_corners),
        channels_(channels),
        plan_(detail::make_halo_plan(decomposition, width, edges_and_corners)),
        send_("skein::comm::halo_send", plan_.send_cells * static_cast<std::size_t>(std::max(channels, 1))),
        receive_("skein::comm::halo_receive",
                 plan_.receive_cells * static_cast<std::size_t>(std::max(channels, 1))) {
    if (channels < 1) throw engine::InternalError("HaloExchange: channels must be at least 1");
    // When the default memory space is host-accessible the mirrors are the buffers themselves.
    auto host = std::make_shared<HostBuffers>();
    host->send = Kokkos::create_mirror_view(send_);
    host->receive = Kokkos::create_mirror_view(receive_);
    host_ = std::move(host);
  }
  HaloExchange(const HaloExchange&) = delete;
  HaloExchange& operator=(const HaloExchange&) = delete;
  HaloExchange(HaloExchange&&) = default;
  HaloExchange& operator=(HaloExchange&&) = default;

  int width() const { return width_; }
  int channels() const { return channels_; }
  bool edges_and_corners() const { return edges_and_corners_; }
  const CartDecomposition& decomposition() const { return decomposition_; }

  // Packs and posts the messages. With edges_and_corners only the first axis goes out here (the later
  // axes forward ghosts that must arrive first); faces-only exchanges post everything.
  void start(const Field& field) { start_any(field); }
  void start(const Field4& field) { start_any(field); }
  // Waits for the messages and unpacks them into the ghosts (running any later phases).
  void finish(const Field& field) { finish_any(field); }
  void finish(const Field4& field) { finish_any(field); }
  void exchange(const Field& field) {
    start(field);
    finish(field);
  }
  void exchange(const Field4& field) {
    start(field);
    finish(field);
  }

 private:
  using Buffer = Kokkos::View<T*>;
  using HostBuffer = typename Buffer::HostMirror;
  struct HostBuffers {
    HostBuffer send, receive;
  };
  static constexpr bool staged =
      !Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename Buffer::memory_space>::accessible;

  template <class F>
  void start_any(const F& field) {
    if (in_flight_ != nullptr) throw engine::InternalError("HaloExchange::start: an exchange is in flight");
    check_extents(field);
    in_flight_ = field.data();
    post(0, field);
  }
  template <class F>
  void finish_any(const F& field) {
    if (in_flight_ == nullptr || in_flight_ != field.data()) {
      throw engine::InternalError("HaloExchange::finish without a matching start");
    }
    in_flight_ = nullptr;
    complete(0, field);
    for (std::size_t phase = 1; phase < plan_.phases.size(); ++phase) {
      post(phase, field);
      complete(phase, field);
    }
  }

  template <class F>
  void check_extents(const F& field) const {
    const std::int64_t channels =
        static_cast<int>(F::rank) == 4 ? static_cast<std::int64_t>(field.extent(F::rank - 1)) : 1;
    if (channels != channels_) {
      throw engine::InternalError("HaloExchange: field '" + field.label() + "' has " +
                                  std::to_string(channels) + " channels, the exchange " +
                                  std::to_string(channels_));
    }
    const auto e = decomposition_.owned().extent;
    for (int a = 0; a < 3; ++a) {
      if (static_cast<std::int64_t>(field.extent(a)) != e[a] + 2 * width_) {
        throw engine::InternalError("HaloExchange: field '" + field.label() +
                                    "' does not match the decomposition");
      }
    }
  }

  template <class F>
  void post(std::size_t phase, const F& field) {
    if (plan_.phases[phase].empty()) return;  // no neighbour on these axes: nothing to pack or fence
    const Communicator& comm = decomposition_.comm();
    const std::shared_ptr<const void> keep = host_;  // MPI's memory outlives a dropped exchange
    requests_.clear();
    for (const auto& m : plan_.phases[phase]) {
      T* at = host_->receive.data() + m.receive_offset * channels_;
      requests_.push_back(comm.irecv(at, m.receive.cells() * channels_, m.peer, m.receive_tag, keep));
    }
    const auto& messages = plan_.phases[phase];
    for (const auto& m : messages) detail::pack_region(field, send_, m.send_offset, m.send);
    Kokkos::fence();         // the kernels wrote what MPI is about to read
    if constexpr (staged) {  // one copy for the phase: its messages are contiguous in the buffer
      const std::size_t end = messages.back().send_offset + messages.back().send.cells();
      copy(host_->send, send_, messages.front().send_offset * channels_,
           (end - messages.front().send_offset) * channels_);
    }
    for (const auto& m : messages) {
      const T* at = host_->send.data() + m.send_offset * channels_;
      requests_.push_back(comm.isend(at, m.send.cells() * channels_, m.peer, m.send_tag, keep));
    }
  }

  template <class F>
  void complete(std::size_t phase, const F& field) {
    if (plan_.phases[phase].empty()) return;
    wait_all(requests_);
    const auto& messages = plan_.phases[phase];
    if constexpr (staged) {
      const std::size_t end = messages.back().receive_offset + messages.back().receive.cells();
      copy(receive_, host_->receive, messages.front().receive_offset * channels_,
           (end - messages.front().receive_offset) * channels_);
    }
    for (const auto& m : messages) detail::unpack_region(field, receive_, m.receive_offset, m.receive);
    Kokkos::fence();  // ghosts are ready when finish() returns, as after a blocking exchange
  }

  template <class To, class From>
  static void copy(const To& to, const From& from, std::size_t offset, std::size_t count) {
    const auto range = std::make_pair(offset, offset + count);
    Kokkos::deep_copy(Kokkos::subview(to, range), Kokkos::subview(from, range));
  }

  CartDecomposition decomposition_;  // shares the Cartesian communicator
  int width_;
  bool edges_and_corners_;
  int channels_;
  detail::HaloPlan plan_;
  Buffer send_, receive_;
  std::shared_ptr<const HostBuffers> host_;
  std::vector<Request> requests_;
  const T* in_flight_ = nullptr;
};

}  // namespace skein::comm
