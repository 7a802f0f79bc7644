// A multilayer perceptron on Kokkos Views whose loss, gradient, exact Hessian-vector product (Pearlmutter's
// R-operator) and Gauss-Newton vector product are sums over a batch: the linear operators of the hessian job.
#pragma once

#include "engine/random.hpp"

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace skein::solvers::nn {

enum class Activation { tanh, relu, gelu, softplus };
enum class Loss { cross_entropy, mse };

// Names as in configs: "tanh", "relu", "gelu", "softplus"; "cross_entropy", "mse". An unknown name throws
// std::invalid_argument naming it and the choices.
Activation parse_activation(const std::string& name);
Loss parse_loss(const std::string& name);
std::string to_string(Activation activation);
std::string to_string(Loss loss);

// The stream of engine/random.hpp that initialize() draws from, so a job's own streams under the same
// seed never share numbers with it (the value spells "nn" followed by 1).
inline constexpr std::uint32_t kInitializationStream = 0x6E6E0001u;

// Layer widths d0 .. dL: layer l maps d_l -> d_{l+1} by z = W_l a + b_l (W_l is d_{l+1} x d_l, as PyTorch
// stores Linear.weight), and the activation follows every layer but the last, whose outputs are the logits
// (cross_entropy) or predictions (mse). The flat parameter vector is PyTorch's parameters_to_vector order:
// W0 row-major, b0, W1, b1, ...
struct MlpShape {
  std::vector<int> layer_sizes;
  Activation activation = Activation::tanh;
  Loss loss = Loss::cross_entropy;

  int layers() const { return static_cast<int>(layer_sizes.size()) - 1; }
  std::int64_t parameter_count() const;
  std::int64_t weight_offset(int layer) const;
  std::int64_t bias_offset(int layer) const;
  // std::invalid_argument unless there are at least 2 sizes, all positive, and the parameter count fits
  // BLAS's int dimensions per layer.
  void validate() const;
};

// A batch of samples (rows) on this rank: x is rows x d0. cross_entropy reads `labels` (0 .. dL-1, one per
// row), mse reads `targets` (rows x dL); the other may stay empty.
template <class Scalar>
struct Batch {
  Kokkos::View<const Scalar**, Kokkos::LayoutRight> x;
  Kokkos::View<const int*> labels;
  Kokkos::View<const Scalar**, Kokkos::LayoutRight> targets;
  std::int64_t rows() const { return static_cast<std::int64_t>(x.extent(0)); }
};

// The network's sums over a batch. Every call processes the batch in chunks of at most max_rows rows (the
// workspaces' size, allocated once; the R-pass buffers on the first hvp / ggn_vp) and returns or
// ACCUMULATES (+=) `weight` times the sum over the batch's samples: with weight = 1 / (global sample count)
// and an allreduce, data-parallel ranks get the mean loss and its derivatives. Vectors are flat parameter
// vectors of parameter_count() entries; an output vector must not be params or v. Not thread-safe: one Mlp
// per thread.
//
// Workspaces take about 6 x max_rows x (d1 + ... + dL) + 2 x max_rows x max(d1 .. dL) + max_rows x d0
// scalars (784-1024-512-10 with max_rows 10,000: 0.5 GB at float32). A batch that fits in one chunk lets
// repeated hvp / ggn_vp calls at unchanged parameters and batch values reuse the forward and backward pass,
// so give max_rows the rank's shard size when memory allows.
template <class Scalar>
class Mlp {
 public:
  using vector_type = Kokkos::View<Scalar*>;
  using matrix_type = Kokkos::View<Scalar**, Kokkos::LayoutRight>;

  Mlp(MlpShape shape, std::int64_t max_rows);

  const MlpShape& shape() const { return shape_; }
  std::int64_t max_rows() const { return max_rows_; }

  // weight * sum of per-sample losses.
  double loss(const vector_type& params, const Batch<Scalar>& batch, double weight);
  // grad += weight * sum of per-sample gradients; returns weight * sum of losses.
  double gradient(const vector_type& params, const Batch<Scalar>& batch, double weight,
                  const vector_type& grad);
  // hv += weight * sum of per-sample Hessians times v: exact, by one forward pass, the R-forward pass,
  // one backward pass and the R-backward pass (activation and loss second derivatives included). The
  // forward and backward pass are skipped when this Mlp's last hvp had the same parameter and batch values.
  void hvp(const vector_type& params, const Batch<Scalar>& batch, double weight, const vector_type& v,
           const vector_type& hv);
  // gv += weight * sum of J^T H_out J v (generalised Gauss-Newton): J v by the R-forward pass, the loss
  // Hessian with respect to the outputs per sample (softmax: diag(p) - p p^T; mse: 2/dL I), then J^T by an
  // ordinary backward pass.
  void ggn_vp(const vector_type& params, const Batch<Scalar>& batch, double weight, const vector_type& v,
              const vector_type& gv);
  // Number of rows whose largest output is at the row's label (cross_entropy), for progress lines.
  std::int64_t correct(const vector_type& params, const Batch<Scalar>& batch);
  // PyTorch's default Linear initialisation, U(-1/sqrt(d_in), 1/sqrt(d_in)) for W_l and b_l; entry i of
  // the flat vector is engine::uniform_open01(seed, kInitializationStream, i) mapped to that interval, so
  // it does not depend on the rank count or the memory space.
  void initialize(const vector_type& params, std::uint64_t seed) const;

 private:
  enum class Pass { loss, gradient, hvp, ggn };
  // What the workspaces hold for the (params, batch) remembered in cached_*: nothing, the forward pass
  // (z, a), or the backward pass too (delta, g). Only hvp and ggn_vp on a batch of at most max_rows rows
  // reuse it; every other call overwrites the workspaces and forgets it.
  enum class State { none = 0, forward = 1, backward = 2 };

  double run(Pass pass, const vector_type& params, const Batch<Scalar>& batch, double weight,
             const vector_type& v, const vector_type& out);
  void forward(const vector_type& params, const Scalar* x_rows, std::int64_t rows);
  double output_signals(const Batch<Scalar>& batch, std::int64_t begin, std::int64_t rows, double weight,
                        bool want_delta, bool want_hrf);
  double backward(const vector_type& params, const Batch<Scalar>& batch, std::int64_t begin,
                  std::int64_t rows, double weight, const vector_type* grad);
  void r_forward(const vector_type& params, const vector_type& v, const Scalar* x_rows, std::int64_t rows);
  void r_backward(Pass pass, const vector_type& params, const vector_type& v, const Batch<Scalar>& batch,
                  std::int64_t begin, std::int64_t rows, double weight, const vector_type& out);
  // True when the workspaces hold at least `needed` for exactly these parameter and batch values (compared
  // entry by entry, so parameters or a batch buffer changed in place are noticed).
  bool holds(State needed, const vector_type& params, const Batch<Scalar>& batch) const;
  void remember(State state, const vector_type& params, const Batch<Scalar>& batch);
  void check_batch(const Batch<Scalar>& batch) const;
  void check_vector(const vector_type& v, const char* what) const;
  void allocate_r_buffers();
  // W_l of a flat vector as a d_{l+1} x d_l row-major matrix.
  Kokkos::View<Scalar**, Kokkos::LayoutRight, Kokkos::MemoryUnmanaged> weights(const vector_type& flat,
                                                                               int l) const {
    return Kokkos::View<Scalar**, Kokkos::LayoutRight, Kokkos::MemoryUnmanaged>(
        flat.data() + shape_.weight_offset(l), shape_.layer_sizes[l + 1], shape_.layer_sizes[l]);
  }

  MlpShape shape_;
  std::int64_t max_rows_;
  int widest_ = 0;                  // the largest of d1 .. dL
  std::vector<matrix_type> z_;      // z_[l]: pre-activations of layer l, max_rows x d_{l+1}
  std::vector<matrix_type> a_;      // a_[l], l >= 1: activations entering layer l (a_0 is the batch's x)
  std::vector<matrix_type> delta_;  // delta_[l] = dl/dz_l per sample, unweighted
  std::vector<matrix_type> g_;      // g_[l] = dl/da_{l+1} (hidden layers)
  std::vector<matrix_type> rz_;     // R{z_l}, R{a_l} of the R-forward pass (hvp, ggn_vp only)
  std::vector<matrix_type> ra_;
  Kokkos::View<Scalar*> rdelta_[2];  // R-backward ping-pong buffers, max_rows x widest each
  Kokkos::View<Scalar*> ones_;       // max_rows ones: bias sums as gemv
  State state_ = State::none;
  std::int64_t cached_rows_ = -1;
  vector_type cached_params_;
  Kokkos::View<Scalar*> cached_x_, cached_targets_;
  Kokkos::View<int*> cached_labels_;
};

extern template class Mlp<float>;
extern template class Mlp<double>;

}  // namespace skein::solvers::nn
