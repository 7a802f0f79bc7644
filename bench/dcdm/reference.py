#!/usr/bin/python3
"""An independent reference for skein's DCDM (Kaneda et al. 2023), in PyTorch + SciPy.

  check MODEL POISSON_H5 RHS_H5   the network of MODEL (dcdm-train.h5) rebuilt in PyTorch from the file's
                                  datasets, A rebuilt from /cell_type, DCDM run on /rhs of RHS_H5: prints
                                  its residual history beside POISSON_H5's (skein's poisson solver=dcdm on
                                  the same problem=file). Equal histories = skein's inference (normalisation,
                                  float32, masking, boundary padding, model file) is the network's.
  train  ...                      the same network trained in PyTorch on Ritz-vector data of the same A
                                  (eigenvectors of a dense A here): what a recipe can reach, independently of
                                  skein's hand-written backward pass. See --help.
Needs /usr/bin/python3 with h5py, numpy, scipy, torch (not the pyenv shim).
"""
import argparse
import sys

import h5py
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

FLUID, SOLID, AIR = 0, 1, 2


def operator(cells, outside):
    """The 7-point matrix of solvers/poisson_operator.hpp on the fluid cells, as a full-grid sparse matrix
    (rows and columns of non-fluid cells are zero)."""
    shape = cells.shape
    n = cells.size
    idx = np.arange(n).reshape(shape)
    rows, cols, vals = [], [], []
    diag = np.zeros(n)
    fluid = cells == FLUID
    for axis in range(3):
        for step in (-1, 1):
            nb = np.roll(cells, -step, axis=axis)
            nb_idx = np.roll(idx, -step, axis=axis)
            edge = [slice(None)] * 3
            edge[axis] = -1 if step == 1 else 0
            nb = nb.copy()
            nb[tuple(edge)] = outside
            not_solid = fluid & (nb != SOLID)
            diag[idx[not_solid]] += 1
            coupled = fluid & (nb == FLUID)
            rows.append(idx[coupled])
            cols.append(nb_idx[coupled])
            vals.append(-np.ones(coupled.sum()))
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(diag)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


class Network(torch.nn.Module):
    """solvers/cnn3d.hpp's DcdmNetwork."""

    def __init__(self, channels, before, coarse, after):
        super().__init__()
        c = channels
        count = 3 + 2 * (before + coarse + after)
        self.convs = torch.nn.ModuleList([torch.nn.Conv3d(1 if l == 0 else c, c, 3, padding=1) for l in range(count)])
        self.output = torch.nn.Linear(c, 1)
        self.before, self.coarse, self.after = before, coarse, after
        for m in list(self.convs) + [self.output]:  # Keras' defaults, as DcdmNetwork::initialize
            torch.nn.init.xavier_uniform_(m.weight)
            torch.nn.init.zeros_(m.bias)

    def forward(self, r):  # r: (batch, 1, nx, ny, nz)
        it = iter(self.convs)
        x = next(it)(r)
        la = F.relu(next(it)(x))
        for _ in range(self.before):
            lb = F.relu(next(it)(la))
            la = F.relu(next(it)(lb)) + la
        lb = F.relu(next(it)(la))
        a = F.avg_pool3d(lb, 2, ceil_mode=True)
        for _ in range(self.coarse):
            b = F.relu(next(it)(a))
            a = F.relu(next(it)(b)) + a
        u = F.interpolate(a, scale_factor=2, mode="nearest")[:, :, : lb.shape[2], : lb.shape[3], : lb.shape[4]] + lb
        for _ in range(self.after):
            v = F.relu(next(it)(u))
            u = F.relu(next(it)(v)) + u
        return self.output(u.permute(0, 2, 3, 4, 1)).squeeze(-1)  # (batch, nx, ny, nz)


def load_network(path):
    with h5py.File(path, "r") as f:
        m = f["/model"]
        net = Network(int(m.attrs["channels"]), int(m.attrs["fine_pairs_before"]), int(m.attrs["coarse_pairs"]),
                      int(m.attrs["fine_pairs_after"]))
        with torch.no_grad():
            for l, conv in enumerate(net.convs):
                conv.weight.copy_(torch.from_numpy(m[f"conv{l:02d}/weight"][...]))
                conv.bias.copy_(torch.from_numpy(m[f"conv{l:02d}/bias"][...]))
            net.output.weight.copy_(torch.from_numpy(m["output/weight"][...]))
            net.output.bias.copy_(torch.from_numpy(m["output/bias"][...]))
    return net


def direction(net, r, shape):
    with torch.no_grad():
        q = net(torch.from_numpy(r.reshape((1, 1) + shape)).float())
    return q.double().numpy().reshape(-1)


def dcdm(A, b, fluid, f, tol=1e-4, max_iters=300, previous=2, singular=False):
    """solvers/dcdm.hpp's iteration; stop at ||r|| <= tol ||b||; returns the relative residual history."""
    def project(v):
        v = np.where(fluid, v, 0.0)
        if singular:
            v = np.where(fluid, v - v[fluid].mean(), 0.0)
        return v
    x = np.zeros_like(b)
    r = project(b - A @ x)
    bn = np.linalg.norm(project(b.copy()))
    hist = [np.linalg.norm(r) / bn]
    ps, aps, paps = [], [], []
    for _ in range(max_iters):
        q = project(f(r / np.linalg.norm(r)))
        coef = [q @ ap / pap for ap, pap in zip(aps, paps)]
        for c, p in zip(coef, ps):
            q = q - c * p
        aq = A @ q
        qaq = q @ aq
        x = x + (q @ r) / qaq * q
        ps, aps, paps = (ps + [q])[-previous:], (aps + [aq])[-previous:], (paps + [qaq])[-previous:]
        r = b - A @ x
        hist.append(np.linalg.norm(r) / bn)
        if hist[-1] <= tol:
            break
    return hist


def check(args):
    net = load_network(args.model)
    with h5py.File(args.rhs, "r") as f:
        cells = f["/cell_type"][...]
        b = f["/rhs"][...].reshape(-1)
    with h5py.File(args.poisson, "r") as f:
        skein_hist = f["/history/residual"][...]
    outside = SOLID if args.outside == "solid" else AIR
    A = operator(cells, outside)
    fluid = (cells == FLUID).reshape(-1)
    b = np.where(fluid, b, 0.0)
    singular = not np.any(cells == AIR) and outside == SOLID
    hist = dcdm(A, b, fluid, lambda r: direction(net, r, cells.shape), tol=args.tol, singular=singular)
    n = min(len(hist), len(skein_hist))
    worst = 0.0
    for k in range(n):
        d = abs(hist[k] - skein_hist[k]) / skein_hist[k]
        if k < 10 or k == n - 1:
            print(f"{k:4d} reference {hist[k]:.6e} skein {skein_hist[k]:.6e} rel diff {d:.1e}")
        if k <= 5:
            worst = max(worst, d)
    print(f"iterations: reference {len(hist) - 1}, skein {len(skein_hist) - 1}; worst rel diff over the first "
          f"6 residuals {worst:.1e}")


def lanczos_ritz(A, fluid, m, rng, singular):
    """m Lanczos steps with full reorthogonalisation from A * randn; Ritz pairs, the null space dropped."""
    n = A.shape[0]
    v = A @ np.where(fluid, rng.standard_normal(n), 0.0)
    Q = [v / np.linalg.norm(v)]
    alpha, beta = [], []
    for j in range(m):
        w = A @ Q[j]
        for _ in range(2):
            w = w - np.array(Q).T @ (np.array(Q) @ w)
        alpha.append(Q[j] @ (A @ Q[j]))
        bnorm = np.linalg.norm(w)
        if j + 1 == m or bnorm < 1e-10:
            break
        beta.append(bnorm)
        Q.append(w / bnorm)
    T = np.diag(alpha) + np.diag(beta[: len(alpha) - 1], 1) + np.diag(beta[: len(alpha) - 1], -1)
    vals, W = np.linalg.eigh(T)
    keep = vals > 1e-8 * vals.max()
    return vals[keep], (np.array(Q[: len(alpha)]).T @ W)[:, keep]


def train(args):
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    with h5py.File(args.rhs, "r") as f:
        cells = f["/cell_type"][...]
        b_test = f["/rhs"][...].reshape(-1)
    outside = SOLID if args.outside == "solid" else AIR
    A = operator(cells, outside)
    fluid = (cells == FLUID).reshape(-1)
    singular = not np.any(cells == AIR) and outside == SOLID
    b_test = np.where(fluid, b_test, 0.0)
    vals, V = lanczos_ritz(A, fluid, args.ritz_vectors, rng, singular)
    low = int(round(args.low_fraction * len(vals)))
    coef = rng.standard_normal((len(vals), args.train_vectors))
    coef[:low] *= args.low_weight
    B = V @ coef
    B /= np.linalg.norm(B, axis=0)
    shape = cells.shape
    data = torch.from_numpy(B.T.reshape((-1, 1) + shape)).float()
    Acoo = A.tocoo()
    At = torch.sparse_coo_tensor(np.vstack([Acoo.row, Acoo.col]), Acoo.data.astype(np.float32), A.shape)
    mask = torch.from_numpy(fluid.astype(np.float32))
    net = Network(args.channels, *args.pairs)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    cg_hist = dcdm(A, b_test, fluid, lambda r: r, singular=singular)
    print(f"{len(vals)} Ritz values {vals.min():.3e} .. {vals.max():.3e}; CG (identity) {len(cg_hist) - 1} "
          f"iterations")
    for epoch in range(args.epochs):
        perm = torch.randperm(data.shape[0])
        total = 0.0
        for start in range(0, data.shape[0], args.batch_size):
            b = data[perm[start : start + args.batch_size]]
            f = net(b).reshape(b.shape[0], -1) * mask
            bf = b.reshape(b.shape[0], -1)
            Af = torch.sparse.mm(At, f.T).T
            alpha = (f * bf).sum(1) / (f * Af).sum(1)
            loss_each = ((bf - alpha[:, None] * Af) ** 2).sum(1)
            loss = loss_each.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss_each.sum().item()
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs:
            hist = dcdm(A, b_test, fluid, lambda r: direction(net, r, shape), singular=singular,
                        max_iters=args.max_iters)
            print(f"epoch {epoch + 1}: loss {total / data.shape[0]:.4f}; DCDM {len(hist) - 1} iterations "
                  f"(rel res {hist[-1]:.2e})", flush=True)
    if args.save:  # a model file poisson solver=dcdm reads (jobs/dcdm_model.hpp's layout)
        with h5py.File(args.save, "w") as f:
            m = f.create_group("model")
            m.attrs["kind"] = "dcdm-cnn"
            m.attrs["format_version"] = np.int64(1)
            m.attrs["channels"] = np.int64(args.channels)
            for name, value in zip(["fine_pairs_before", "coarse_pairs", "fine_pairs_after"], args.pairs):
                m.attrs[name] = np.int64(value)
            m.attrs["trained_grid"] = np.array(shape, dtype=np.int64)
            m.attrs["parameter_count"] = np.int64(sum(p.numel() for p in net.parameters()))
            for l, conv in enumerate(net.convs):
                m[f"conv{l:02d}/weight"] = conv.weight.detach().numpy()
                m[f"conv{l:02d}/bias"] = conv.bias.detach().numpy()
            m["output/weight"] = net.output.weight.detach().numpy()
            m["output/bias"] = net.output.bias.detach().numpy()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check")
    c.add_argument("model")
    c.add_argument("poisson")
    c.add_argument("rhs")
    c.add_argument("--outside", choices=["solid", "air"], default="solid")
    c.add_argument("--tol", type=float, default=1e-4)
    t = sub.add_parser("train")
    t.add_argument("rhs", help="problem file: /cell_type and a test /rhs")
    t.add_argument("--outside", choices=["solid", "air"], default="solid")
    t.add_argument("--ritz_vectors", type=int, default=100)
    t.add_argument("--train_vectors", type=int, default=200)
    t.add_argument("--low_fraction", type=float, default=0.55)
    t.add_argument("--low_weight", type=float, default=9.0)
    t.add_argument("--channels", type=int, default=8)
    t.add_argument("--pairs", type=int, nargs=3, default=[1, 3, 2])
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--batch_size", type=int, default=10)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--eval_every", type=int, default=5)
    t.add_argument("--max_iters", type=int, default=300)
    t.add_argument("--save", default="")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.command == "check":
        check(args)
    else:
        train(args)


if __name__ == "__main__":
    sys.exit(main())
