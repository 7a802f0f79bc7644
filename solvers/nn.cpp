#include "solvers/nn.hpp"

#include "solvers/dense_blas.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace skein::solvers::nn {

// ---------------------------------------------------------------------------------------------------------
// Names and shapes

Activation parse_activation(const std::string& name) {
  if (name == "tanh") return Activation::tanh;
  if (name == "relu") return Activation::relu;
  if (name == "gelu") return Activation::gelu;
  if (name == "softplus") return Activation::softplus;
  throw std::invalid_argument("unknown activation '" + name + "' (choices: tanh, relu, gelu, softplus)");
}

Loss parse_loss(const std::string& name) {
  if (name == "cross_entropy") return Loss::cross_entropy;
  if (name == "mse") return Loss::mse;
  throw std::invalid_argument("unknown loss '" + name + "' (choices: cross_entropy, mse)");
}

std::string to_string(Activation activation) {
  switch (activation) {
    case Activation::tanh:
      return "tanh";
    case Activation::relu:
      return "relu";
    case Activation::gelu:
      return "gelu";
    case Activation::softplus:
      return "softplus";
  }
  return "unknown";
}

std::string to_string(Loss loss) {
  switch (loss) {
    case Loss::cross_entropy:
      return "cross_entropy";
    case Loss::mse:
      return "mse";
  }
  return "unknown";
}

void MlpShape::validate() const {
  if (layer_sizes.size() < 2)
    throw std::invalid_argument("MLP layer_sizes needs at least 2 entries (input and output width), got " +
                                std::to_string(layer_sizes.size()));
  for (std::size_t i = 0; i < layer_sizes.size(); ++i) {
    if (layer_sizes[i] <= 0)
      throw std::invalid_argument("MLP layer_sizes[" + std::to_string(i) + "] is " +
                                  std::to_string(layer_sizes[i]) + "; every width must be positive");
  }
  for (int l = 0; l < layers(); ++l) {
    const std::int64_t weights = static_cast<std::int64_t>(layer_sizes[l]) * layer_sizes[l + 1];
    if (weights > std::numeric_limits<int>::max())
      throw std::invalid_argument("MLP layer " + std::to_string(l) + " (" + std::to_string(layer_sizes[l]) +
                                  " -> " + std::to_string(layer_sizes[l + 1]) +
                                  ") has more weights than a BLAS int dimension allows");
  }
}

std::int64_t MlpShape::weight_offset(int layer) const {
  std::int64_t offset = 0;
  for (int l = 0; l < layer; ++l)
    offset += static_cast<std::int64_t>(layer_sizes[l] + 1) * layer_sizes[l + 1];
  return offset;
}

std::int64_t MlpShape::bias_offset(int layer) const {
  return weight_offset(layer) + static_cast<std::int64_t>(layer_sizes[layer]) * layer_sizes[layer + 1];
}

std::int64_t MlpShape::parameter_count() const {
  return weight_offset(layers());
}

// ---------------------------------------------------------------------------------------------------------
// Kernels. Elementwise work runs over the flat index k of a chunk's rows x width block (rows are
// contiguous), so column j = k % width; one functor per activation keeps the switch out of the loops.

namespace {

#if KOKKOS_VERSION >= 30700
namespace kmath = Kokkos;
#else
namespace kmath = Kokkos::Experimental;
#endif

template <class Scalar>
using Flat = Kokkos::View<Scalar*, Kokkos::MemoryUnmanaged>;
template <class Scalar>
using ConstFlat = Kokkos::View<const Scalar*, Kokkos::MemoryUnmanaged>;
template <class Scalar>
using Mat = Kokkos::View<Scalar**, Kokkos::LayoutRight, Kokkos::MemoryUnmanaged>;
template <class Scalar>
using ConstMat = Kokkos::View<const Scalar**, Kokkos::LayoutRight, Kokkos::MemoryUnmanaged>;
using Range = Kokkos::RangePolicy<Kokkos::DefaultExecutionSpace, Kokkos::IndexType<std::int64_t>>;

// sigma(z), sigma'(z) and sigma''(z); the derivatives also get a = sigma(z) where that is cheaper (tanh).
template <Activation A>
struct Act;

template <>
struct Act<Activation::tanh> {
  template <class S>
  KOKKOS_INLINE_FUNCTION static S value(S z) {
    return kmath::tanh(z);
  }
  template <class S>
  KOKKOS_INLINE_FUNCTION static S first(S, S a) {
    return S(1) - a * a;
  }
  template <class S>
  KOKKOS_INLINE_FUNCTION static S second(S, S a) {
    return S(-2) * a * (S(1) - a * a);
  }
};

// relu'' = 0 and relu'(0) = 0, as autograd takes them.
template <>
struct Act<Activation::relu> {
  template <class S>
  KOKKOS_INLINE_FUNCTION static S value(S z) {
    return z > S(0) ? z : S(0);
  }
  template <class S>
  KOKKOS_INLINE_FUNCTION static S first(S z, S) {
    return z > S(0) ? S(1) : S(0);
  }
  template <class S>
  KOKKOS_INLINE_FUNCTION static S second(S, S) {
    return S(0);
  }
};

// Exact GELU, z Phi(z) (PyTorch's default, approximate='none').
template <>
struct Act<Activation::gelu> {
  template <class S>
  KOKKOS_INLINE_FUNCTION static S cdf(S z) {
    return S(0.5) * (S(1) + kmath::erf(z * S(0.70710678118654752440)));
  }
  template <class S>
  KOKKOS_INLINE_FUNCTION static S pdf(S z) {
    return S(0.39894228040143267794) * kmath::exp(S(-0.5) * z * z);
  }
  template <class S>
  KOKKOS_INLINE_FUNCTION static S value(S z) {
    return z * cdf(z);
  }
  template <class S>
  KOKKOS_INLINE_FUNCTION static S first(S z, S) {
    return cdf(z) + z * pdf(z);
  }
  template <class S>
  KOKKOS_INLINE_FUNCTION static S second(S z, S) {
    return pdf(z) * (S(2) - z * z);
  }
};

// softplus with beta 1 in the form that neither overflows nor loses small values.
template <>
struct Act<Activation::softplus> {
  template <class S>
  KOKKOS_INLINE_FUNCTION static S value(S z) {
    return (z > S(0) ? z : S(0)) + kmath::log1p(kmath::exp(-kmath::fabs(z)));
  }
  template <class S>
  KOKKOS_INLINE_FUNCTION static S sigmoid(S z) {
    return S(1) / (S(1) + kmath::exp(-z));
  }
  template <class S>
  KOKKOS_INLINE_FUNCTION static S first(S z, S) {
    return sigmoid(z);
  }
  template <class S>
  KOKKOS_INLINE_FUNCTION static S second(S z, S) {
    const S s = sigmoid(z);
    return s * (S(1) - s);
  }
};

template <class F>
void with_activation(Activation activation, F&& f) {
  switch (activation) {
    case Activation::tanh:
      f(std::integral_constant<Activation, Activation::tanh>{});
      return;
    case Activation::relu:
      f(std::integral_constant<Activation, Activation::relu>{});
      return;
    case Activation::gelu:
      f(std::integral_constant<Activation, Activation::gelu>{});
      return;
    case Activation::softplus:
      f(std::integral_constant<Activation, Activation::softplus>{});
      return;
  }
}

// z += b (per column); a = sigma(z) for hidden layers (a empty for the output layer).
template <Activation A, class Scalar>
struct AddBiasActivate {
  Flat<Scalar> z, a;
  ConstFlat<Scalar> b;
  std::int64_t width;
  bool hidden;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t k) const {
    const Scalar zk = z(k) + b(k % width);
    z(k) = zk;
    if (hidden) a(k) = Act<A>::value(zk);
  }
};

// R{z} += R{b} (the direction's bias part); R{a} = sigma'(z) R{z} for hidden layers.
template <Activation A, class Scalar>
struct RForward {
  Flat<Scalar> rz, ra;
  ConstFlat<Scalar> c, z, a;
  std::int64_t width;
  bool hidden;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t k) const {
    const Scalar rzk = rz(k) + c(k % width);
    rz(k) = rzk;
    if (hidden) ra(k) = Act<A>::first(z(k), a(k)) * rzk;
  }
};

// Backward through an activation: g = dL/da becomes dL/dz = g sigma'(z). With R-terms (hvp):
// R{dL/dz} = R{g} sigma'(z) + g sigma''(z) R{z}, from the old g. Only the signal in `rg` (ggn_vp's J^T pass)
// when g is empty.
template <Activation A, class Scalar>
struct BackwardActivation {
  Flat<Scalar> g, rg;
  ConstFlat<Scalar> z, a, rz;
  bool has_g, has_rg, second_order;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t k) const {
    const Scalar s1 = Act<A>::first(z(k), a(k));
    if (has_rg) {
      Scalar r = rg(k) * s1;
      if (second_order) r += g(k) * Act<A>::second(z(k), a(k)) * rz(k);
      rg(k) = r;
    }
    if (has_g) g(k) *= s1;
  }
};

// Per row of the outputs f: the loss (summed in double), and optionally delta = w dl/df and
// hrf = w (d^2 l/df^2) R{f}, the output signals of the backward and R-backward passes.
template <class Scalar>
struct OutputLoss {
  ConstFlat<Scalar> f, rf, targets;
  Kokkos::View<const int*, Kokkos::MemoryUnmanaged> labels;
  Flat<Scalar> delta, hrf;
  int width;
  bool cross_entropy, want_delta, want_hrf;
  double weight;

  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i, double& sum) const {
    const std::int64_t row = i * width;
    if (cross_entropy) {
      double m = static_cast<double>(f(row));
      for (int j = 1; j < width; ++j) m = f(row + j) > m ? static_cast<double>(f(row + j)) : m;
      double s = 0.0;
      for (int j = 0; j < width; ++j) s += kmath::exp(static_cast<double>(f(row + j)) - m);
      const int y = labels(i);
      sum += m + kmath::log(s) - static_cast<double>(f(row + y));
      double p_rf = 0.0;
      if (want_hrf) {
        for (int j = 0; j < width; ++j)
          p_rf += kmath::exp(static_cast<double>(f(row + j)) - m) / s * static_cast<double>(rf(row + j));
      }
      for (int j = 0; j < width; ++j) {
        const double p = kmath::exp(static_cast<double>(f(row + j)) - m) / s;
        if (want_delta) delta(row + j) = static_cast<Scalar>(weight * (p - (j == y ? 1.0 : 0.0)));
        if (want_hrf)
          hrf(row + j) = static_cast<Scalar>(weight * p * (static_cast<double>(rf(row + j)) - p_rf));
      }
    } else {
      const double scale = 2.0 / width;
      double l = 0.0;
      for (int j = 0; j < width; ++j) {
        const double r = static_cast<double>(f(row + j)) - static_cast<double>(targets(row + j));
        l += r * r;
        if (want_delta) delta(row + j) = static_cast<Scalar>(weight * scale * r);
        if (want_hrf) hrf(row + j) = static_cast<Scalar>(weight * scale * static_cast<double>(rf(row + j)));
      }
      sum += l / width;
    }
  }
};

template <class Scalar>
struct CountCorrect {
  ConstFlat<Scalar> f;
  Kokkos::View<const int*, Kokkos::MemoryUnmanaged> labels;
  int width;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i, std::int64_t& count) const {
    const std::int64_t row = i * width;
    int best = 0;
    for (int j = 1; j < width; ++j)
      if (f(row + j) > f(row + best)) best = j;
    if (best == labels(i)) ++count;
  }
};

// The first row whose label is outside [0, classes), or `rows` when there is none.
struct FirstBadLabel {
  Kokkos::View<const int*> labels;
  int classes;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i, std::int64_t& first) const {
    if ((labels(i) < 0 || labels(i) >= classes) && i < first) first = i;
  }
};

template <class Scalar>
struct UniformFill {
  Kokkos::View<Scalar*> params;
  std::uint64_t seed;
  double bound;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i) const {
    const double u =
        engine::uniform_open01(seed, engine::StreamId(kInitializationStream), static_cast<std::uint64_t>(i));
    params(i) = static_cast<Scalar>(bound * (2.0 * u - 1.0));
  }
};

template <class Scalar>
struct FillValue {
  Kokkos::View<Scalar*> v;
  Scalar value;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i) const { v(i) = value; }
};

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Mlp

template <class Scalar>
Mlp<Scalar>::Mlp(MlpShape shape, std::int64_t max_rows) : shape_(std::move(shape)), max_rows_(max_rows) {
  shape_.validate();
  if (max_rows_ <= 0 || max_rows_ > std::numeric_limits<int>::max())
    throw std::invalid_argument("Mlp: max_rows must be in 1 .. 2^31-1, got " + std::to_string(max_rows_));
  const int layers = shape_.layers();
  const auto& d = shape_.layer_sizes;
  for (int l = 1; l <= layers; ++l) widest_ = std::max(widest_, d[l]);
  z_.resize(layers);
  a_.resize(layers);
  for (int l = 0; l < layers; ++l) {
    z_[l] = matrix_type(Kokkos::view_alloc(Kokkos::WithoutInitializing, "skein::nn::z"), max_rows_, d[l + 1]);
    if (l > 0)
      a_[l] = matrix_type(Kokkos::view_alloc(Kokkos::WithoutInitializing, "skein::nn::a"), max_rows_, d[l]);
  }
  for (auto& buffer : delta_)
    buffer = Kokkos::View<Scalar*>(Kokkos::view_alloc(Kokkos::WithoutInitializing, "skein::nn::delta"),
                                   max_rows_ * widest_);
  ones_ =
      Kokkos::View<Scalar*>(Kokkos::view_alloc(Kokkos::WithoutInitializing, "skein::nn::ones"), max_rows_);
  Kokkos::parallel_for("skein::nn::ones", Range(0, max_rows_), FillValue<Scalar>{ones_, Scalar(1)});
}

template <class Scalar>
void Mlp<Scalar>::allocate_r_buffers() {
  if (!rz_.empty()) return;
  const int layers = shape_.layers();
  const auto& d = shape_.layer_sizes;
  rz_.resize(layers);
  ra_.resize(layers);
  for (int l = 0; l < layers; ++l) {
    rz_[l] =
        matrix_type(Kokkos::view_alloc(Kokkos::WithoutInitializing, "skein::nn::rz"), max_rows_, d[l + 1]);
    if (l > 0)
      ra_[l] = matrix_type(Kokkos::view_alloc(Kokkos::WithoutInitializing, "skein::nn::ra"), max_rows_, d[l]);
  }
  for (auto& buffer : rdelta_)
    buffer = Kokkos::View<Scalar*>(Kokkos::view_alloc(Kokkos::WithoutInitializing, "skein::nn::rdelta"),
                                   max_rows_ * widest_);
}

template <class Scalar>
void Mlp<Scalar>::check_vector(const vector_type& v, const char* what) const {
  if (static_cast<std::int64_t>(v.extent(0)) != shape_.parameter_count())
    throw std::invalid_argument(std::string("Mlp: ") + what + " has " + std::to_string(v.extent(0)) +
                                " entries, the network has " + std::to_string(shape_.parameter_count()) +
                                " parameters");
}

template <class Scalar>
void Mlp<Scalar>::check_batch(const Batch<Scalar>& batch) const {
  const auto& d = shape_.layer_sizes;
  const std::int64_t rows = batch.rows();
  if (static_cast<int>(batch.x.extent(1)) != d.front() && rows > 0)
    throw std::invalid_argument("Mlp: batch x has " + std::to_string(batch.x.extent(1)) +
                                " columns, the network's input width is " + std::to_string(d.front()));
  if (!batch.x.span_is_contiguous())
    throw std::invalid_argument("Mlp: batch x must be contiguous (row-major, no padding)");
  if (shape_.loss == Loss::cross_entropy) {
    if (static_cast<std::int64_t>(batch.labels.extent(0)) != rows)
      throw std::invalid_argument(
          "Mlp: cross_entropy needs one label per row: " + std::to_string(batch.labels.extent(0)) +
          " labels for " + std::to_string(rows) + " rows");
    std::int64_t first = rows;
    Kokkos::parallel_reduce("skein::nn::check_labels", Range(0, rows), FirstBadLabel{batch.labels, d.back()},
                            Kokkos::Min<std::int64_t>(first));
    if (first < rows) {
      int label = 0;
      Kokkos::deep_copy(label, Kokkos::subview(batch.labels, first));
      throw std::invalid_argument("Mlp: label " + std::to_string(label) + " of row " + std::to_string(first) +
                                  " is outside 0 .. " + std::to_string(d.back() - 1));
    }
  } else {
    if (static_cast<std::int64_t>(batch.targets.extent(0)) != rows ||
        (rows > 0 && static_cast<int>(batch.targets.extent(1)) != d.back()))
      throw std::invalid_argument(
          "Mlp: mse needs targets of " + std::to_string(rows) + " x " + std::to_string(d.back()) + ", got " +
          std::to_string(batch.targets.extent(0)) + " x " + std::to_string(batch.targets.extent(1)));
    if (!batch.targets.span_is_contiguous())
      throw std::invalid_argument("Mlp: batch targets must be contiguous (row-major, no padding)");
  }
}

template <class Scalar>
double Mlp<Scalar>::run(Pass pass, const vector_type& params, const Batch<Scalar>& batch, double weight,
                        const vector_type& v, const vector_type& out) {
  check_vector(params, "params");
  if (pass == Pass::hvp || pass == Pass::ggn) {
    check_vector(v, "v");
    allocate_r_buffers();
  }
  if (pass != Pass::loss) check_vector(out, pass == Pass::gradient ? "grad" : "the product");
  check_batch(batch);
  double total = 0.0;
  for (std::int64_t begin = 0; begin < batch.rows(); begin += max_rows_) {
    const std::int64_t rows = std::min(max_rows_, batch.rows() - begin);
    total += run_chunk(pass, params, batch, begin, rows, weight, v, out);
  }
  return total;
}

// The forward pass over one chunk of `rows` rows starting at x, with the R-forward pass interleaved when v
// is given (it needs z_l and a_{l+1} of the same layer).
template <class Scalar>
void Mlp<Scalar>::forward(const vector_type& params, const vector_type* v, const Scalar* x_rows,
                          std::int64_t rows) {
  using blas::Op;
  const int layers = shape_.layers();
  const auto& d = shape_.layer_sizes;
  const bool r_pass = v != nullptr;
  const ConstMat<Scalar> x(x_rows, rows, d[0]);
  auto weights = [&](const vector_type& flat, int l) {
    return ConstMat<Scalar>(flat.data() + shape_.weight_offset(l), d[l + 1], d[l]);
  };
  auto biases = [&](const vector_type& flat, int l) {
    return ConstFlat<Scalar>(flat.data() + shape_.bias_offset(l), d[l + 1]);
  };
  auto input = [&](int l) { return l == 0 ? x : ConstMat<Scalar>(a_[l].data(), rows, d[l]); };
  auto block = [&](const matrix_type& m, int width) { return Mat<Scalar>(m.data(), rows, width); };
  auto flat = [&](const matrix_type& m, int width) { return Flat<Scalar>(m.data(), rows * width); };

  for (int l = 0; l < layers; ++l) {
    const int width = d[l + 1];
    const bool hidden = l + 1 < layers;
    const Range elements(0, rows * width);
    blas::gemm(Op::none, Op::transpose, Scalar(1), input(l), weights(params, l), Scalar(0),
               block(z_[l], width));
    with_activation(shape_.activation, [&](auto activation) {
      Kokkos::parallel_for("skein::nn::forward", elements,
                           AddBiasActivate<decltype(activation)::value, Scalar>{
                               flat(z_[l], width), hidden ? flat(a_[l + 1], width) : Flat<Scalar>(),
                               biases(params, l), width, hidden});
    });
    if (!r_pass) continue;
    blas::gemm(Op::none, Op::transpose, Scalar(1), input(l), weights(*v, l), Scalar(0), block(rz_[l], width));
    if (l > 0)
      blas::gemm(Op::none, Op::transpose, Scalar(1), ConstMat<Scalar>(ra_[l].data(), rows, d[l]),
                 weights(params, l), Scalar(1), block(rz_[l], width));
    with_activation(shape_.activation, [&](auto activation) {
      Kokkos::parallel_for(
          "skein::nn::r_forward", elements,
          RForward<decltype(activation)::value, Scalar>{
              flat(rz_[l], width), hidden ? flat(ra_[l + 1], width) : Flat<Scalar>(), biases(*v, l),
              flat(z_[l], width), hidden ? flat(a_[l + 1], width) : Flat<Scalar>(), width, hidden});
    });
  }
}

// One chunk, every pass. Shapes: the chunk's input a_0 = x is rows x d0; layer l's z_l (and R{z_l}) is
// rows x d_{l+1}; a_l (and R{a_l}) for l >= 1 is sigma(z_{l-1}). The backward signal of layer l is
// delta_l = d(w loss)/dz_l (rows x d_{l+1}) in delta_[cur]; its R-counterpart in rdelta_[cur].
//
// GEMMs per layer (a device build would route dense_blas to KokkosBlas / cuBLAS; nothing here changes):
//   gradient: z = a W^T;  dW += delta^T a;  g = delta W                                   (3; 2 for l = 0)
//   hvp:      z = a W^T;  Rz = a V^T + Ra W^T;  g = delta W;  HW += Rdelta^T a + delta^T Ra;
//             Rg = Rdelta W + delta V                                                    (8; 3 for l = 0)
//   ggn_vp:   z = a W^T;  Rz = a V^T + Ra W^T;  GW += u^T a;  u = u W                     (5; 3 for l = 0)
// The gradient's own dW product is not part of hvp: the Hessian product needs delta, not dL/dW.
template <class Scalar>
double Mlp<Scalar>::run_chunk(Pass pass, const vector_type& params, const Batch<Scalar>& batch,
                              std::int64_t begin, std::int64_t rows, double weight, const vector_type& v,
                              const vector_type& out) {
  using blas::Op;
  const int layers = shape_.layers();
  const auto& d = shape_.layer_sizes;
  const bool r_pass = pass == Pass::hvp || pass == Pass::ggn;
  const ConstMat<Scalar> x(batch.x.data() + begin * d[0], rows, d[0]);
  forward(params, r_pass ? &v : nullptr, x.data(), rows);

  auto weights = [&](const vector_type& flat, int l) {
    return Mat<Scalar>(flat.data() + shape_.weight_offset(l), d[l + 1], d[l]);
  };
  auto biases = [&](const vector_type& flat, int l) {
    return Flat<Scalar>(flat.data() + shape_.bias_offset(l), d[l + 1]);
  };
  auto input = [&](int l) { return l == 0 ? x : ConstMat<Scalar>(a_[l].data(), rows, d[l]); };
  auto flat = [&](const matrix_type& m, int width) { return Flat<Scalar>(m.data(), rows * width); };
  auto flat_buffer = [&](const Kokkos::View<Scalar*>& b, int width) {
    return Flat<Scalar>(b.data(), rows * width);
  };
  auto block_buffer = [&](const Kokkos::View<Scalar*>& b, int width) {
    return Mat<Scalar>(b.data(), rows, width);
  };

  // Output layer: loss, delta (gradient, hvp) and H_out R{f} (hvp, ggn_vp).
  const int outputs = d.back();
  OutputLoss<Scalar> output;
  output.f = flat(z_[layers - 1], outputs);
  output.width = outputs;
  output.cross_entropy = shape_.loss == Loss::cross_entropy;
  output.want_delta = pass == Pass::gradient || pass == Pass::hvp;
  output.want_hrf = r_pass;
  output.weight = static_cast<double>(weight);
  if (output.cross_entropy)
    output.labels = Kokkos::View<const int*, Kokkos::MemoryUnmanaged>(batch.labels.data() + begin, rows);
  else
    output.targets = ConstFlat<Scalar>(batch.targets.data() + begin * outputs, rows * outputs);
  if (output.want_delta) output.delta = flat_buffer(delta_[0], outputs);
  if (r_pass) {
    output.rf = flat(rz_[layers - 1], outputs);
    output.hrf = flat_buffer(rdelta_[0], outputs);
  }
  double loss_sum = 0.0;
  Kokkos::parallel_reduce("skein::nn::output_loss", Range(0, rows), output, loss_sum);
  if (pass == Pass::loss) return loss_sum;

  // Backward pass (and R-backward for hvp; J^T for ggn_vp, whose signal lives in rdelta_).
  const auto ones = ConstFlat<Scalar>(ones_.data(), rows);
  int cur = 0;
  for (int l = layers - 1; l >= 0; --l) {
    const int width = d[l + 1];
    const auto delta = block_buffer(delta_[cur], width);
    const auto rdelta = r_pass ? block_buffer(rdelta_[cur], width) : Mat<Scalar>();
    const auto out_w = weights(out, l);
    const auto out_b = biases(out, l);
    if (pass == Pass::gradient) {
      blas::gemm(Op::transpose, Op::none, Scalar(1), delta, input(l), Scalar(1), out_w);
      blas::gemv(Op::transpose, Scalar(1), delta, ones, Scalar(1), out_b);
    } else {
      blas::gemm(Op::transpose, Op::none, Scalar(1), rdelta, input(l), Scalar(1), out_w);
      if (pass == Pass::hvp && l > 0)
        blas::gemm(Op::transpose, Op::none, Scalar(1), delta, ConstMat<Scalar>(ra_[l].data(), rows, d[l]),
                   Scalar(1), out_w);
      blas::gemv(Op::transpose, Scalar(1), rdelta, ones, Scalar(1), out_b);
    }
    if (l == 0) break;
    const int next = 1 - cur;
    const int in_width = d[l];
    const bool want_g = pass != Pass::ggn;
    if (want_g)
      blas::gemm(Op::none, Op::none, Scalar(1), delta, weights(params, l), Scalar(0),
                 block_buffer(delta_[next], in_width));
    if (r_pass) {
      blas::gemm(Op::none, Op::none, Scalar(1), rdelta, weights(params, l), Scalar(0),
                 block_buffer(rdelta_[next], in_width));
      if (pass == Pass::hvp)
        blas::gemm(Op::none, Op::none, Scalar(1), delta, weights(v, l), Scalar(1),
                   block_buffer(rdelta_[next], in_width));
    }
    with_activation(shape_.activation, [&](auto activation) {
      BackwardActivation<decltype(activation)::value, Scalar> step;
      step.has_g = want_g;
      step.has_rg = r_pass;
      step.second_order = pass == Pass::hvp;
      if (want_g) step.g = flat_buffer(delta_[next], in_width);
      if (r_pass) step.rg = flat_buffer(rdelta_[next], in_width);
      step.z = flat(z_[l - 1], in_width);
      step.a = flat(a_[l], in_width);
      if (pass == Pass::hvp) step.rz = flat(rz_[l - 1], in_width);
      Kokkos::parallel_for("skein::nn::backward", Range(0, rows * in_width), step);
    });
    cur = next;
  }
  return loss_sum;
}

template <class Scalar>
double Mlp<Scalar>::loss(const vector_type& params, const Batch<Scalar>& batch, double weight) {
  return weight * run(Pass::loss, params, batch, weight, vector_type(), vector_type());
}

template <class Scalar>
double Mlp<Scalar>::gradient(const vector_type& params, const Batch<Scalar>& batch, double weight,
                             const vector_type& grad) {
  return weight * run(Pass::gradient, params, batch, weight, vector_type(), grad);
}

template <class Scalar>
void Mlp<Scalar>::hvp(const vector_type& params, const Batch<Scalar>& batch, double weight,
                      const vector_type& v, const vector_type& hv) {
  run(Pass::hvp, params, batch, weight, v, hv);
}

template <class Scalar>
void Mlp<Scalar>::ggn_vp(const vector_type& params, const Batch<Scalar>& batch, double weight,
                         const vector_type& v, const vector_type& gv) {
  run(Pass::ggn, params, batch, weight, v, gv);
}

template <class Scalar>
std::int64_t Mlp<Scalar>::correct(const vector_type& params, const Batch<Scalar>& batch) {
  check_vector(params, "params");
  if (static_cast<std::int64_t>(batch.labels.extent(0)) != batch.rows())
    throw std::invalid_argument("Mlp::correct needs one label per row");
  const int classes = shape_.layer_sizes.back();
  std::int64_t first = batch.rows();
  Kokkos::parallel_reduce("skein::nn::check_labels", Range(0, batch.rows()),
                          FirstBadLabel{batch.labels, classes}, Kokkos::Min<std::int64_t>(first));
  if (first < batch.rows())
    throw std::invalid_argument("Mlp::correct: label of row " + std::to_string(first) + " is outside 0 .. " +
                                std::to_string(classes - 1));
  if (batch.rows() > 0 && static_cast<int>(batch.x.extent(1)) != shape_.layer_sizes.front())
    throw std::invalid_argument("Mlp::correct: batch x has the wrong number of columns");
  const int layers = shape_.layers();
  std::int64_t total = 0;
  for (std::int64_t begin = 0; begin < batch.rows(); begin += max_rows_) {
    const std::int64_t rows = std::min(max_rows_, batch.rows() - begin);
    forward(params, nullptr, batch.x.data() + begin * shape_.layer_sizes.front(), rows);
    std::int64_t count = 0;
    Kokkos::parallel_reduce(
        "skein::nn::correct", Range(0, rows),
        CountCorrect<Scalar>{
            ConstFlat<Scalar>(z_[layers - 1].data(), rows * classes),
            Kokkos::View<const int*, Kokkos::MemoryUnmanaged>(batch.labels.data() + begin, rows), classes},
        count);
    total += count;
  }
  return total;
}

template <class Scalar>
void Mlp<Scalar>::initialize(const vector_type& params, std::uint64_t seed) const {
  check_vector(params, "params");
  const auto& d = shape_.layer_sizes;
  for (int l = 0; l < shape_.layers(); ++l) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(d[l]));
    Kokkos::parallel_for("skein::nn::initialize",
                         Range(shape_.weight_offset(l), shape_.bias_offset(l) + d[l + 1]),
                         UniformFill<Scalar>{params, seed, bound});
  }
}

template class Mlp<float>;
template class Mlp<double>;

}  // namespace skein::solvers::nn
