// Preconditioners for the Krylov solvers: anything with `apply(r, z)` computing z = M^-1 r on a space's
// vectors (SPD for CG). Identity and Jacobi live here; multigrid is a preconditioner of the same shape.
#pragma once

#include <type_traits>

namespace skein::solvers {

// z = r. CgSolver recognises it and skips both the copy and the extra dot product.
template <class Space>
class IdentityPreconditioner {
 public:
  using vector_type = typename Space::vector_type;
  explicit IdentityPreconditioner(const Space& space) : space_(space) {}
  void apply(const vector_type& r, const vector_type& z) const { space_.copy(r, z); }

 private:
  Space space_;
};

template <class T>
struct is_identity_preconditioner : std::false_type {};
template <class Space>
struct is_identity_preconditioner<IdentityPreconditioner<Space>> : std::true_type {};

// z = D^-1 r with D the operator's diagonal; rows whose diagonal is 0 (cells that are not unknowns) get 0.
template <class Space>
class JacobiPreconditioner {
 public:
  using vector_type = typename Space::vector_type;
  JacobiPreconditioner(const Space& space, const vector_type& diagonal)
      : space_(space), inverse_diagonal_(space.create("jacobi_inverse_diagonal")) {
    space_.reciprocal(diagonal, inverse_diagonal_);
  }
  void apply(const vector_type& r, const vector_type& z) const { space_.multiply(inverse_diagonal_, r, z); }
  const vector_type& inverse_diagonal() const { return inverse_diagonal_; }

 private:
  Space space_;
  vector_type inverse_diagonal_;
};

}  // namespace skein::solvers
