// The DCDM 3-D CNN (Kaneda et al., ICML 2023) on a block-decomposed grid: inference, training forward and
// backward passes on Kokkos Views, with width-1 halo exchanges per convolution at both resolutions.
#pragma once

#include "comm/cartesian.hpp"
#include "solvers/poisson_operator.hpp"

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace skein::solvers::cnn {

// The stream of engine/random.hpp that DcdmNetwork::initialize() draws from ("cn" followed by 1).
inline constexpr std::uint32_t kInitializationStream = 0x636E0001u;

// The DCDM network (reference notes §1.3, the paper's src/train.py), with C = channels and every 3x3x3
// convolution zero-padded at the domain boundary ('same'):
//   x  = conv(r)                       1 -> C, linear
//   la = relu(conv(x))
//   fine_pairs_before times:  lb = relu(conv(la)); la = relu(conv(lb)) + la
//   lb = relu(conv(la))
//   a  = avgpool2(lb)                  2x2x2, 'same': an odd extent's last cell averages the cells that exist
//   coarse_pairs times:       b = relu(conv(a)); a = relu(conv(b)) + a
//   u  = upsample2(a) + lb             nearest neighbour, cropped to the fine extent
//   fine_pairs_after times:   v = relu(conv(u)); u = relu(conv(v)) + u
//   q  = dense(u)                      1x1x1, C -> 1, linear
// The 64^3 model of the paper is (16, 1, 3, 2): 15 convolutions, 97,457 parameters; the 128^3 model is
// (16, 2, 5, 3): 23 convolutions, 152,881 parameters.
struct DcdmArchitecture {
  int channels = 16;
  int fine_pairs_before = 1;
  int coarse_pairs = 3;
  int fine_pairs_after = 2;

  // 3x3x3 convolutions, the first (1 -> C) included: 3 + 2 (before + coarse + after).
  int conv_count() const { return 3 + 2 * (fine_pairs_before + coarse_pairs + fine_pairs_after); }
  std::int64_t parameter_count() const;
  // Flat parameter vector order (also the model file's datasets): for each convolution l in evaluation
  // order, its weight in PyTorch's Conv3d layout (out, in, 3, 3, 3) row-major, then its bias (out); last
  // the output layer's weight (1, C) and bias (1). conv l's in-channels are 1 for l = 0, else C.
  std::int64_t conv_weight_offset(int l) const;
  std::int64_t conv_bias_offset(int l) const { return conv_weight_offset(l) + 27LL * conv_in(l) * channels; }
  std::int64_t output_weight_offset() const { return conv_weight_offset(conv_count()); }
  std::int64_t output_bias_offset() const { return output_weight_offset() + channels; }
  int conv_in(int l) const { return l == 0 ? 1 : channels; }
  // Multiply-adds per fine cell of one inference (the coarse level counts 1/8 per fine cell).
  double macs_per_cell() const;
  // std::invalid_argument naming the field: channels in [1, 64], pair counts >= 0.
  void validate() const;
};

// Inference and training on one CartDecomposition (any rank count; a decomposition over a one-rank
// communicator holds the whole grid on this rank, which is what data-parallel training uses). The pooled
// level lives on decomposition.coarsened(); a decomposition where some rank would own no coarse cell (a
// one-cell block at an odd offset) is an agreed engine::UsageError. Scalar: float (DCDM) or double (finite-
// difference tests). Not thread-safe; every rank calls the collective members in the same order.
template <class Scalar>
class DcdmNetwork {
 public:
  using Vector = Kokkos::View<Scalar*>;

  DcdmNetwork(DcdmArchitecture architecture, const comm::CartDecomposition& decomposition);
  ~DcdmNetwork();
  DcdmNetwork(DcdmNetwork&&) noexcept;
  DcdmNetwork& operator=(DcdmNetwork&&) noexcept;

  const DcdmArchitecture& architecture() const;
  const comm::CartDecomposition& decomposition() const;
  // The flat parameter vector (DcdmArchitecture's order), on the default memory space; changing its
  // entries changes the network.
  Vector parameters() const;
  // Keras' defaults: Glorot-uniform weights (fan_in = 27 in, fan_out = 27 out; the output layer C and 1),
  // zero biases; entry e is engine::uniform_open01(seed, kInitializationStream, e) mapped to that interval,
  // so it does not depend on the rank count.
  void initialize(std::uint64_t seed);

  // q = f(r): r and q are PoissonFields of the decomposition; only owned cells of r are read, only owned
  // cells of q are written. Collective. Keeps only the activations still needed (a few fields).
  void infer(const PoissonField& r, const PoissonField& q);
  // The same, keeping every activation for backward().
  void forward_for_training(const PoissonField& r, const PoissonField& q);
  // grad += d(loss)/d(parameters) of this rank's cells, given dloss_dq on the owned cells, for the last
  // forward_for_training (allreduce grad across a decomposition's ranks for the full gradient). Collective.
  void backward(const PoissonField& dloss_dq, const Vector& grad);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

extern template class DcdmNetwork<float>;
extern template class DcdmNetwork<double>;

// The convolution kernel alone, for tests and bench/: out = act(conv(in) + bias) on the owned cells of
// one block with zero ghosts as given (in: (n0+2, n1+2, n2+2, ci), out: (n0+2, n1+2, n2+2, co)); weights in
// PyTorch's (co, ci, 3, 3, 3) layout.
template <class Scalar>
void conv3x3x3(const Kokkos::View<const Scalar****, Kokkos::LayoutRight>& in,
               const Kokkos::View<const Scalar*>& weights, const Kokkos::View<const Scalar*>& bias, bool relu,
               const Kokkos::View<Scalar****, Kokkos::LayoutRight>& out);

}  // namespace skein::solvers::cnn
