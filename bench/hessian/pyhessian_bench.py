#!/usr/bin/env python3
"""The reference side of bench/hessian: PyHessian (PyPI `pyhessian` 0.1) on a hessian-job model and data file,
and a converged reference of the top eigenvalues. Run by bench/hessian/run inside its venv; usable alone.

    pyhessian_bench.py measure --model M.h5 --data D.h5 [--dtype float32|float64] [--threads N]
                       [--reps 5] [--what micro,eig,trace,density] [--top-n 5] [--seed 0] [--json OUT.json]
    pyhessian_bench.py reference --model M.h5 --data D.h5 --out REF.json [--k 5] [--tol 1e-10] [--ncv 24]
                       [--bottom K] [--threads N]

measure: loads the model file into an nn.Sequential (tools/hessian/export_torch.load_sequential, the same
weights the skein job reads) and the data as one batch, then times, in this order:
- micro: `--reps` gradients (zero_grad, forward, loss, backward; median), PyHessian's set-up
  `hessian(model, criterion, data=(X, y), cuda=False)` (one forward and a create_graph backward, kept), and
  `--reps` Hessian-vector products through pyhessian.utils.hessian_vector_product, i.e. how PyHessian's
  eigenvalues/trace/density take them (torch.autograd.grad double backward on the kept graph; median);
- eig: `eigenvalues(top_n=5)` with its defaults (power iteration, maxIter 100, tol 1e-3), the number of
  products it took (counted by wrapping the function PyHessian calls), its values sorted descending;
- trace: `trace()` with its defaults (Hutchinson, maxIter 100, tol 1e-3): the mean, the standard error of
  its samples, and how many it drew;
- density: `density()` with its defaults (SLQ, iter 100, n_v 1) and its nodes and weights.
float64 runs set torch's default dtype to float64 (PyHessian draws its vectors in the default dtype). Prints
one JSON line (also written to --json).

reference: the top --k eigenvalues of the float64 loss Hessian by ARPACK (scipy.sparse.linalg.eigsh,
which='LA', tol 1e-10) on a LinearOperator whose product is torch's float64 double backward, with each
Ritz pair's residual ||H v - lambda v|| recomputed; --bottom K also the K smallest (which='SA'). Written with
the model and data files' sha256 so later runs reuse it.

Needs: torch (python3-torch), pyhessian (pip install --no-deps pyhessian), numpy, h5py, scipy (reference).
"""

import argparse
import hashlib
import json
import math
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "hessian"))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def setup_torch(threads, dtype_name):
    import torch

    torch.set_num_threads(threads)
    dtype = torch.float64 if dtype_name == "float64" else torch.float32
    torch.set_default_dtype(dtype)
    return torch, dtype


def load(model_path, data_path, dtype, n=None):
    from export_torch import load_data, load_sequential, torch_loss

    model = load_sequential(model_path, dtype=dtype)
    X, y = load_data(data_path, dtype=dtype, n=n)
    return model, torch_loss(model.skein_loss), X, y


def eig_shim(torch):
    """PyPI pyhessian 0.1's density() solves its tridiagonal T with torch.eig, which torch 1.13 (Debian's) has
    removed (it raises). Stand in torch.linalg.eigh, for that 100 x 100 symmetric matrix only, in torch.eig's
    return layout (eigenvalues as (n, 2) real/imaginary columns, eigenvectors as columns); weights = the first
    row squared do not depend on the eigenvectors' signs. PyHessian's Lanczos loop and its HVPs are untouched.
    Returns a note when the stand-in is installed."""
    try:
        torch.eig(torch.eye(1), eigenvectors=True)
        return None
    except (AttributeError, RuntimeError):
        pass

    def eig(A, eigenvectors=False):
        w, V = torch.linalg.eigh(A)
        return torch.stack([w, torch.zeros_like(w)], dim=1), (V if eigenvectors else torch.empty(0))

    torch.eig = eig
    return "torch.eig (removed in this torch) stood in by torch.linalg.eigh for density()'s tridiagonal matrix"


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(args):
    torch, dtype = setup_torch(args.threads, args.dtype)
    import warnings

    import pyhessian
    from pyhessian import hessian

    # pyhessian/__init__ rebinds `pyhessian.hessian` to the class; the module is in sys.modules
    ph_hessian = sys.modules["pyhessian.hessian"]
    warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")

    torch.manual_seed(args.seed)
    what = set(args.what.split(","))
    t0 = time.perf_counter()
    model, criterion, X, y = load(args.model, args.data, dtype, args.n)
    params = sum(p.numel() for p in model.parameters())
    out = {"dtype": args.dtype, "threads": args.threads, "torch": torch.__version__,
           "torch_threads": torch.get_num_threads(), "pyhessian": getattr(pyhessian, "__version__", None),
           "parameters": params, "samples": int(X.shape[0]), "load_s": time.perf_counter() - t0}
    try:
        import importlib.metadata as md
        out["pyhessian"] = md.version("pyhessian")
    except Exception:
        pass
    model.eval()

    # gradient: forward + loss + backward, as a training step takes it
    # wall seconds, and CPU seconds of the whole process (all threads; less sensitive to other load)
    grad_times, grad_cpu = [], []
    for _ in range(args.reps + 1):
        model.zero_grad()
        t, c = time.perf_counter(), time.process_time()
        loss = criterion(model(X), y)
        loss.backward()
        grad_times.append(time.perf_counter() - t)
        grad_cpu.append(time.process_time() - c)
    out["loss"] = float(loss.item())
    out["gradient_s"] = statistics.median(grad_times[1:])
    out["gradient_cpu_s"] = statistics.median(grad_cpu[1:])
    out["gradient_all_s"] = grad_times
    model.zero_grad()

    t = time.perf_counter()
    hc = hessian(model, criterion, data=(X, y), cuda=False)
    out["setup_s"] = time.perf_counter() - t

    # count the products PyHessian takes: wrap the function its methods call
    counter = {"n": 0}
    original = ph_hessian.hessian_vector_product

    def counted(gradsH, params_, v):
        counter["n"] += 1
        if counter["n"] % 25 == 0:
            print(f"pyhessian_bench: {counter['n']} products in this section", file=sys.stderr, flush=True)
        return original(gradsH, params_, v)

    def flush():
        """Write what is measured so far to --json, so a run killed mid-way keeps its finished sections."""
        if args.json:
            with open(args.json + ".tmp", "w") as f:
                f.write(json.dumps(dict(out, partial=True)) + "\n")
            os.replace(args.json + ".tmp", args.json)

    ph_hessian.hessian_vector_product = counted

    if "micro" in what:
        v = [torch.randn_like(p) for p in hc.params]
        norm = math.sqrt(sum(float((x * x).sum()) for x in v))
        v = [x / norm for x in v]
        hvp_times, hvp_cpu = [], []
        for _ in range(args.reps + 1):
            t, c = time.perf_counter(), time.process_time()
            original(hc.gradsH, hc.params, v)
            hvp_times.append(time.perf_counter() - t)
            hvp_cpu.append(time.process_time() - c)
        out["hvp_s"] = statistics.median(hvp_times[1:])
        out["hvp_cpu_s"] = statistics.median(hvp_cpu[1:])
        out["hvp_all_s"] = hvp_times
        flush()

    def section(name, fn):
        """Run one measurement; a failure (e.g. a torch without torch.eig for density) is recorded, not fatal."""
        if name not in what:
            return
        counter["n"] = 0
        t, c = time.perf_counter(), time.process_time()
        try:
            fn()
        except Exception as e:  # report and go on with the other sections
            out[f"{name}_error"] = f"{type(e).__name__}: {e}"
            return
        out[f"{name}_s"] = time.perf_counter() - t
        out[f"{name}_cpu_s"] = time.process_time() - c
        out[f"{name}_hvps"] = counter["n"]
        flush()

    def eig():
        values, _ = hc.eigenvalues(top_n=args.top_n)
        out["eig_found_order"] = [float(x) for x in values]
        out["eigenvalues"] = sorted((float(x) for x in values), reverse=True)

    def trace():
        samples = hc.trace()
        out["trace_mean"] = float(statistics.fmean(samples))
        out["trace_samples"] = len(samples)
        out["trace_stderr"] = (float(statistics.stdev(samples) / math.sqrt(len(samples)))
                               if len(samples) > 1 else None)

    def density():
        shim = eig_shim(torch)
        if shim:
            out["density_shim"] = shim
        nodes, weights = hc.density()
        out["density_nodes"] = [[float(x) for x in run] for run in nodes]
        out["density_weights"] = [[float(x) for x in run] for run in weights]

    section("eig", eig)
    section("trace", trace)
    section("density", density)

    ph_hessian.hessian_vector_product = original
    out["peak_rss_mb"] = peak_rss_mb()
    line = json.dumps(out)
    if args.json:
        with open(args.json, "w") as f:
            f.write(line + "\n")
    print(line)
    return 0


def reference(args):
    torch, dtype = setup_torch(args.threads, "float64")
    import numpy as np
    from scipy.sparse.linalg import LinearOperator, eigsh

    t0 = time.perf_counter()
    model, criterion, X, y = load(args.model, args.data, torch.float64, args.n)
    model.eval()
    params = [p for p in model.parameters()]
    P = sum(p.numel() for p in params)
    loss = criterion(model(X), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    count = {"n": 0}

    def hvp(v):
        count["n"] += 1
        if count["n"] % 20 == 0:
            print(f"reference: {count['n']} products, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        vt = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64).ravel())
        pieces, at = [], 0
        for p in params:
            pieces.append(vt[at:at + p.numel()].view_as(p))
            at += p.numel()
        hv = torch.autograd.grad(grads, params, grad_outputs=pieces, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]).numpy()

    op = LinearOperator((P, P), matvec=hvp, dtype=np.float64)
    result = {"model": os.path.abspath(args.model), "data": os.path.abspath(args.data),
              "model_sha256": sha256(args.model), "data_sha256": sha256(args.data), "parameters": P,
              "samples": int(X.shape[0]), "loss": float(loss.item()), "method":
              f"scipy.sparse.linalg.eigsh on torch float64 double-backward HVPs, tol {args.tol}, ncv {args.ncv}",
              "torch": torch.__version__, "threads": args.threads}

    def solve(k, which):
        rng = np.random.default_rng(args.seed)
        v0 = rng.standard_normal(P)
        count["n"] = 0
        t = time.perf_counter()
        vals, vecs = eigsh(op, k=k, which=which, tol=args.tol, ncv=max(args.ncv, 2 * k + 1), v0=v0)
        seconds = time.perf_counter() - t
        products = count["n"]
        order = np.argsort(vals)[::-1] if which == "LA" else np.argsort(vals)
        vals, vecs = vals[order], vecs[:, order]
        res = [float(np.linalg.norm(hvp(vecs[:, i]) - vals[i] * vecs[:, i])) for i in range(k)]
        return [float(x) for x in vals], res, seconds, products

    top, res, sec, n = solve(args.k, "LA")
    result.update({"top": top, "top_residuals": res, "top_seconds": sec, "top_hvps": n})
    if args.bottom:
        bottom, res, sec, n = solve(args.bottom, "SA")
        result.update({"bottom": bottom, "bottom_residuals": res, "bottom_seconds": sec, "bottom_hvps": n})
    result["seconds"] = time.perf_counter() - t0
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.out)
    print(json.dumps(result))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="time PyHessian")
    r = sub.add_parser("reference", help="converged top eigenvalues (ARPACK on float64 HVPs)")
    for p in (m, r):
        p.add_argument("--model", required=True)
        p.add_argument("--data", required=True)
        p.add_argument("--n", type=int, help="only the first n samples")
        p.add_argument("--threads", type=int, default=os.cpu_count())
        p.add_argument("--seed", type=int, default=0)
    m.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    m.add_argument("--reps", type=int, default=5, help="timed gradients and HVPs (median; one more as warm-up)")
    m.add_argument("--what", default="micro,eig,trace,density")
    m.add_argument("--top-n", type=int, default=5)
    m.add_argument("--json", help="also write the result here")
    r.add_argument("--out", required=True)
    r.add_argument("--k", type=int, default=5)
    r.add_argument("--bottom", type=int, default=0)
    r.add_argument("--tol", type=float, default=1e-10)
    r.add_argument("--ncv", type=int, default=24)
    args = ap.parse_args()
    return measure(args) if args.cmd == "measure" else reference(args)


if __name__ == "__main__":
    sys.exit(main())
