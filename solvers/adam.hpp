// Adam (Kingma & Ba) on a flat Kokkos View of parameters, bias-corrected as PyTorch's torch.optim.Adam,
// with its state (moments and step count) exposed for checkpoints.
#pragma once

#include <Kokkos_Core.hpp>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace skein::solvers {

struct AdamSettings {
  double learning_rate = 1e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;  // PyTorch's default (Keras uses 1e-7, added to sqrt(v) before bias correction)
};

// p -= lr * m_hat / (sqrt(v_hat) + eps) with m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
// m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t), t = 1, 2, ... The moments are kept in double whatever
// Scalar is, so a float model's optimizer state does not lose small second moments.
template <class Scalar>
class Adam {
 public:
  using Vector = Kokkos::View<Scalar*>;
  using Moments = Kokkos::View<double*>;

  Adam(std::int64_t size, AdamSettings settings)
      : settings_(settings), m_("skein::adam::m", size), v_("skein::adam::v", size) {
    if (!(settings.learning_rate > 0) || !(settings.beta1 >= 0 && settings.beta1 < 1) ||
        !(settings.beta2 >= 0 && settings.beta2 < 1) || !(settings.epsilon > 0)) {
      throw std::invalid_argument("Adam: learning rate and epsilon must be positive, betas in [0, 1)");
    }
  }

  const AdamSettings& settings() const { return settings_; }
  std::int64_t step_count() const { return step_; }
  // State for checkpoints: restore with set_state(step, m, v) (sizes must match).
  Moments first_moment() const { return m_; }
  Moments second_moment() const { return v_; }
  void set_state(std::int64_t step, const Moments& m, const Moments& v) {
    if (m.extent(0) != m_.extent(0) || v.extent(0) != v_.extent(0) || step < 0) {
      throw std::invalid_argument("Adam::set_state: state of the wrong size");
    }
    step_ = step;
    Kokkos::deep_copy(m_, m);
    Kokkos::deep_copy(v_, v);
  }

  // One update of `params` from `grad` (same size as the optimizer).
  void step(const Vector& params, const Vector& grad) {
    if (params.extent(0) != m_.extent(0) || grad.extent(0) != m_.extent(0)) {
      throw std::invalid_argument("Adam::step: parameter or gradient vector of the wrong size");
    }
    ++step_;
    const double b1 = settings_.beta1, b2 = settings_.beta2, eps = settings_.epsilon;
    const double step_size = settings_.learning_rate / (1.0 - std::pow(b1, static_cast<double>(step_)));
    const double v_correction = 1.0 / (1.0 - std::pow(b2, static_cast<double>(step_)));
    const Moments m = m_, v = v_;
    Kokkos::parallel_for(
        "skein::adam::step", Kokkos::RangePolicy<>(0, params.extent(0)), KOKKOS_LAMBDA(const std::int64_t x) {
          const double g = static_cast<double>(grad(x));
          m(x) = b1 * m(x) + (1.0 - b1) * g;
          v(x) = b2 * v(x) + (1.0 - b2) * g * g;
#if KOKKOS_VERSION >= 30700
          const double root = Kokkos::sqrt(v(x) * v_correction);
#else
          const double root = Kokkos::Experimental::sqrt(v(x) * v_correction);
#endif
          params(x) = static_cast<Scalar>(static_cast<double>(params(x)) - step_size * m(x) / (root + eps));
        });
    Kokkos::fence();
  }

 private:
  AdamSettings settings_;
  Moments m_, v_;
  std::int64_t step_ = 0;
};

}  // namespace skein::solvers
