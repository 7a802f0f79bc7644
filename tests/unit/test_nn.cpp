// solvers/nn: loss against a plain reference network and a hand computation, gradient and Hessian-vector
// product against central finite differences, Gauss-Newton product against J^T H_out J formed densely,
// symmetry, float32 against float64, chunking, initialisation and the error messages.
#include "engine/random.hpp"
#include "solvers/nn.hpp"

#include <gtest/gtest.h>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

using namespace skein::solvers::nn;

namespace {

class KokkosEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (!Kokkos::is_initialized()) Kokkos::initialize();
  }
  void TearDown() override {
    if (Kokkos::is_initialized()) Kokkos::finalize();
  }
};
[[maybe_unused]] const auto* const kokkos_environment =
    ::testing::AddGlobalTestEnvironment(new KokkosEnvironment);

const Activation kActivations[] = {Activation::tanh, Activation::relu, Activation::gelu,
                                   Activation::softplus};
const Loss kLosses[] = {Loss::cross_entropy, Loss::mse};

template <class Scalar>
Kokkos::View<Scalar*> to_view(const std::vector<double>& values) {
  Kokkos::View<Scalar*> v("v", values.size());
  auto host = Kokkos::create_mirror_view(v);
  for (std::size_t i = 0; i < values.size(); ++i) host(i) = static_cast<Scalar>(values[i]);
  Kokkos::deep_copy(v, host);
  return v;
}

template <class Scalar>
std::vector<double> to_vector(const Kokkos::View<Scalar*>& v) {
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
  return std::vector<double>(host.data(), host.data() + host.extent(0));
}

double norm(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

double relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return norm(d) / std::max(norm(b), 1e-300);
}

std::vector<double> normal_vector(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = scale * skein::engine::standard_normal(seed, 7u, i);
  return v;
}

// Host data of a batch; the Views are made per precision.
struct HostData {
  int rows = 0, inputs = 0, outputs = 0;
  std::vector<double> x, targets;
  std::vector<int> labels;
};

HostData random_data(const MlpShape& shape, int rows, std::uint64_t seed) {
  HostData data;
  data.rows = rows;
  data.inputs = shape.layer_sizes.front();
  data.outputs = shape.layer_sizes.back();
  data.x = normal_vector(static_cast<std::size_t>(rows) * data.inputs, seed);
  data.targets = normal_vector(static_cast<std::size_t>(rows) * data.outputs, seed + 1);
  for (int i = 0; i < rows; ++i)
    data.labels.push_back(static_cast<int>(skein::engine::random_bits(seed, 9u, i) % data.outputs));
  return data;
}

template <class Scalar>
Batch<Scalar> make_batch(const HostData& data) {
  Kokkos::View<Scalar**, Kokkos::LayoutRight> x("x", data.rows, data.inputs);
  Kokkos::View<Scalar**, Kokkos::LayoutRight> targets("targets", data.rows, data.outputs);
  Kokkos::View<int*> labels("labels", data.rows);
  auto hx = Kokkos::create_mirror_view(x);
  auto ht = Kokkos::create_mirror_view(targets);
  auto hl = Kokkos::create_mirror_view(labels);
  for (int i = 0; i < data.rows; ++i) {
    for (int j = 0; j < data.inputs; ++j) hx(i, j) = static_cast<Scalar>(data.x[i * data.inputs + j]);
    for (int j = 0; j < data.outputs; ++j) ht(i, j) = static_cast<Scalar>(data.targets[i * data.outputs + j]);
    hl(i) = data.labels[i];
  }
  Kokkos::deep_copy(x, hx);
  Kokkos::deep_copy(targets, ht);
  Kokkos::deep_copy(labels, hl);
  return Batch<Scalar>{x, labels, targets};
}

// ---- A plain reference network on std::vector, written from the definitions (no R-operator). ----

double activate(Activation a, double z) {
  switch (a) {
    case Activation::tanh:
      return std::tanh(z);
    case Activation::relu:
      return z > 0 ? z : 0.0;
    case Activation::gelu:
      return 0.5 * z * (1.0 + std::erf(z / std::sqrt(2.0)));
    case Activation::softplus:
      return std::log(1.0 + std::exp(z));
  }
  return 0.0;
}

// Outputs (logits or predictions) of one sample.
std::vector<double> reference_outputs(const MlpShape& shape, const std::vector<double>& p, const double* x) {
  std::vector<double> a(x, x + shape.layer_sizes.front());
  for (int l = 0; l < shape.layers(); ++l) {
    const int in = shape.layer_sizes[l], out = shape.layer_sizes[l + 1];
    std::vector<double> z(out);
    for (int i = 0; i < out; ++i) {
      double s = p[shape.bias_offset(l) + i];
      for (int j = 0; j < in; ++j)
        s += p[shape.weight_offset(l) + static_cast<std::int64_t>(i) * in + j] * a[j];
      z[i] = l + 1 < shape.layers() ? activate(shape.activation, s) : s;
    }
    a = z;
  }
  return a;
}

double reference_sample_loss(const MlpShape& shape, const std::vector<double>& f, const HostData& data,
                             int i) {
  if (shape.loss == Loss::cross_entropy) {
    double s = 0.0;
    for (double v : f) s += std::exp(v);
    return std::log(s) - f[data.labels[i]];
  }
  double s = 0.0;
  for (int j = 0; j < data.outputs; ++j) s += std::pow(f[j] - data.targets[i * data.outputs + j], 2);
  return s / data.outputs;
}

double reference_loss(const MlpShape& shape, const std::vector<double>& p, const HostData& data) {
  double total = 0.0;
  for (int i = 0; i < data.rows; ++i)
    total += reference_sample_loss(shape, reference_outputs(shape, p, &data.x[i * data.inputs]), data, i);
  return total / data.rows;
}

// ---- Thin wrappers: mean loss and its derivatives at double precision. ----

struct Net {
  MlpShape shape;
  HostData data;
  Mlp<double> mlp;
  Batch<double> batch;
  Net(MlpShape s, int rows, std::uint64_t seed, std::int64_t max_rows = 1024)
      : shape(s), data(random_data(s, rows, seed)), mlp(s, max_rows), batch(make_batch<double>(data)) {}
  double weight() const { return 1.0 / data.rows; }
  double loss(const std::vector<double>& p) { return mlp.loss(to_view<double>(p), batch, weight()); }
  std::vector<double> gradient(const std::vector<double>& p) {
    auto g = to_view<double>(std::vector<double>(p.size(), 0.0));
    mlp.gradient(to_view<double>(p), batch, weight(), g);
    return to_vector(g);
  }
  std::vector<double> hvp(const std::vector<double>& p, const std::vector<double>& v) {
    auto hv = to_view<double>(std::vector<double>(p.size(), 0.0));
    mlp.hvp(to_view<double>(p), batch, weight(), to_view<double>(v), hv);
    return to_vector(hv);
  }
  std::vector<double> ggn(const std::vector<double>& p, const std::vector<double>& v) {
    auto gv = to_view<double>(std::vector<double>(p.size(), 0.0));
    mlp.ggn_vp(to_view<double>(p), batch, weight(), to_view<double>(v), gv);
    return to_vector(gv);
  }
  std::vector<double> parameters(std::uint64_t seed) {
    Kokkos::View<double*> p("p", shape.parameter_count());
    mlp.initialize(p, seed);
    return to_vector(p);
  }
};

MlpShape make_shape(std::vector<int> sizes, Activation a, Loss l) {
  MlpShape shape;
  shape.layer_sizes = std::move(sizes);
  shape.activation = a;
  shape.loss = l;
  return shape;
}

std::string label(Activation a, Loss l) {
  return to_string(a) + " / " + to_string(l);
}

// ---------------------------------------------------------------------------------------------------------

TEST(Nn, LayoutFollowsPyTorchAndLossMatchesAHandComputation) {
  // 2 -> 2 -> 2 with relu: W0 = [[1, -1], [0.5, 2]], b0 = [0, -1], W1 = [[1, 0], [-1, 1]], b1 = [0.5, 0].
  MlpShape shape = make_shape({2, 2, 2}, Activation::relu, Loss::cross_entropy);
  EXPECT_EQ(shape.layers(), 2);
  EXPECT_EQ(shape.parameter_count(), 12);
  EXPECT_EQ(shape.weight_offset(0), 0);
  EXPECT_EQ(shape.bias_offset(0), 4);
  EXPECT_EQ(shape.weight_offset(1), 6);
  EXPECT_EQ(shape.bias_offset(1), 10);
  const std::vector<double> p = {1, -1, 0.5, 2, 0, -1, 1, 0, -1, 1, 0.5, 0};
  HostData data;
  data.rows = 2;
  data.inputs = 2;
  data.outputs = 2;
  data.x = {1, 2, -1, 0.5};
  data.labels = {0, 0};
  data.targets = {1, 3, 0, 0};
  // Sample 1: z0 = [-1, 3.5], a = [0, 3.5], f = [0.5, 3.5]. Sample 2: z0 = [-1.5, -0.5], a = [0, 0],
  // f = [0.5, 0]. Cross-entropy with labels 0, 0: (3 + log(1 + e^-3)) and log(1 + e^-0.5).
  const double expected_ce = (3.0 + std::log(1.0 + std::exp(-3.0)) + std::log(1.0 + std::exp(-0.5))) / 2.0;
  Mlp<double> mlp(shape, 4);
  auto batch = make_batch<double>(data);
  EXPECT_NEAR(mlp.loss(to_view<double>(p), batch, 0.5), expected_ce, 1e-15);
  EXPECT_EQ(mlp.correct(to_view<double>(p), batch), 1);  // argmax [1, 0] against labels [0, 0]
  // MSE against targets [1, 3] and [0, 0]: (0.25 + 0.25) / 2 and (0.25 + 0) / 2, mean 0.1875.
  shape.loss = Loss::mse;
  Mlp<double> mse(shape, 4);
  EXPECT_NEAR(mse.loss(to_view<double>(p), batch, 0.5), 0.1875, 1e-15);
  Mlp<float> mse_float(shape, 1);
  EXPECT_NEAR(mse_float.loss(to_view<float>(p), make_batch<float>(data), 0.5), 0.1875, 1e-7);
}

TEST(Nn, LossMatchesAReferenceNetworkForEveryActivation) {
  for (Activation a : kActivations) {
    for (Loss l : kLosses) {
      Net net(make_shape({5, 7, 6, 4}, a, l), 11, 3);
      const auto p = net.parameters(17);
      EXPECT_NEAR(net.loss(p), reference_loss(net.shape, p, net.data), 1e-13) << label(a, l);
    }
  }
}

// relu is differentiated as autograd does; with these seeds no pre-activation lies within a step of the
// kink (one that did would show as an O(1) difference, not a small one).
TEST(Nn, GradientMatchesCentralDifferences) {
  for (Activation a : kActivations) {
    for (Loss l : kLosses) {
      Net net(make_shape({5, 7, 6, 4}, a, l), 9, 5);
      auto p = net.parameters(21);
      const auto g = net.gradient(p);
      std::vector<double> fd(p.size());
      const double h = 1e-5;
      for (std::size_t i = 0; i < p.size(); ++i) {
        const double saved = p[i];
        p[i] = saved + h;
        const double up = net.loss(p);
        p[i] = saved - h;
        const double down = net.loss(p);
        p[i] = saved;
        fd[i] = (up - down) / (2 * h);
      }
      EXPECT_LT(relative_difference(g, fd), 1e-6) << label(a, l);
      // The returned loss part is the loss itself.
      auto gv = to_view<double>(std::vector<double>(p.size(), 0.0));
      EXPECT_NEAR(net.mlp.gradient(to_view<double>(p), net.batch, net.weight(), gv), net.loss(p), 1e-14);
    }
  }
}

TEST(Nn, HvpMatchesCentralDifferencesOfTheGradient) {
  for (Activation a : kActivations) {
    for (Loss l : kLosses) {
      Net net(make_shape({5, 7, 6, 4}, a, l), 9, 6);
      const auto p = net.parameters(23);
      for (std::uint64_t direction = 0; direction < 2; ++direction) {
        auto v = normal_vector(p.size(), 100 + direction);
        const double scale = 1.0 / norm(v);
        for (double& x : v) x *= scale;
        const auto hv = net.hvp(p, v);
        const double h = 1e-5;
        std::vector<double> up = p, down = p;
        for (std::size_t i = 0; i < p.size(); ++i) {
          up[i] += h * v[i];
          down[i] -= h * v[i];
        }
        const auto gu = net.gradient(up), gd = net.gradient(down);
        std::vector<double> fd(p.size());
        for (std::size_t i = 0; i < p.size(); ++i) fd[i] = (gu[i] - gd[i]) / (2 * h);
        EXPECT_LT(relative_difference(hv, fd), 1e-6) << label(a, l) << " direction " << direction;
      }
    }
  }
}

// The Gauss-Newton matrix (1/n) sum_i J_i^T H_i J_i with J_i the Jacobian of sample i's outputs (by central
// differences of the reference network) and H_i the analytic loss Hessian in the outputs.
std::vector<double> dense_ggn(const MlpShape& shape, std::vector<double> p, const HostData& data) {
  const std::size_t n = p.size();
  const int outputs = data.outputs;
  std::vector<double> g(n * n, 0.0);
  for (int s = 0; s < data.rows; ++s) {
    const double* x = &data.x[s * data.inputs];
    std::vector<double> jac(static_cast<std::size_t>(outputs) * n);  // outputs x n
    const double h = 1e-6;
    for (std::size_t k = 0; k < n; ++k) {
      const double saved = p[k];
      p[k] = saved + h;
      const auto up = reference_outputs(shape, p, x);
      p[k] = saved - h;
      const auto down = reference_outputs(shape, p, x);
      p[k] = saved;
      for (int o = 0; o < outputs; ++o) jac[o * n + k] = (up[o] - down[o]) / (2 * h);
    }
    std::vector<double> hout(static_cast<std::size_t>(outputs) * outputs, 0.0);
    if (shape.loss == Loss::cross_entropy) {
      auto f = reference_outputs(shape, p, x);
      double sum = 0.0;
      for (double v : f) sum += std::exp(v);
      for (int i = 0; i < outputs; ++i)
        for (int j = 0; j < outputs; ++j)
          hout[i * outputs + j] = (i == j ? std::exp(f[i]) / sum : 0.0) - std::exp(f[i] + f[j]) / (sum * sum);
    } else {
      for (int i = 0; i < outputs; ++i) hout[i * outputs + i] = 2.0 / outputs;
    }
    for (int i = 0; i < outputs; ++i)
      for (int j = 0; j < outputs; ++j) {
        const double w = hout[i * outputs + j] / data.rows;
        if (w == 0.0) continue;
        for (std::size_t a = 0; a < n; ++a)
          for (std::size_t b = 0; b < n; ++b) g[a * n + b] += w * jac[i * n + a] * jac[j * n + b];
      }
  }
  return g;
}

TEST(Nn, GgnProductMatchesDenseJacobianForm) {
  for (Activation a : {Activation::tanh, Activation::gelu, Activation::softplus}) {
    for (Loss l : kLosses) {
      Net net(make_shape({3, 5, 4, 3}, a, l), 6, 8);
      const auto p = net.parameters(29);
      const auto g = dense_ggn(net.shape, p, net.data);
      const std::size_t n = p.size();
      for (std::uint64_t direction = 0; direction < 3; ++direction) {
        const auto v = normal_vector(n, 200 + direction);
        std::vector<double> expected(n, 0.0);
        for (std::size_t i = 0; i < n; ++i)
          for (std::size_t j = 0; j < n; ++j) expected[i] += g[i * n + j] * v[j];
        EXPECT_LT(relative_difference(net.ggn(p, v), expected), 1e-7) << label(a, l);
      }
    }
  }
}

TEST(Nn, GgnEqualsHessianForALinearModelWithMse) {
  // One dense layer with mse: the loss is quadratic in the parameters, so H = GGN exactly.
  Net net(make_shape({4, 3}, Activation::tanh, Loss::mse), 10, 9);
  const auto p = net.parameters(31);
  const auto v = normal_vector(p.size(), 300);
  EXPECT_LT(relative_difference(net.ggn(p, v), net.hvp(p, v)), 1e-14);
}

TEST(Nn, DenseHessianFromProductsIsSymmetric) {
  for (Activation a : kActivations) {
    const Loss l = a == Activation::gelu ? Loss::mse : Loss::cross_entropy;
    Net net(make_shape({6, 10, 8, 3}, a, l), 20, 10);
    const auto p = net.parameters(37);
    const std::size_t n = p.size();
    ASSERT_EQ(n, 185u);
    std::vector<double> h(n * n);
    double largest = 0.0;
    for (std::size_t j = 0; j < n; ++j) {
      std::vector<double> e(n, 0.0);
      e[j] = 1.0;
      const auto column = net.hvp(p, e);
      for (std::size_t i = 0; i < n; ++i) {
        h[i * n + j] = column[i];
        largest = std::max(largest, std::abs(column[i]));
      }
    }
    double asymmetry = 0.0;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < i; ++j)
        asymmetry = std::max(asymmetry, std::abs(h[i * n + j] - h[j * n + i]));
    EXPECT_LT(asymmetry, 1e-12 * largest) << to_string(a);
    EXPECT_GT(largest, 1e-3);
    const auto u = normal_vector(n, 400), v = normal_vector(n, 401);
    EXPECT_NEAR(dot(u, net.hvp(p, v)), dot(v, net.hvp(p, u)), 1e-12 * norm(u) * norm(v) * largest * 10);
  }
}

TEST(Nn, Float32AgreesWithFloat64) {
  for (Activation a : kActivations) {
    for (Loss l : kLosses) {
      const MlpShape shape = make_shape({20, 32, 16, 5}, a, l);
      const HostData data = random_data(shape, 50, 11);
      Mlp<double> md(shape, 64);
      Mlp<float> mf(shape, 64);
      Kokkos::View<double*> pd("p", shape.parameter_count());
      md.initialize(pd, 41);
      const auto p = to_vector(pd);
      const auto v = normal_vector(p.size(), 500);
      const auto bd = make_batch<double>(data);
      const auto bf = make_batch<float>(data);
      const double w = 1.0 / data.rows;
      auto hd = to_view<double>(std::vector<double>(p.size(), 0.0));
      auto hf = to_view<float>(std::vector<double>(p.size(), 0.0));
      md.hvp(pd, bd, w, to_view<double>(v), hd);
      mf.hvp(to_view<float>(p), bf, w, to_view<float>(v), hf);
      EXPECT_LT(relative_difference(to_vector(hf), to_vector(hd)), 1e-4) << label(a, l);
      auto nd = to_view<double>(std::vector<double>(p.size(), 0.0));
      auto nf = to_view<float>(std::vector<double>(p.size(), 0.0));
      md.ggn_vp(pd, bd, w, to_view<double>(v), nd);
      mf.ggn_vp(to_view<float>(p), bf, w, to_view<float>(v), nf);
      EXPECT_LT(relative_difference(to_vector(nf), to_vector(nd)), 1e-4) << label(a, l);
      auto gd = to_view<double>(std::vector<double>(p.size(), 0.0));
      auto gf = to_view<float>(std::vector<double>(p.size(), 0.0));
      const double ld = md.gradient(pd, bd, w, gd);
      const double lf = mf.gradient(to_view<float>(p), bf, w, gf);
      EXPECT_NEAR(lf, ld, 1e-5 * std::abs(ld)) << label(a, l);
      EXPECT_LT(relative_difference(to_vector(gf), to_vector(gd)), 1e-5) << label(a, l);
    }
  }
}

TEST(Nn, ChunksGiveTheSameSumsAndCallsAccumulate) {
  for (Loss l : kLosses) {
    const MlpShape shape = make_shape({6, 9, 7, 4}, Activation::gelu, l);
    const HostData data = random_data(shape, 50, 12);
    const auto batch = make_batch<double>(data);
    Mlp<double> whole(shape, 50), chunked(shape, 7);
    Kokkos::View<double*> p("p", shape.parameter_count());
    whole.initialize(p, 43);
    const auto v = to_view<double>(normal_vector(p.extent(0), 600));
    const std::vector<double> zeros(p.extent(0), 0.0);
    EXPECT_NEAR(chunked.loss(p, batch, 0.02), whole.loss(p, batch, 0.02), 1e-14);
    EXPECT_EQ(chunked.correct(p, batch), whole.correct(p, batch));
    auto g1 = to_view<double>(zeros), g2 = to_view<double>(zeros);
    whole.gradient(p, batch, 0.02, g1);
    chunked.gradient(p, batch, 0.02, g2);
    EXPECT_LT(relative_difference(to_vector(g2), to_vector(g1)), 1e-13);
    auto h1 = to_view<double>(zeros), h2 = to_view<double>(zeros);
    whole.hvp(p, batch, 0.02, v, h1);
    chunked.hvp(p, batch, 0.02, v, h2);
    EXPECT_LT(relative_difference(to_vector(h2), to_vector(h1)), 1e-13);
    auto n1 = to_view<double>(zeros), n2 = to_view<double>(zeros);
    whole.ggn_vp(p, batch, 0.02, v, n1);
    chunked.ggn_vp(p, batch, 0.02, v, n2);
    EXPECT_LT(relative_difference(to_vector(n2), to_vector(n1)), 1e-13);
    // A second call adds to what is there: twice the product, as the data-parallel caller relies on.
    whole.hvp(p, batch, 0.02, v, h1);
    auto twice = to_vector(h2);
    for (double& x : twice) x *= 2;
    EXPECT_LT(relative_difference(to_vector(h1), twice), 1e-13);
    // Weights scale linearly: half the batch with weight 1/50 each plus the other half sums to the whole.
    HostData first = data, second = data;
    first.rows = 20;
    second.rows = 30;
    first.x.resize(20 * 6);
    second.x.erase(second.x.begin(), second.x.begin() + 20 * 6);
    first.targets.resize(20 * 4);
    second.targets.erase(second.targets.begin(), second.targets.begin() + 20 * 4);
    first.labels.resize(20);
    second.labels.erase(second.labels.begin(), second.labels.begin() + 20);
    auto parts = to_view<double>(zeros);
    chunked.hvp(p, make_batch<double>(first), 0.02, v, parts);
    chunked.hvp(p, make_batch<double>(second), 0.02, v, parts);
    EXPECT_LT(relative_difference(to_vector(parts), to_vector(h2)), 1e-13);
  }
}

// hvp and ggn_vp keep the forward and backward state between calls; a fresh network is the reference.
TEST(Nn, ReusedStateNoticesParametersAndBatchesChangedInPlace) {
  for (Loss l : kLosses) {
    const MlpShape shape = make_shape({5, 8, 3}, Activation::softplus, l);
    const HostData data = random_data(shape, 12, 14);
    auto batch = make_batch<double>(data);
    Mlp<double> reused(shape, 16);
    Kokkos::View<double*> p("p", shape.parameter_count());
    reused.initialize(p, 45);
    const auto v = to_view<double>(normal_vector(p.extent(0), 700));
    const std::vector<double> zeros(p.extent(0), 0.0);
    auto fresh_product = [&](bool hessian, double weight) {
      Mlp<double> fresh(shape, 16);
      auto out = to_view<double>(zeros);
      if (hessian)
        fresh.hvp(p, batch, weight, v, out);
      else
        fresh.ggn_vp(p, batch, weight, v, out);
      return to_vector(out);
    };
    auto reused_product = [&](bool hessian, double weight) {
      auto out = to_view<double>(zeros);
      if (hessian)
        reused.hvp(p, batch, weight, v, out);
      else
        reused.ggn_vp(p, batch, weight, v, out);
      return to_vector(out);
    };
    for (bool hessian : {true, false}) {
      const std::string what = std::string(hessian ? "hvp" : "ggn_vp") + " / " + to_string(l);
      EXPECT_LT(relative_difference(reused_product(hessian, 0.1), fresh_product(hessian, 0.1)), 1e-14)
          << what;
      // Same inputs, another weight: the kept state is unweighted.
      EXPECT_LT(relative_difference(reused_product(hessian, 0.3), fresh_product(hessian, 0.3)), 1e-15)
          << what;
      // Parameters changed in place (same View).
      auto hp = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), p);
      hp(3) += 0.25;
      Kokkos::deep_copy(p, hp);
      EXPECT_LT(relative_difference(reused_product(hessian, 0.1), fresh_product(hessian, 0.1)), 1e-14)
          << what;
      // One input value changed in place.
      Kokkos::View<double**, Kokkos::LayoutRight> x("x", data.rows, data.inputs);
      Kokkos::deep_copy(x, batch.x);
      batch.x = x;
      EXPECT_LT(relative_difference(reused_product(hessian, 0.1), fresh_product(hessian, 0.1)), 1e-14)
          << what;
      auto hx = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), x);
      hx(7, 2) -= 0.5;
      Kokkos::deep_copy(x, hx);
      EXPECT_LT(relative_difference(reused_product(hessian, 0.1), fresh_product(hessian, 0.1)), 1e-14)
          << what;
      // One label or target changed in place.
      if (l == Loss::cross_entropy) {
        Kokkos::View<int*> labels("labels", data.rows);
        Kokkos::deep_copy(labels, batch.labels);
        batch.labels = labels;
        EXPECT_LT(relative_difference(reused_product(hessian, 0.1), fresh_product(hessian, 0.1)), 1e-14)
            << what;
        auto hl = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), labels);
        hl(4) = (hl(4) + 1) % 3;
        Kokkos::deep_copy(labels, hl);
      } else {
        Kokkos::View<double**, Kokkos::LayoutRight> targets("targets", data.rows, data.outputs);
        Kokkos::deep_copy(targets, batch.targets);
        batch.targets = targets;
        EXPECT_LT(relative_difference(reused_product(hessian, 0.1), fresh_product(hessian, 0.1)), 1e-14)
            << what;
        auto ht = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), targets);
        ht(4, 1) += 1.0;
        Kokkos::deep_copy(targets, ht);
      }
      EXPECT_LT(relative_difference(reused_product(hessian, 0.1), fresh_product(hessian, 0.1)), 1e-14)
          << what;
      // A loss on another batch in between overwrites the workspaces.
      const HostData other_data = random_data(shape, 9, 15);
      reused.loss(p, make_batch<double>(other_data), 1.0);
      EXPECT_LT(relative_difference(reused_product(hessian, 0.1), fresh_product(hessian, 0.1)), 1e-14)
          << what;
    }
  }
}

TEST(Nn, InitializationIsPyTorchsUniformAndKeyedBySeed) {
  const MlpShape shape = make_shape({16, 9, 4}, Activation::tanh, Loss::cross_entropy);
  Mlp<double> mlp(shape, 1);
  Kokkos::View<double*> p("p", shape.parameter_count()), q("q", shape.parameter_count());
  mlp.initialize(p, 5);
  mlp.initialize(q, 6);
  const auto hp = to_vector(p), hq = to_vector(q);
  for (int l = 0; l < shape.layers(); ++l) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(shape.layer_sizes[l]));
    double largest = 0.0;
    for (std::int64_t i = shape.weight_offset(l); i < shape.bias_offset(l) + shape.layer_sizes[l + 1]; ++i) {
      EXPECT_LT(std::abs(hp[i]), bound);
      largest = std::max(largest, std::abs(hp[i]));
      const double u = skein::engine::uniform_open01(5, kInitializationStream, static_cast<std::uint64_t>(i));
      EXPECT_DOUBLE_EQ(hp[i], bound * (2 * u - 1));
    }
    EXPECT_GT(largest, 0.8 * bound);
  }
  EXPECT_GT(relative_difference(hp, hq), 0.5);
  Mlp<float> single(shape, 1);
  Kokkos::View<float*> f("f", shape.parameter_count());
  single.initialize(f, 5);
  EXPECT_LT(relative_difference(to_vector(f), hp), 1e-7);
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

TEST(Nn, BadShapesNamesAndInputsGetClearErrors) {
  EXPECT_NE(
      error_of([] { make_shape({4}, Activation::tanh, Loss::mse).validate(); }).find("at least 2 entries"),
      std::string::npos);
  EXPECT_NE(error_of([] { make_shape({}, Activation::tanh, Loss::mse).validate(); }).find("got 0"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              make_shape({3, 0, 2}, Activation::tanh, Loss::mse).validate();
            }).find("layer_sizes[1] is 0"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              Mlp<double>(make_shape({3, -2}, Activation::tanh, Loss::mse), 4);
            }).find("layer_sizes[1] is -2"),
            std::string::npos);
  const std::string activation = error_of([] { parse_activation("sigmoid"); });
  EXPECT_NE(activation.find("'sigmoid'"), std::string::npos) << activation;
  EXPECT_NE(activation.find("tanh, relu, gelu, softplus"), std::string::npos) << activation;
  const std::string loss = error_of([] { parse_loss("l1"); });
  EXPECT_NE(loss.find("'l1'"), std::string::npos) << loss;
  EXPECT_NE(loss.find("cross_entropy, mse"), std::string::npos) << loss;
  for (Activation a : kActivations) EXPECT_EQ(parse_activation(to_string(a)), a);
  for (Loss l : kLosses) EXPECT_EQ(parse_loss(to_string(l)), l);

  Net net(make_shape({3, 4, 2}, Activation::tanh, Loss::cross_entropy), 5, 13);
  const auto p = net.parameters(1);
  Kokkos::View<int*> bad("bad", 5);
  auto labels = Kokkos::create_mirror_view(bad);
  for (int i = 0; i < 5; ++i) labels(i) = net.data.labels[i];
  labels(3) = 2;
  Kokkos::deep_copy(bad, labels);
  Batch<double> bad_batch = net.batch;
  bad_batch.labels = bad;
  const std::string label_error = error_of([&] { net.mlp.loss(to_view<double>(p), bad_batch, 1.0); });
  EXPECT_NE(label_error.find("label 2 of row 3 is outside 0 .. 1"), std::string::npos) << label_error;
  const std::string size_error =
      error_of([&] { net.mlp.loss(to_view<double>(std::vector<double>(5, 0.0)), net.batch, 1.0); });
  EXPECT_NE(size_error.find("params has 5 entries, the network has 26 parameters"), std::string::npos)
      << size_error;
  Batch<double> wide = net.batch;
  wide.x = Kokkos::View<double**, Kokkos::LayoutRight>("x", 5, 4);
  const std::string width_error = error_of([&] { net.mlp.loss(to_view<double>(p), wide, 1.0); });
  EXPECT_NE(width_error.find("4 columns, the network's input width is 3"), std::string::npos) << width_error;
}

}  // namespace
