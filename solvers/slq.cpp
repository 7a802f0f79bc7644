#include "solvers/slq.hpp"

#include <cmath>
#include <stdexcept>

namespace skein::solvers {

QuadratureRule slq_quadrature(const LanczosTridiagonal& tridiagonal) {
  const EigenDecomposition eig =
      tridiagonal_eigen(tridiagonal.alpha, tridiagonal.beta, /*want_vectors=*/true);
  QuadratureRule rule;
  rule.nodes = eig.values;
  rule.weights.resize(eig.values.size());
  for (int i = 0; i < eig.n; ++i) rule.weights[i] = eig.vector(0, i) * eig.vector(0, i);
  return rule;
}

std::vector<double> gaussian_density(const std::vector<QuadratureRule>& rules,
                                     const std::vector<double>& grid, double sigma) {
  if (!(sigma > 0.0)) throw std::invalid_argument("gaussian_density: sigma must be positive");
  std::vector<double> density(grid.size(), 0.0);
  if (rules.empty()) return density;
  const double norm = 1.0 / (sigma * std::sqrt(2.0 * M_PI) * static_cast<double>(rules.size()));
  for (const auto& rule : rules) {
    for (std::size_t i = 0; i < rule.nodes.size(); ++i) {
      for (std::size_t g = 0; g < grid.size(); ++g) {
        const double z = (grid[g] - rule.nodes[i]) / sigma;
        density[g] += rule.weights[i] * norm * std::exp(-0.5 * z * z);
      }
    }
  }
  return density;
}

}  // namespace skein::solvers
