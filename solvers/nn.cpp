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

// sigma(z), sigma'(z) and sigma''(z) (both: the two derivatives sharing their transcendental parts); the
// derivatives also get a = sigma(z) where that is cheaper (tanh).
template <Activation A>
struct Act;

template <>
struct Act<Activation::tanh> {
  // For float, glibc's tanhf runs expm1f and took a quarter of a float32 gradient's time; one exp in double
  // is a third of its cost and, rounded to float, matched tanh in double on 15M normal samples. Below
  // |z| = 1e-3 (where e - 1 would cancel) the Taylor series is exact to double precision.
  template <class S>
  KOKKOS_INLINE_FUNCTION static S value(S z) {
    if constexpr (std::is_same_v<S, float>) {
      const double x = z > 20.f ? 20.0 : (z < -20.f ? -20.0 : static_cast<double>(z));
      if (kmath::fabs(x) < 1e-3)
        return static_cast<float>(x - x * x * x * (1.0 / 3.0) + x * x * x * x * x * (2.0 / 15.0));
      const double e = kmath::exp(2.0 * x);
      return static_cast<float>((e - 1.0) / (e + 1.0));
    } else {
      return kmath::tanh(z);
    }
  }
  template <class S>
  KOKKOS_INLINE_FUNCTION static S first(S, S a) {
    return S(1) - a * a;
  }
  template <class S>
  KOKKOS_INLINE_FUNCTION static S second(S, S a) {
    return S(-2) * a * (S(1) - a * a);
  }
  template <class S>
  KOKKOS_INLINE_FUNCTION static void both(S z, S a, S& s1, S& s2) {
    s1 = first(z, a);
    s2 = second(z, a);
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
  template <class S>
  KOKKOS_INLINE_FUNCTION static void both(S z, S a, S& s1, S& s2) {
    s1 = first(z, a);
    s2 = S(0);
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
  template <class S>
  KOKKOS_INLINE_FUNCTION static void both(S z, S, S& s1, S& s2) {
    const S density = pdf(z);
    s1 = cdf(z) + z * density;
    s2 = density * (S(2) - z * z);
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
  template <class S>
  KOKKOS_INLINE_FUNCTION static void both(S z, S, S& s1, S& s2) {
    s1 = sigmoid(z);
    s2 = s1 * (S(1) - s1);
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

// Runs f(k, j) for every entry of a rows x width row-major block (k = i * width + j, j the column): one
// team per row, its columns as vector lanes (contiguous on a GPU, one vectorised loop on a CPU). A flat
// loop over k needs j = k % width, an integer division per entry that cost more than the arithmetic of
// the bias kernels (3 % of a float32 HVP).
template <class F>
struct PerRow {
  using Policy = Kokkos::TeamPolicy<Kokkos::DefaultExecutionSpace>;
  F f;
  int width;
  KOKKOS_INLINE_FUNCTION void operator()(const typename Policy::member_type& team) const {
    const std::int64_t row = static_cast<std::int64_t>(team.league_rank()) * width;
    Kokkos::parallel_for(Kokkos::TeamVectorRange(team, width), [&](const int j) { f(row + j, j); });
  }
};

template <class F>
void for_each_entry(const char* label, std::int64_t rows, int width, const F& f) {
  using Policy = typename PerRow<F>::Policy;
  Kokkos::parallel_for(label, Policy(static_cast<int>(rows), Kokkos::AUTO), PerRow<F>{f, width});
}

// z += b (per column); a = sigma(z) for hidden layers (a empty for the output layer).
template <Activation A, class Scalar>
struct AddBiasActivate {
  Flat<Scalar> z, a;
  ConstFlat<Scalar> b;
  bool hidden;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t k, const int j) const {
    const Scalar zk = z(k) + b(j);
    z(k) = zk;
    if (hidden) a(k) = Act<A>::value(zk);
  }
};

// R{z} += R{b} (the direction's bias part); R{a} = sigma'(z) R{z} for hidden layers.
template <Activation A, class Scalar>
struct RForward {
  Flat<Scalar> rz, ra;
  ConstFlat<Scalar> c, z, a;
  bool hidden;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t k, const int j) const {
    const Scalar rzk = rz(k) + c(j);
    rz(k) = rzk;
    if (hidden) ra(k) = Act<A>::first(z(k), a(k)) * rzk;
  }
};

// Backward through an activation: delta = dL/dz = g sigma'(z) from g = dL/da (g is kept: hvp needs it).
template <Activation A, class Scalar>
struct ActivationBackward {
  Flat<Scalar> delta;
  ConstFlat<Scalar> g, z, a;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t k) const {
    delta(k) = g(k) * Act<A>::first(z(k), a(k));
  }
};

// The R-backward (hvp) or J^T (ggn_vp) step through an activation, in place on rg:
// R{dL/dz} = R{g} sigma'(z) + scale g sigma''(z) R{z}; ggn_vp drops the second-derivative term.
template <Activation A, class Scalar>
struct ActivationRBackward {
  Flat<Scalar> rg;
  ConstFlat<Scalar> g, z, a, rz;
  Scalar scale;
  bool second_order;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t k) const {
    if (second_order) {
      Scalar s1, s2;
      Act<A>::both(z(k), a(k), s1, s2);
      rg(k) = rg(k) * s1 + scale * g(k) * s2 * rz(k);
    } else {
      rg(k) *= Act<A>::first(z(k), a(k));
    }
  }
};

// Per row of the outputs f: the loss (summed in double), and optionally delta = dl/df (unweighted: it is
// kept for later products, whose weight may differ) and hrf = w (d^2 l/df^2) R{f}, the output signals of
// the backward and R-backward passes.
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
        if (want_delta) delta(row + j) = static_cast<Scalar>(p - (j == y ? 1.0 : 0.0));
        if (want_hrf)
          hrf(row + j) = static_cast<Scalar>(weight * p * (static_cast<double>(rf(row + j)) - p_rf));
      }
    } else {
      const double scale = 2.0 / width;
      double l = 0.0;
      for (int j = 0; j < width; ++j) {
        const double r = static_cast<double>(f(row + j)) - static_cast<double>(targets(row + j));
        l += r * r;
        if (want_delta) delta(row + j) = static_cast<Scalar>(scale * r);
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

// Number of entries where two arrays differ (NaN differs from itself, so NaN state is never reused).
template <class T>
struct CountDifferences {
  Kokkos::View<const T*, Kokkos::MemoryUnmanaged> x, y;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i, std::int64_t& count) const {
    if (!(x(i) == y(i))) ++count;
  }
};

template <class T>
bool same_values(const T* x, const T* y, std::int64_t n) {
  std::int64_t count = 0;
  Kokkos::parallel_reduce("skein::nn::compare", Range(0, n),
                          CountDifferences<T>{Kokkos::View<const T*, Kokkos::MemoryUnmanaged>(x, n),
                                              Kokkos::View<const T*, Kokkos::MemoryUnmanaged>(y, n)},
                          count);
  return count == 0;
}

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
  auto matrix = [&](const char* label, int width) {
    return matrix_type(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("skein::nn::") + label),
                       max_rows_, width);
  };
  z_.resize(layers);
  a_.resize(layers);
  delta_.resize(layers);
  g_.resize(layers);
  for (int l = 0; l < layers; ++l) {
    z_[l] = matrix("z", d[l + 1]);
    delta_[l] = matrix("delta", d[l + 1]);
    if (l > 0) a_[l] = matrix("a", d[l]);
    if (l + 1 < layers) g_[l] = matrix("g", d[l + 1]);
  }
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
  const bool r_pass = pass == Pass::hvp || pass == Pass::ggn;
  if (r_pass) {
    check_vector(v, "v");
    allocate_r_buffers();
  }
  if (pass != Pass::loss) check_vector(out, pass == Pass::gradient ? "grad" : "the product");
  check_batch(batch);
  const std::int64_t d0 = shape_.layer_sizes.front();
  if (r_pass && batch.rows() > 0 && batch.rows() <= max_rows_) {
    // Lanczos and the trace estimators multiply many vectors at the same parameters and batch: the forward
    // (and backward) pass is kept and reused while both are unchanged, so a product then costs only the
    // R-passes (5 GEMMs per hidden layer instead of 8).
    const State needed = pass == Pass::hvp ? State::backward : State::forward;
    if (!holds(needed, params, batch)) {
      state_ = State::none;
      forward(params, batch.x.data(), batch.rows());
      if (pass == Pass::hvp) backward(params, batch, 0, batch.rows(), weight, nullptr);
      remember(needed, params, batch);
    }
    r_forward(params, v, batch.x.data(), batch.rows());
    r_backward(pass, params, v, batch, 0, batch.rows(), weight, out);
    return 0.0;
  }
  state_ = State::none;
  double total = 0.0;
  for (std::int64_t begin = 0; begin < batch.rows(); begin += max_rows_) {
    const std::int64_t rows = std::min(max_rows_, batch.rows() - begin);
    const Scalar* x = batch.x.data() + begin * d0;
    forward(params, x, rows);
    switch (pass) {
      case Pass::loss:
        total += output_signals(batch, begin, rows, weight, false, false);
        break;
      case Pass::gradient:
        total += backward(params, batch, begin, rows, weight, &out);
        break;
      case Pass::hvp:
        backward(params, batch, begin, rows, weight, nullptr);
        r_forward(params, v, x, rows);
        r_backward(pass, params, v, batch, begin, rows, weight, out);
        break;
      case Pass::ggn:
        r_forward(params, v, x, rows);
        r_backward(pass, params, v, batch, begin, rows, weight, out);
        break;
    }
  }
  return total;
}

template <class Scalar>
bool Mlp<Scalar>::holds(State needed, const vector_type& params, const Batch<Scalar>& batch) const {
  if (static_cast<int>(state_) < static_cast<int>(needed) || batch.rows() != cached_rows_) return false;
  const std::int64_t rows = batch.rows();
  const auto& d = shape_.layer_sizes;
  if (!same_values(params.data(), cached_params_.data(), shape_.parameter_count())) return false;
  if (!same_values(batch.x.data(), cached_x_.data(), rows * d.front())) return false;
  if (shape_.loss == Loss::cross_entropy)
    return same_values(batch.labels.data(), cached_labels_.data(), rows);
  return same_values(batch.targets.data(), cached_targets_.data(), rows * d.back());
}

template <class Scalar>
void Mlp<Scalar>::remember(State state, const vector_type& params, const Batch<Scalar>& batch) {
  const std::int64_t rows = batch.rows();
  const auto& d = shape_.layer_sizes;
  if (cached_params_.extent(0) == 0) {
    cached_params_ = vector_type(Kokkos::view_alloc(Kokkos::WithoutInitializing, "skein::nn::cached_params"),
                                 shape_.parameter_count());
    cached_x_ = Kokkos::View<Scalar*>(Kokkos::view_alloc(Kokkos::WithoutInitializing, "skein::nn::cached_x"),
                                      max_rows_ * d.front());
    if (shape_.loss == Loss::cross_entropy)
      cached_labels_ = Kokkos::View<int*>("skein::nn::cached_labels", max_rows_);
    else
      cached_targets_ = Kokkos::View<Scalar*>("skein::nn::cached_targets", max_rows_ * d.back());
  }
  Kokkos::deep_copy(cached_params_, params);
  using Unmanaged = Kokkos::View<const Scalar*, Kokkos::MemoryUnmanaged>;
  Kokkos::deep_copy(Kokkos::subview(cached_x_, Kokkos::pair<std::int64_t, std::int64_t>(0, rows * d.front())),
                    Unmanaged(batch.x.data(), rows * d.front()));
  if (shape_.loss == Loss::cross_entropy)
    Kokkos::deep_copy(Kokkos::subview(cached_labels_, Kokkos::pair<std::int64_t, std::int64_t>(0, rows)),
                      Kokkos::View<const int*, Kokkos::MemoryUnmanaged>(batch.labels.data(), rows));
  else
    Kokkos::deep_copy(
        Kokkos::subview(cached_targets_, Kokkos::pair<std::int64_t, std::int64_t>(0, rows * d.back())),
        Unmanaged(batch.targets.data(), rows * d.back()));
  cached_rows_ = rows;
  state_ = state;
}

// Shapes within a chunk of `rows` rows: the input a_0 = x is rows x d0; layer l's z_l, R{z_l}, delta_l =
// dl/dz_l (unweighted) and R{delta_l} are rows x d_{l+1}; for l >= 1, a_l = sigma(z_{l-1}) and R{a_l};
// g_[l] = dl/da_{l+1} (before the activation's derivative, kept for hvp's sigma'' term).
//
// GEMMs per layer; dense_blas runs them through CBLAS on host memory (a device build routes dense_blas to
// KokkosBlas / cuBLAS, nothing here changes):
//   gradient:  z = a W^T;  dW += w delta^T a;  g = delta W                                  (3; 2 for l = 0)
//   hvp:       the gradient's forward and g, then Rz = a V^T + Ra W^T;  HW += Rdelta^T a + w delta^T Ra;
//              Rg = Rdelta W + w delta V                                                   (8; 3 for l = 0)
//              of which 5 (2 for l = 0) when the forward and backward state is reused
//   ggn_vp:    z = a W^T;  Rz = a V^T + Ra W^T;  GW += u^T a;  u = u W                      (5; 3 for l = 0)
// The gradient's own dW product is not part of hvp: the Hessian product needs delta, not dl/dW.

template <class Scalar>
void Mlp<Scalar>::forward(const vector_type& params, const Scalar* x_rows, std::int64_t rows) {
  using blas::Op;
  const int layers = shape_.layers();
  const auto& d = shape_.layer_sizes;
  const ConstMat<Scalar> x(x_rows, rows, d[0]);
  for (int l = 0; l < layers; ++l) {
    const int width = d[l + 1];
    const bool hidden = l + 1 < layers;
    const auto input = l == 0 ? x : ConstMat<Scalar>(a_[l].data(), rows, d[l]);
    blas::gemm(Op::none, Op::transpose, Scalar(1), input, weights(params, l), Scalar(0),
               Mat<Scalar>(z_[l].data(), rows, width));
    with_activation(shape_.activation, [&](auto activation) {
      for_each_entry("skein::nn::forward", rows, width,
                     AddBiasActivate<decltype(activation)::value, Scalar>{
                         Flat<Scalar>(z_[l].data(), rows * width),
                         hidden ? Flat<Scalar>(a_[l + 1].data(), rows * width) : Flat<Scalar>(),
                         ConstFlat<Scalar>(params.data() + shape_.bias_offset(l), width), hidden});
    });
  }
}

template <class Scalar>
double Mlp<Scalar>::output_signals(const Batch<Scalar>& batch, std::int64_t begin, std::int64_t rows,
                                   double weight, bool want_delta, bool want_hrf) {
  const int layers = shape_.layers();
  const int outputs = shape_.layer_sizes.back();
  OutputLoss<Scalar> output;
  output.f = ConstFlat<Scalar>(z_[layers - 1].data(), rows * outputs);
  output.width = outputs;
  output.cross_entropy = shape_.loss == Loss::cross_entropy;
  output.want_delta = want_delta;
  output.want_hrf = want_hrf;
  output.weight = weight;
  if (output.cross_entropy)
    output.labels = Kokkos::View<const int*, Kokkos::MemoryUnmanaged>(batch.labels.data() + begin, rows);
  else
    output.targets = ConstFlat<Scalar>(batch.targets.data() + begin * outputs, rows * outputs);
  if (want_delta) output.delta = Flat<Scalar>(delta_[layers - 1].data(), rows * outputs);
  if (want_hrf) {
    output.rf = ConstFlat<Scalar>(rz_[layers - 1].data(), rows * outputs);
    output.hrf = Flat<Scalar>(rdelta_[0].data(), rows * outputs);
  }
  double loss_sum = 0.0;
  Kokkos::parallel_reduce("skein::nn::output", Range(0, rows), output, loss_sum);
  return loss_sum;
}

template <class Scalar>
double Mlp<Scalar>::backward(const vector_type& params, const Batch<Scalar>& batch, std::int64_t begin,
                             std::int64_t rows, double weight, const vector_type* grad) {
  using blas::Op;
  const int layers = shape_.layers();
  const auto& d = shape_.layer_sizes;
  const double loss_sum = output_signals(batch, begin, rows, weight, true, false);
  const ConstMat<Scalar> x(batch.x.data() + begin * d[0], rows, d[0]);
  for (int l = layers - 1; l >= 0; --l) {
    const ConstMat<Scalar> delta(delta_[l].data(), rows, d[l + 1]);
    if (grad != nullptr) {
      const auto input = l == 0 ? x : ConstMat<Scalar>(a_[l].data(), rows, d[l]);
      blas::gemm(Op::transpose, Op::none, Scalar(weight), delta, input, Scalar(1), weights(*grad, l));
      blas::gemv(Op::transpose, Scalar(weight), delta, ConstFlat<Scalar>(ones_.data(), rows), Scalar(1),
                 Flat<Scalar>(grad->data() + shape_.bias_offset(l), d[l + 1]));
    }
    if (l == 0) break;
    const int width = d[l];
    blas::gemm(Op::none, Op::none, Scalar(1), delta, weights(params, l), Scalar(0),
               Mat<Scalar>(g_[l - 1].data(), rows, width));
    if (l == 1 && grad == nullptr) break;  // delta_0 only feeds the gradient of W_0, b_0
    with_activation(shape_.activation, [&](auto activation) {
      Kokkos::parallel_for("skein::nn::backward", Range(0, rows * width),
                           ActivationBackward<decltype(activation)::value, Scalar>{
                               Flat<Scalar>(delta_[l - 1].data(), rows * width),
                               ConstFlat<Scalar>(g_[l - 1].data(), rows * width),
                               ConstFlat<Scalar>(z_[l - 1].data(), rows * width),
                               ConstFlat<Scalar>(a_[l].data(), rows * width)});
    });
  }
  return loss_sum;
}

template <class Scalar>
void Mlp<Scalar>::r_forward(const vector_type& params, const vector_type& v, const Scalar* x_rows,
                            std::int64_t rows) {
  using blas::Op;
  const int layers = shape_.layers();
  const auto& d = shape_.layer_sizes;
  const ConstMat<Scalar> x(x_rows, rows, d[0]);
  for (int l = 0; l < layers; ++l) {
    const int width = d[l + 1];
    const bool hidden = l + 1 < layers;
    const auto input = l == 0 ? x : ConstMat<Scalar>(a_[l].data(), rows, d[l]);
    const Mat<Scalar> rz(rz_[l].data(), rows, width);
    blas::gemm(Op::none, Op::transpose, Scalar(1), input, weights(v, l), Scalar(0), rz);
    if (l > 0)
      blas::gemm(Op::none, Op::transpose, Scalar(1), ConstMat<Scalar>(ra_[l].data(), rows, d[l]),
                 weights(params, l), Scalar(1), rz);
    with_activation(shape_.activation, [&](auto activation) {
      for_each_entry(
          "skein::nn::r_forward", rows, width,
          RForward<decltype(activation)::value, Scalar>{
              Flat<Scalar>(rz_[l].data(), rows * width),
              hidden ? Flat<Scalar>(ra_[l + 1].data(), rows * width) : Flat<Scalar>(),
              ConstFlat<Scalar>(v.data() + shape_.bias_offset(l), width),
              ConstFlat<Scalar>(z_[l].data(), rows * width),
              hidden ? ConstFlat<Scalar>(a_[l + 1].data(), rows * width) : ConstFlat<Scalar>(), hidden});
    });
  }
}

template <class Scalar>
void Mlp<Scalar>::r_backward(Pass pass, const vector_type& params, const vector_type& v,
                             const Batch<Scalar>& batch, std::int64_t begin, std::int64_t rows, double weight,
                             const vector_type& out) {
  using blas::Op;
  const int layers = shape_.layers();
  const auto& d = shape_.layer_sizes;
  const bool hessian = pass == Pass::hvp;
  output_signals(batch, begin, rows, weight, false, true);
  const ConstMat<Scalar> x(batch.x.data() + begin * d[0], rows, d[0]);
  int cur = 0;
  for (int l = layers - 1; l >= 0; --l) {
    const ConstMat<Scalar> rdelta(rdelta_[cur].data(), rows, d[l + 1]);
    const ConstMat<Scalar> delta(delta_[l].data(), rows, d[l + 1]);
    const auto input = l == 0 ? x : ConstMat<Scalar>(a_[l].data(), rows, d[l]);
    const auto out_w = weights(out, l);
    blas::gemm(Op::transpose, Op::none, Scalar(1), rdelta, input, Scalar(1), out_w);
    if (hessian && l > 0)
      blas::gemm(Op::transpose, Op::none, Scalar(weight), delta, ConstMat<Scalar>(ra_[l].data(), rows, d[l]),
                 Scalar(1), out_w);
    blas::gemv(Op::transpose, Scalar(1), rdelta, ConstFlat<Scalar>(ones_.data(), rows), Scalar(1),
               Flat<Scalar>(out.data() + shape_.bias_offset(l), d[l + 1]));
    if (l == 0) break;
    const int next = 1 - cur;
    const int width = d[l];
    const Mat<Scalar> rg(rdelta_[next].data(), rows, width);
    blas::gemm(Op::none, Op::none, Scalar(1), rdelta, weights(params, l), Scalar(0), rg);
    if (hessian) blas::gemm(Op::none, Op::none, Scalar(weight), delta, weights(v, l), Scalar(1), rg);
    with_activation(shape_.activation, [&](auto activation) {
      Kokkos::parallel_for("skein::nn::r_backward", Range(0, rows * width),
                           ActivationRBackward<decltype(activation)::value, Scalar>{
                               Flat<Scalar>(rdelta_[next].data(), rows * width),
                               ConstFlat<Scalar>(g_[l - 1].data(), rows * width),
                               ConstFlat<Scalar>(z_[l - 1].data(), rows * width),
                               ConstFlat<Scalar>(a_[l].data(), rows * width),
                               ConstFlat<Scalar>(rz_[l - 1].data(), rows * width), Scalar(weight), hessian});
    });
    cur = next;
  }
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
  state_ = State::none;
  std::int64_t total = 0;
  for (std::int64_t begin = 0; begin < batch.rows(); begin += max_rows_) {
    const std::int64_t rows = std::min(max_rows_, batch.rows() - begin);
    forward(params, batch.x.data() + begin * shape_.layer_sizes.front(), rows);
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
