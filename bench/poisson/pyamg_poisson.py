#!/usr/bin/env python3
"""pyamg reference for bench/poisson: the manufactured 3-D Poisson problem, AMG-preconditioned CG, 1 core.

Same problem as bench/poisson/hypre_poisson.c (see bench/README.md, "## poisson"): n^3 cells, h = 1/(n+1),
x_i = (i+1) h, the unscaled 7-point matrix (6 on the diagonal, -1 per neighbour inside the grid),
exact solution u = g(x) g(y) g(z) with g(t) = exp(t) sin(pi t), b = h^2 (-laplace u)
= -h^2 [g''(x) g(y) g(z) + g(x) g''(y) g(z) + g(x) g(y) g''(z)], g''(t) = exp(t) ((1 - pi^2) sin(pi t)
+ 2 pi cos(pi t)); x0 = 0, stop when ||b - A x||_2 / ||b||_2 < tol.

pyamg's `ml.solve(b, x0, tol, accel='cg')` calls `pyamg.krylov.cg` with its default criteria='rr', which
stops when ||r_k||_2 < tol * ||b||_2 with r the unpreconditioned residual (recomputed as b - A x every 8th
iteration): the benchmark's rule as it is. The printed rel_residual is recomputed from x after the solve.

    pyamg_poisson.py --n 64 [--method sa|rs] [--tol 1e-8] [--rhs manufactured|ones|random] [--history FILE]

Prints one JSON line with the same fields as hypre_poisson. Unknowns are in C order [i][j][k], k fastest.
"""

import argparse
import json
import math
import resource
import sys
import time

import numpy as np
import scipy.sparse as sp


def poisson_matrix(n):
    """The 7-point matrix, C order [i][j][k]: kron sums of the 1-D tridiag(-1, 2, -1)."""
    t = sp.diags([-np.ones(n - 1), 2.0 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1], format="csr")
    eye = sp.identity(n, format="csr")
    a = sp.kron(sp.kron(t, eye), eye) + sp.kron(sp.kron(eye, t), eye) + sp.kron(sp.kron(eye, eye), t)
    return a.tocsr()


def unit_random(keys):
    """splitmix64 of the global C-order index, uniform in [-1, 1): hypre_poisson's random right-hand side."""
    with np.errstate(over="ignore"):
        z = keys.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * (2.0 / 9007199254740992.0) - 1.0


def rhs(n, kind):
    h = 1.0 / (n + 1)
    if kind == "manufactured":
        t = (np.arange(n) + 1) * h
        g = np.exp(t) * np.sin(np.pi * t)
        g2 = np.exp(t) * ((1.0 - np.pi ** 2) * np.sin(np.pi * t) + 2.0 * np.pi * np.cos(np.pi * t))
        u = (g[:, None, None] * g[None, :, None] * g[None, None, :]).ravel()
        lap = (g2[:, None, None] * g[None, :, None] * g[None, None, :]
               + g[:, None, None] * g2[None, :, None] * g[None, None, :]
               + g[:, None, None] * g[None, :, None] * g2[None, None, :]).ravel()
        return -h * h * lap, u
    if kind == "ones":
        return np.full(n ** 3, h * h), None
    return h * h * unit_random(np.arange(n ** 3, dtype=np.uint64)), None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--method", choices=["sa", "rs"], default="sa",
                    help="smoothed aggregation (default) or Ruge-Stuben, pyamg's default options")
    ap.add_argument("--tol", type=float, default=1e-8)
    ap.add_argument("--max-iter", type=int, default=10000)
    ap.add_argument("--rhs", choices=["manufactured", "ones", "random"], default="manufactured")
    ap.add_argument("--history", help="write 'iteration relative_residual' lines here")
    args = ap.parse_args()

    import pyamg

    n = args.n
    t0 = time.perf_counter()
    a = poisson_matrix(n)
    b, exact = rhs(n, args.rhs)
    t1 = time.perf_counter()
    if args.method == "sa":
        ml = pyamg.smoothed_aggregation_solver(a)
    else:
        ml = pyamg.ruge_stuben_solver(a)
    t2 = time.perf_counter()
    residuals = []
    x = ml.solve(b, x0=np.zeros_like(b), tol=args.tol, maxiter=args.max_iter, accel="cg", residuals=residuals)
    t3 = time.perf_counter()

    normb = float(np.linalg.norm(b))
    rel = float(np.linalg.norm(b - a @ x)) / normb
    out = {
        "solver": "pyamg-" + args.method + "-pcg",
        "n": n,
        "ranks": 1,
        "assemble_s": t1 - t0,
        "setup_s": t2 - t1,
        "solve_s": t3 - t2,
        "iterations": len(residuals) - 1,
        "rel_residual": rel,
        "max_error": None if exact is None else float(np.max(np.abs(x - exact))),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "converged": bool(residuals[-1] < args.tol * normb),
        "tol": args.tol,
        "pyamg": pyamg.__version__,
        "levels": len(ml.levels),
        "operator_complexity": float(ml.operator_complexity()),
        "rhs": args.rhs,
    }
    print(json.dumps(out), flush=True)
    if args.history:
        with open(args.history, "w") as f:
            f.write(f"# {out['solver']} n={n} ranks=1: iteration relative_residual (||r_k||_2 / ||b||_2)\n")
            for i, r in enumerate(residuals):
                f.write(f"{i} {r / normb:.6e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
