#include "solvers/dcdm_training_data.hpp"

#include "engine/random.hpp"
#include "solvers/lanczos.hpp"
#include "solvers/lapack.hpp"
#include "solvers/poisson_space.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace skein::solvers {

namespace {

constexpr std::uint32_t kRitzStartStream = 0x52495a54u;  // "RITZ"
constexpr std::uint32_t kTrainingStream = 0x44435456u;   // "DCTV"
// Below this, ||w|| / (scale of T) means the Krylov space is invariant (an exact breakdown is ~1e-15).
constexpr double kInvariant = 1e-10;
// A restart vector keeping less than this fraction of its norm after orthogonalisation lies in the span
// of the basis: the whole range of A is spanned.
constexpr double kSpanned = 1e-8;

}  // namespace

RitzBasis ritz_basis(const PoissonOperator& op, int steps, std::uint64_t seed) {
  if (steps < 1) throw std::invalid_argument("ritz_basis: steps must be >= 1, got " + std::to_string(steps));
  const PoissonVectorSpace space(op);
  const int m = static_cast<int>(std::min<std::int64_t>(steps, op.fluid_cells()));
  std::vector<PoissonField> basis;
  std::vector<double> alpha, beta;
  PoissonField w = space.create("ritz_w"), tmp = space.create("ritz_tmp"), draw = space.create("ritz_draw");
  std::uint64_t draws = 0;
  std::vector<double> h;

  // A * (keyed normal draw), orthogonalised against the basis; false when nothing is left of it.
  auto next_start = [&](const PoissonField& into) {
    space.fill_normal(draw, seed, kRitzStartStream, draws++);
    op.apply(draw, into);
    const double before = norm2(space, into);
    if (!basis.empty()) detail::cgs2(space, basis, basis.size(), into, tmp, h);
    const double after = norm2(space, into);
    if (!(after > kSpanned * before)) return false;
    space.scale(into, 1.0 / after);
    return true;
  };

  {
    PoissonField first = space.create("ritz_lanczos_v");
    if (!next_start(first)) return {};  // A = 0 on this grid (a single fluid cell walled in by solid)
    basis.push_back(first);
  }
  double scale = 0.0;
  for (int j = 0; j < m; ++j) {
    op.apply(basis[j], w);
    detail::cgs2(space, basis, basis.size(), w, tmp, h);
    alpha.push_back(h[j]);
    if (j + 1 == m) break;
    const double b = norm2(space, w);
    scale = std::max({scale, std::abs(h[j]), b});
    PoissonField next = space.create("ritz_lanczos_v");
    if (b > kInvariant * scale) {
      space.axpby(1.0 / b, w, 0.0, next);
      beta.push_back(b);
    } else {
      if (!next_start(next)) break;  // range(A) spanned: every Ritz pair is an eigenpair
      beta.push_back(0.0);
    }
    basis.push_back(next);
  }

  const EigenDecomposition eig = tridiagonal_eigen(alpha, beta, /*want_vectors=*/true);
  const int n = eig.n;
  double largest = 0.0;
  for (const double v : eig.values) largest = std::max(largest, std::abs(v));
  RitzBasis out;
  std::vector<const PoissonField*> xs(n);
  for (int i = 0; i < n; ++i) xs[i] = &basis[i];
  std::vector<double> coefficients(n);
  for (int k = 0; k < n; ++k) {
    if (!(eig.values[k] > kRitzNullThreshold * largest)) continue;
    // Sign: the largest coefficient positive, so that rank counts (whose T differ by rounding) agree.
    int largest_at = 0;
    for (int i = 1; i < n; ++i)
      if (std::abs(eig.vector(i, k)) > std::abs(eig.vector(largest_at, k))) largest_at = i;
    const double sign = eig.vector(largest_at, k) < 0.0 ? -1.0 : 1.0;
    for (int i = 0; i < n; ++i) coefficients[i] = sign * eig.vector(i, k);
    PoissonField v = space.create("ritz_vector");
    space.combine(n, xs.data(), coefficients.data(), v);
    out.values.push_back(eig.values[k]);
    out.vectors.push_back(v);
  }
  return out;
}

void training_vector(const PoissonOperator& op, const RitzBasis& basis, std::int64_t index, int low_count,
                     double low_weight, std::uint64_t seed, const PoissonField& out) {
  if (basis.vectors.empty()) throw std::invalid_argument("training_vector: the Ritz basis is empty");
  if (index < 0 || index >= (std::int64_t{1} << 31))
    throw std::invalid_argument("training_vector: index " + std::to_string(index) + " is not in [0, 2^31)");
  if (low_count < 0)
    throw std::invalid_argument("training_vector: low_count must be >= 0, got " + std::to_string(low_count));
  if (!(low_weight > 0.0) || !std::isfinite(low_weight))
    throw std::invalid_argument("training_vector: low_weight must be positive, got " +
                                std::to_string(low_weight));
  const PoissonVectorSpace space(op);
  const std::size_t count = basis.vectors.size();
  std::vector<const PoissonField*> xs(count);
  std::vector<double> c(count);
  for (std::size_t j = 0; j < count; ++j) {
    xs[j] = &basis.vectors[j];
    const std::uint64_t id = (static_cast<std::uint64_t>(index) << 32) | static_cast<std::uint64_t>(j);
    c[j] = engine::standard_normal(seed, kTrainingStream, id) *
           (static_cast<std::int64_t>(j) < low_count ? low_weight : 1.0);
  }
  space.combine(count, xs.data(), c.data(), out);
  space.scale(out, 1.0 / norm2(space, out));
}

}  // namespace skein::solvers
