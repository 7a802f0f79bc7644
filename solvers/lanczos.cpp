#include "solvers/lanczos.hpp"

namespace skein::solvers {

RitzSelection select_ritz(const std::vector<double>& projected, int m, double beta_m,
                          const LanczosOptions& options) {
  RitzSelection out;
  out.eig = symmetric_eigen(m, projected, /*want_vectors=*/true);
  out.residuals.resize(static_cast<std::size_t>(m));
  for (int i = 0; i < m; ++i) out.residuals[i] = std::abs(beta_m * out.eig.vector(m - 1, i));
  out.scale = std::max(std::abs(out.eig.values.front()), std::abs(out.eig.values.back()));
  const int top = std::min(options.top, m), bottom = std::min(options.bottom, m - top);
  for (int k = 0; k < top; ++k) out.top.push_back(m - 1 - k);
  for (int k = 0; k < bottom; ++k) out.bottom.push_back(k);
  const double bound = options.tol * (out.scale > 0.0 ? out.scale : 1.0);
  out.converged = true;
  for (const int i : out.top) out.converged = out.converged && out.residuals[i] <= bound;
  for (const int i : out.bottom) out.converged = out.converged && out.residuals[i] <= bound;

  // Keep the wanted pairs and about half of the rest next to them (split between the ends asked for):
  // fewer kept means more new directions per cycle, more kept means better restarts; half is TRLan's
  // usual choice. Never more than m - 1, so a cycle adds at least one direction.
  const int extra = std::max(0, (m - top - bottom) / 2);
  int extra_top = 0, extra_bottom = 0;
  if (top > 0 && bottom > 0) {
    extra_top = extra - extra / 2;
    extra_bottom = extra / 2;
  } else if (top > 0) {
    extra_top = extra;
  } else {
    extra_bottom = extra;
  }
  const int keep_bottom = std::min(bottom + extra_bottom, m - 1),
            keep_top = std::min(top + extra_top, m - 1 - keep_bottom);
  for (int k = 0; k < keep_bottom; ++k) out.keep.push_back(k);
  for (int k = keep_top - 1; k >= 0; --k) out.keep.push_back(m - 1 - k);
  return out;
}

}  // namespace skein::solvers
