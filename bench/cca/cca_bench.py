#!/usr/bin/env python3
"""Helpers of bench/cca/run, run inside its venv (numpy, h5py, cca-zoo 4.0.1). Subcommands:

  gen    write planted dense data once: /X (n x p), /Y (n x q), /sample_id; k planted canonical pairs
  zoo    cca-zoo's StochasticCCAEY on that data, PCC on the held-out rows every --eval-every steps
  exact  numpy / cca-zoo exact solvers on the training rows (times), and the reference values of the PCC

The training / validation split is skein's own: matched sample i is held out when
random_bits(seed, "VALI", i) < val_fraction * 2^64 (Philox4x32-10, engine/random.hpp, reimplemented below), so
both programs see the same rows. `gen` picks the val_fraction that holds out exactly --validation rows.

PCC, the same definition as skein's (solvers/cca_metrics.hpp, subspace_scores): on the held-out rows, with the
training-row standardisation, Z = [X_v W_x, Y_v W_y], S = cov(Z) (divisor n_v - 1), G_i = W_i^T W_i;
the top k eigenvalues of the pencil (A, B) with A = [[0, S_xy], [S_yx, 0]] and
B = blockdiag(alpha G_x + (1 - alpha) S_xx, alpha G_y + (1 - alpha) S_yy) -- for CCA (alpha = 0) the k canonical
correlations of the projections, for PLS (alpha = 1) the singular values of Q_x^T S_xy Q_y (Q: orthonormal bases
of the learned spans); PCC = their sum / the same sum for the exact solution's weights (fitted on the training
rows) on the same held-out rows. Rotation and scale invariant, so no de-rotation of the EY weights is needed.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

M32 = np.uint64(0xFFFFFFFF)
VALI = 0x56414C49


def philox_bits(seed, stream, ids):
    """engine::random_bits(seed, stream, id) for an array of ids (uint64)."""
    ids = np.asarray(ids, dtype=np.uint64)
    v0 = ids & M32
    v1 = ids >> np.uint64(32)
    v2 = np.full_like(ids, np.uint64(stream))
    v3 = np.zeros_like(ids)
    k0 = np.uint64(seed & 0xFFFFFFFF)
    k1 = np.uint64((seed >> 32) & 0xFFFFFFFF)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * v0
        p1 = np.uint64(0xCD9E8D57) * v2
        hi0, lo0 = p0 >> np.uint64(32), p0 & M32
        hi1, lo1 = p1 >> np.uint64(32), p1 & M32
        v0, v1, v2, v3 = hi1 ^ v1 ^ k0, lo1, hi0 ^ v3 ^ k1, lo0
        k0 = (k0 + np.uint64(0x9E3779B9)) & M32
        k1 = (k1 + np.uint64(0xBB67AE85)) & M32
    return (v0 << np.uint64(32)) | v1


def validation_mask(n, seed, val_fraction):
    keys = philox_bits(seed, VALI, np.arange(n, dtype=np.uint64)).astype(np.float64)
    return keys < val_fraction * 18446744073709551616.0


def val_fraction_for(n, seed, count):
    """A val_fraction (as text, exact) under which exactly `count` of n samples are held out."""
    keys = np.sort(philox_bits(seed, VALI, np.arange(n, dtype=np.uint64)).astype(np.float64))
    cut = 0.5 * (keys[count - 1] + keys[count])
    text = repr(float(cut) / 18446744073709551616.0)
    assert validation_mask(n, seed, float(text)).sum() == count
    return text


# -------------------------------------------------------------------------------------------------------------

def cmd_gen(a):
    """X = E_x + z diag(g) U^T, Y = E_y + z diag(g) V^T: E standard normal noise, z (n x k) standard normal
    latents shared by both views, U (p x k), V (q x k) orthonormal, g_j^2 = rho_j / (1 - rho_j): the population
    canonical correlations are rho_j (rho_max .. rho_min, evenly spaced), the PLS singular values g_j^2."""
    rng = np.random.default_rng(a.seed)
    n, p, q, k = a.n, a.p, a.q, a.k
    rho = np.linspace(a.rho_max, a.rho_min, k)
    # x_j = g (z_j) + e, y_j = g z_j + f: corr = g^2 / (1 + g^2) = rho  ->  g^2 = rho / (1 - rho)
    g = np.sqrt(rho / (1 - rho))
    ux, _ = np.linalg.qr(rng.standard_normal((p, k)))
    uy, _ = np.linalg.qr(rng.standard_normal((q, k)))
    dtype = np.float32 if a.dtype == "float32" else np.float64
    vf = val_fraction_for(n, a.split_seed, a.validation)
    tmp = a.out + ".tmp"
    import h5py
    with h5py.File(tmp, "w") as f:
        dx = f.create_dataset("X", (n, p), dtype=dtype, chunks=(min(n, max(1, (1 << 20) // p)), p))
        dy = f.create_dataset("Y", (n, q), dtype=dtype)
        f.create_dataset("sample_id", data=np.array([f"s{i}" for i in range(n)], dtype=object),
                         dtype=h5py.string_dtype())
        step = max(1, min(n, (1 << 26) // (p + q)))
        for r0 in range(0, n, step):
            c = min(step, n - r0)
            z = rng.standard_normal((c, k))
            ex = rng.standard_normal((c, p))
            ex += (z * g) @ ux.T
            dx[r0:r0 + c] = ex.astype(dtype, copy=False)
            del ex
            ey = rng.standard_normal((c, q))
            ey += (z * g) @ uy.T
            dy[r0:r0 + c] = ey.astype(dtype, copy=False)
        f.attrs["planted_correlations"] = rho
        f.attrs["val_fraction"] = vf
        f.attrs["split_seed"] = a.split_seed
        f.attrs["validation_rows"] = a.validation
        f.attrs["generator"] = "bench/cca/cca_bench.py gen " + json.dumps(vars(a))
    os.replace(tmp, a.out)
    print(json.dumps({"out": a.out, "val_fraction": vf, "planted": rho.tolist()}))


# -------------------------------------------------------------------------------------------------------------
# data, standardisation, exact solutions, scores

def load(path, split_seed=None):
    """(X_train, Y_train, X_val, Y_val) standardised with the training rows' mean and sd (as skein's
    standardize=scale), in the file's dtype; and the seconds it took."""
    import h5py
    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        X = f["X"][...]
        Y = f["Y"][...]
        vf = float(f.attrs["val_fraction"])
        seed = int(f.attrs["split_seed"]) if split_seed is None else split_seed
    val = validation_mask(X.shape[0], seed, vf)
    out = []
    for V in (X, Y):
        tr, va = V[~val], V[val]
        mean = tr.mean(axis=0, dtype=np.float64)
        sd = tr.std(axis=0, ddof=1, dtype=np.float64)
        sd[sd == 0] = 1
        tr -= mean.astype(tr.dtype)
        tr /= sd.astype(tr.dtype)
        va -= mean.astype(va.dtype)
        va /= sd.astype(va.dtype)
        out += [tr, va]
    del X, Y
    return out[0], out[2], out[1], out[3], time.perf_counter() - t0


def top_pencil(a, b, k, tol=1e-12):
    w, q = np.linalg.eigh(b)
    keep = (w > tol * max(w.max(), 0)) & (w > 0)
    wh = q[:, keep] / np.sqrt(w[keep])
    m = wh.T @ a @ wh
    m = 0.5 * (m + m.T)
    e = np.linalg.eigvalsh(m)[::-1]
    out = np.zeros(k)
    out[:min(k, len(e))] = e[:k]
    return out


def chunked_product(V, W, chunk=4096):
    out = np.empty((V.shape[0], W.shape[1]))
    W = np.asarray(W, dtype=np.float64)
    for r0 in range(0, V.shape[0], chunk):
        out[r0:r0 + chunk] = V[r0:r0 + chunk].astype(np.float64) @ W
    return out


def subspace_values(Wx, Wy, Xv, Yv, alpha):
    """skein's subspace_scores eigenvalues (see the module docstring)."""
    k = Wx.shape[1]
    Z = np.hstack([chunked_product(Xv, Wx), chunked_product(Yv, Wy)])
    if not np.all(np.isfinite(Z)):
        return np.full(k, np.nan)
    S = np.cov(Z, rowvar=False)
    Wx64, Wy64 = np.asarray(Wx, np.float64), np.asarray(Wy, np.float64)
    A = np.zeros_like(S)
    A[:k, k:] = S[:k, k:]
    A[k:, :k] = S[k:, :k]
    B = np.zeros_like(S)
    B[:k, :k] = alpha * (Wx64.T @ Wx64) + (1 - alpha) * S[:k, :k]
    B[k:, k:] = alpha * (Wy64.T @ Wy64) + (1 - alpha) * S[k:, k:]
    return top_pencil(A, B, k)


def inv_sqrt(c):
    w, q = np.linalg.eigh(c)
    w = np.maximum(w, 1e-12 * w.max())
    return (q / np.sqrt(w)) @ q.T


def exact_weights(Xt, Yt, k, alpha):
    """Exact PLS (alpha = 1: SVD of X^T Y), ridge CCA / CCA (whitened SVD) on the training rows."""
    n = Xt.shape[0]
    cxy = np.zeros((Xt.shape[1], Yt.shape[1]))
    for r0 in range(0, n, 4096):
        cxy += Xt[r0:r0 + 4096].astype(np.float64).T @ Yt[r0:r0 + 4096].astype(np.float64)
    cxy /= n - 1
    if alpha == 1:
        u, s, vt = np.linalg.svd(cxy, full_matrices=False)
        return u[:, :k], vt[:k].T
    cxx = np.cov(Xt, rowvar=False)
    cyy = np.cov(Yt, rowvar=False)
    bx = inv_sqrt((1 - alpha) * cxx + alpha * np.eye(cxx.shape[0]))
    by = inv_sqrt((1 - alpha) * cyy + alpha * np.eye(cyy.shape[0]))
    u, s, vt = np.linalg.svd(bx @ cxy @ by)
    return bx @ u[:, :k], by @ vt[:k].T


ALPHA = {"pls": 1.0, "cca": 0.0}


def method_alpha(method, alpha):
    return ALPHA.get(method, alpha)


def reference_values(Xt, Yt, Xv, Yv, k, alpha):
    t0 = time.perf_counter()
    wx, wy = exact_weights(Xt, Yt, k, alpha)
    seconds = time.perf_counter() - t0
    return subspace_values(wx, wy, Xv, Yv, alpha), seconds


# -------------------------------------------------------------------------------------------------------------

class Reached(Exception):
    pass


def cmd_zoo(a):
    """One StochasticCCAEY run; prints one JSON line: history (samples, seconds, pcc), load/setup seconds."""
    t_import = time.perf_counter()
    from cca_zoo.stochastic import StochasticCCAEY
    t_start = time.perf_counter()  # the clock: reading the HDF5 file, standardising, fit set-up, steps
    import_s = t_start - t_import
    Xt, Yt, Xv, Yv, load_s = load(a.data)
    alpha = method_alpha(a.method, a.alpha)
    paused = [0.0]
    t_ref = time.perf_counter()
    ref, ref_s = reference_values(Xt, Yt, Xv, Yv, a.k, alpha)
    paused[0] += time.perf_counter() - t_ref
    ref_sum = float(ref.sum())
    history = []
    fit_start = [0.0]
    targets = sorted(a.targets)

    class Hooked(StochasticCCAEY):
        steps = 0

        def _derivative(self, views, representations, weights):
            if self.steps % a.eval_every == 0:
                te = time.perf_counter()
                vals = subspace_values(weights[0], weights[1], Xv, Yv, alpha)
                pcc = float(vals.sum()) / ref_sum
                history.append({"step": self.steps, "samples": self.steps * bs,
                                "seconds": te - t_start - paused[0], "pcc": pcc})
                paused[0] += time.perf_counter() - te
                if a.stop and pcc >= targets[-1]:
                    raise Reached()
            self.steps += 1
            return super()._derivative(views, representations, weights)

    bs = a.batch_size
    model = Hooked(n_components=a.k, shrinkage=alpha, batch_size=bs, max_iter=a.epochs,
                   learning_rate=a.lr, random_state=a.seed)
    status = "epochs done"
    fit_start[0] = time.perf_counter() - t_start - paused[0]
    try:
        model.fit([Xt, Yt])
    except Reached:
        status = "target reached"
    except ValueError as e:
        status = f"error: {e}"
    total = time.perf_counter() - t_start - paused[0]
    try:
        import psutil
        rss = psutil.Process().memory_info().rss
    except ImportError:
        rss = None
    print(json.dumps({"history": history, "load_seconds": load_s, "reference": ref.tolist(),
                      "reference_seconds": ref_s, "import_seconds": import_s,
                      "fit_start_seconds": fit_start[0], "status": status, "seconds": total, "n_train": Xt.shape[0],
                      "n_validation": Xv.shape[0], "rss_end": rss}))


def cmd_exact(a):
    """Reference values (numpy) and exact-solver times: numpy SVD of X^T Y, and cca-zoo's PLS/CCA/RidgeCCA."""
    Xt, Yt, Xv, Yv, load_s = load(a.data)
    alpha = method_alpha(a.method, a.alpha)
    out = {"load_seconds": load_s, "n_train": Xt.shape[0], "n_validation": Xv.shape[0]}
    vals, secs = reference_values(Xt, Yt, Xv, Yv, a.k, alpha)
    out["numpy_seconds"] = secs
    out["validation_values"] = vals.tolist()
    if a.zoo:
        from cca_zoo.linear import CCA, PLS, RidgeCCA
        model = PLS(a.k) if a.method == "pls" else CCA(a.k) if a.method == "cca" else RidgeCCA(a.k, shrinkage=alpha)
        t0 = time.perf_counter()
        model.fit([Xt, Yt])
        out["zoo_seconds"] = time.perf_counter() - t0
        wx, wy = model.weights_
        zv = subspace_values(wx, wy, Xv, Yv, alpha)
        out["zoo_validation_values"] = zv.tolist()
        out["zoo_pcc"] = float(zv.sum() / vals.sum())
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--out", required=True)
    g.add_argument("--n", type=int, default=40000)
    g.add_argument("--validation", type=int, default=10000)
    g.add_argument("--p", type=int, default=120)
    g.add_argument("--q", type=int, default=101)
    g.add_argument("--k", type=int, default=5)
    g.add_argument("--rho-max", type=float, default=0.9)
    g.add_argument("--rho-min", type=float, default=0.5)
    g.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--split-seed", type=int, default=0, help="skein's cca.seed")
    for name in ("zoo", "exact"):
        s = sub.add_parser(name)
        s.add_argument("--data", required=True)
        s.add_argument("--method", default="pls", choices=["pls", "ridge", "cca"])
        s.add_argument("--alpha", type=float, default=0.5)
        s.add_argument("--k", type=int, default=5)
        if name == "zoo":
            s.add_argument("--batch-size", type=int, default=500)
            s.add_argument("--epochs", type=int, default=20)
            s.add_argument("--lr", type=float, default=0.2)
            s.add_argument("--eval-every", type=int, default=10)
            s.add_argument("--targets", type=lambda t: [float(x) for x in t.split(",")], default=[0.9, 0.95])
            s.add_argument("--stop", action="store_true", help="stop once the highest target is reached")
            s.add_argument("--seed", type=int, default=0)
        else:
            s.add_argument("--zoo", action="store_true", help="also time cca-zoo's exact solver")
    a = ap.parse_args()
    {"gen": cmd_gen, "zoo": cmd_zoo, "exact": cmd_exact}[a.cmd](a)


if __name__ == "__main__":
    main()
