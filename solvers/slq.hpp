// Stochastic Lanczos quadrature: Gauss quadrature rules from Lanczos tridiagonals (nodes = Ritz values,
// weights = squared first components of their eigenvectors) and the smoothed spectral density they give.
#pragma once

#include "solvers/lanczos.hpp"

#include <vector>

namespace skein::solvers {

// For a unit start vector v, sum_i weights[i] f(nodes[i]) approximates v^T f(A) v; the weights sum to 1.
struct QuadratureRule {
  std::vector<double> nodes;    // ascending
  std::vector<double> weights;  // >= 0, sum 1
};

// The m-point Gauss rule of a Lanczos tridiagonal (LAPACK dstev).
QuadratureRule slq_quadrature(const LanczosTridiagonal& tridiagonal);

// Spectral density on `grid`: the average over rules of sum_i w_i N(t; node_i, sigma^2). With Rademacher or
// normal start vectors it estimates (1/n) sum_j delta(t - lambda_j) smoothed by the Gaussian; it
// integrates to 1 when the grid covers the nodes by a few sigma.
std::vector<double> gaussian_density(const std::vector<QuadratureRule>& rules,
                                     const std::vector<double>& grid, double sigma);

}  // namespace skein::solvers
